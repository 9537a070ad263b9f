import { Either, Schema } from "effect"

/**
 * A tenant's delivery health, shared by instances and kept across restarts: since when its attempts
 * have all failed (null after a 2xx), whether a `tenant.failing` alert told of that streak (so
 * whoever ends it sends `tenant.recovered`), and when it was disabled for it (null while enabled).
 */
export const TenantHealth = Schema.Struct({
  failingSince: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  // Written from the start of alerts on: a value from before then has none.
  failingAlerted: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  disabledAt: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null })
})
export type TenantHealth = typeof TenantHealth.Type

export const HEALTHY: TenantHealth = { failingSince: null, failingAlerted: false, disabledAt: null }

const TenantHealthJson = Schema.parseJson(TenantHealth)
const decodeJson = Schema.decodeUnknownEither(TenantHealthJson)

/** A stored value; none, or one that does not decode, is healthy. */
export const decodeTenantHealth = (text: string | undefined): TenantHealth =>
  text === undefined ? HEALTHY : Either.getOrElse(decodeJson(text), () => HEALTHY)

export const encodeTenantHealth = Schema.encodeSync(TenantHealthJson)
