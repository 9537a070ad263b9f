import { Option } from "effect"

/**
 * The E.164 form (`+` and 6–15 digits) of a dialled number, so numbers written
 * as "+1 (555) 765-4321" or "tel:+1-555-765-4321" map to the same tenant.
 */
export const normaliseE164 = (raw: string): Option.Option<string> => {
  const compact = raw.trim().replace(/^tel:/i, "").replace(/[\s\-.()]/g, "")
  const match = /^\+?([1-9][0-9]{5,14})$/.exec(compact)
  return match?.[1] === undefined ? Option.none() : Option.some(`+${match[1]}`)
}
