import { Either, Schema } from "effect"
import { InvalidEvent } from "./Errors.ts"

const NonEmpty = Schema.String.pipe(Schema.minLength(1))

/**
 * The parts of a LiveKit WebhookEvent the router reads. Everything else is
 * forwarded untouched from the raw bytes, so unknown fields are allowed here.
 */
export const LiveKitEvent = Schema.Struct({
  event: NonEmpty,
  id: NonEmpty,
  /** int64 seconds, as a JSON string (protojson). */
  createdAt: Schema.optional(Schema.Union(Schema.String, Schema.Number)),
  room: Schema.optional(Schema.Struct({ name: Schema.optional(Schema.String) })),
  participant: Schema.optional(
    Schema.Struct({
      kind: Schema.optional(Schema.String),
      attributes: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
    })
  ),
  egressInfo: Schema.optional(Schema.Struct({ roomName: Schema.optional(Schema.String) })),
  ingressInfo: Schema.optional(Schema.Struct({ roomName: Schema.optional(Schema.String) }))
})
export type LiveKitEvent = typeof LiveKitEvent.Type

const decode = Schema.decodeUnknownEither(LiveKitEvent)

/** Parses the raw body text; anything but a JSON object with `event` and `id` is an InvalidEvent. */
export const parseLiveKitEvent = (text: string): Either.Either<LiveKitEvent, InvalidEvent> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return Either.left(new InvalidEvent({ message: "body is not valid JSON" }))
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Either.left(new InvalidEvent({ message: "body is not a JSON object" }))
  }
  return Either.mapLeft(decode(json), () => new InvalidEvent({ message: "body needs string fields `event` and `id`" }))
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
