import { Either } from "effect"
import { InvalidEvent } from "./Errors.ts"

/**
 * The parts of a LiveKit WebhookEvent the router reads. Everything else is
 * forwarded untouched from the raw bytes, so unknown fields are allowed.
 */
export interface LiveKitEvent {
  readonly event: string
  readonly id: string
  /** int64 seconds, as a JSON string (protojson). */
  readonly createdAt?: string | number | undefined
  readonly room?: { readonly name?: string | undefined } | undefined
  readonly participant?:
    | { readonly kind?: string | undefined; readonly attributes?: Readonly<Record<string, string>> | undefined }
    | undefined
  readonly egressInfo?: { readonly roomName?: string | undefined } | undefined
  readonly ingressInfo?: { readonly roomName?: string | undefined } | undefined
}

const invalid = (message: string) => Either.left(new InvalidEvent({ message }))

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)
const isOptional = (value: unknown, check: (value: unknown) => boolean) => value === undefined || check(value)
const isString = (value: unknown) => typeof value === "string"
/** An optional object whose listed fields, when present, are strings. */
const hasStringFields = (value: unknown, ...fields: ReadonlyArray<string>) =>
  isOptional(value, (v) => isObject(v) && fields.every((f) => isOptional(v[f], isString)))
const isStringRecord = (value: unknown) => isObject(value) && Object.values(value).every(isString)

/** Checks, by hand for speed, the fields this router reads; this runs on every webhook. */
const shapeProblem = (json: Json): string | undefined => {
  if (typeof json.event !== "string" || json.event === "" || typeof json.id !== "string" || json.id === "") {
    return "body needs string fields `event` and `id`"
  }
  if (!isOptional(json.createdAt, (v) => typeof v === "string" || typeof v === "number")) return "`createdAt` must be a string or number"
  if (!hasStringFields(json.room, "name")) return "`room` must be an object with a string `name`"
  if (!hasStringFields(json.egressInfo, "roomName") || !hasStringFields(json.ingressInfo, "roomName")) {
    return "`egressInfo` and `ingressInfo` must be objects with a string `roomName`"
  }
  const participant = json.participant
  if (!hasStringFields(participant, "kind")) return "`participant` must be an object with a string `kind`"
  if (isObject(participant) && !isOptional(participant.attributes, isStringRecord)) {
    return "`participant.attributes` must map strings to strings"
  }
  return undefined
}

/** Parses the raw body text; anything but a JSON object with `event` and `id` is an InvalidEvent. */
export const parseLiveKitEvent = (text: string): Either.Either<LiveKitEvent, InvalidEvent> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return invalid("body is not valid JSON")
  }
  if (!isObject(json)) return invalid("body is not a JSON object")
  const problem = shapeProblem(json)
  return problem === undefined ? Either.right(json as unknown as LiveKitEvent) : invalid(problem)
}

/** The room an event belongs to; egress and ingress events name it in their own info. */
export const roomOf = (event: LiveKitEvent): string | undefined =>
  event.room?.name || event.egressInfo?.roomName || event.ingressInfo?.roomName || undefined

/** A participant placed by LiveKit SIP: `kind: "SIP"`, or SIP attributes when the kind is omitted. */
export const sipAttributesOf = (event: LiveKitEvent): Readonly<Record<string, string>> | undefined => {
  const participant = event.participant
  if (!participant) return undefined
  const attributes = participant.attributes ?? {}
  const isSip = participant.kind === "SIP" || Object.keys(attributes).some((key) => key.startsWith("sip."))
  return isSip ? attributes : undefined
}

/** LiveKit's createdAt (seconds) in milliseconds, if present and sane. */
export const createdAtMs = (event: LiveKitEvent): number | undefined => {
  const seconds = Number(event.createdAt)
  return event.createdAt !== undefined && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined
}
