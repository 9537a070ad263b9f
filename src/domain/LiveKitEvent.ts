import { Either } from "effect"
import { InvalidEvent } from "./Errors.ts"

/**
 * The parts of a LiveKit WebhookEvent the router reads, as read: every field
 * here has the type it claims. Everything else is forwarded untouched from
 * the raw bytes, so unknown fields are allowed.
 */
export interface LiveKitEvent {
  readonly event: string
  readonly id: string
  /** LiveKit's `createdAt` (int64 seconds) in milliseconds, when it is a time a Date can hold. */
  readonly createdAtMs: number | undefined
  /** The room the event belongs to; egress and ingress events name it in their own info. */
  readonly room: string | undefined
  /** The room instance (`RM_…`): a name can be reused, a sid names one room. Egress events carry it as `roomId`. */
  readonly roomSid: string | undefined
  readonly participant: Participant | undefined
  /** Fields that were present with a shape LiveKit never sends, and so were read as absent. */
  readonly ignored: ReadonlyArray<IgnoredField>
}

export interface Participant {
  readonly kind: string | undefined
  readonly identity: string | undefined
  readonly sid: string | undefined
  /** LiveKit's DisconnectReason name (`CLIENT_INITIATED`, ...), sent with participant_left; omitted when unknown. */
  readonly disconnectReason: string | undefined
  readonly attributes: Readonly<Record<string, string>>
}

/** The fields the router reads; a bounded set, so it can label a metric. */
export type IgnoredField =
  | "createdAt"
  | "room"
  | "room.name"
  | "room.sid"
  | "egressInfo.roomId"
  | "egressInfo"
  | "egressInfo.roomName"
  | "ingressInfo"
  | "ingressInfo.roomName"
  | "participant"
  | "participant.kind"
  | "participant.identity"
  | "participant.sid"
  | "participant.disconnectReason"
  | "participant.attributes"

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

// The largest time a Date can hold, in seconds (ECMAScript: ±8.64e15 ms).
const MAX_SECONDS = 8.64e12

/** int64 seconds as protojson writes them (a decimal string), or a plain number; anything else is no time. */
const secondsOf = (value: unknown): number | undefined => {
  const seconds = typeof value === "number" ? value : typeof value === "string" && /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN
  return Number.isFinite(seconds) && seconds > 0 && seconds <= MAX_SECONDS ? seconds : undefined
}

/**
 * Reads an event by hand, for speed (this runs on every webhook), and leniently:
 * LiveKit treats a 4xx as final, so an event with a readable `event` and `id` is
 * accepted whatever else it holds, and a field of the wrong shape counts as absent.
 */
const readEvent = (json: Json, event: string, id: string): LiveKitEvent => {
  const ignored: Array<IgnoredField> = []
  /** An optional object field; present but not an object: ignored. */
  const object = (value: unknown, field: IgnoredField): Json | undefined => {
    if (value === undefined || isObject(value)) return value
    ignored.push(field)
    return undefined
  }
  /** An optional string field; present but not a string: ignored. */
  const string = (value: unknown, field: IgnoredField): string | undefined => {
    if (value === undefined || typeof value === "string") return value || undefined
    ignored.push(field)
    return undefined
  }

  const createdAtMs = json.createdAt === undefined ? undefined : secondsOf(json.createdAt)
  if (json.createdAt !== undefined && createdAtMs === undefined) ignored.push("createdAt")

  const roomObject = object(json.room, "room")
  const egress = object(json.egressInfo, "egressInfo")
  const room =
    string(roomObject?.name, "room.name") ??
    string(egress?.roomName, "egressInfo.roomName") ??
    string(object(json.ingressInfo, "ingressInfo")?.roomName, "ingressInfo.roomName")
  const roomSid = string(roomObject?.sid, "room.sid") ?? string(egress?.roomId, "egressInfo.roomId")

  const rawParticipant = object(json.participant, "participant")
  let participant: LiveKitEvent["participant"]
  if (rawParticipant !== undefined) {
    const rawAttributes = object(rawParticipant.attributes, "participant.attributes") ?? {}
    const attributes: Record<string, string> = {}
    let odd = false
    for (const [key, value] of Object.entries(rawAttributes)) {
      if (typeof value === "string") attributes[key] = value
      else odd = true
    }
    if (odd) ignored.push("participant.attributes")
    participant = {
      kind: string(rawParticipant.kind, "participant.kind"),
      identity: string(rawParticipant.identity, "participant.identity"),
      sid: string(rawParticipant.sid, "participant.sid"),
      disconnectReason: string(rawParticipant.disconnectReason, "participant.disconnectReason"),
      attributes
    }
  }

  return { event, id, createdAtMs: createdAtMs === undefined ? undefined : createdAtMs * 1000, room, roomSid, participant, ignored }
}

/** Parses the raw body text; only something that is not a JSON object with string `event` and `id` is an InvalidEvent. */
export const parseLiveKitEvent = (text: string): Either.Either<LiveKitEvent, InvalidEvent> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return Either.left(new InvalidEvent({ message: "body is not valid JSON" }))
  }
  if (!isObject(json)) return Either.left(new InvalidEvent({ message: "body is not a JSON object" }))
  const { event, id } = json
  if (typeof event !== "string" || event === "" || typeof id !== "string" || id === "") {
    return Either.left(new InvalidEvent({ message: "body needs string fields `event` and `id`" }))
  }
  return Either.right(readEvent(json, event, id))
}

/** A participant placed by LiveKit SIP: `kind: "SIP"`, or SIP attributes when the kind is omitted. */
export const sipAttributesOf = (event: LiveKitEvent): Readonly<Record<string, string>> | undefined => {
  const participant = event.participant
  if (!participant) return undefined
  const isSip = participant.kind === "SIP" || Object.keys(participant.attributes).some((key) => key.startsWith("sip."))
  return isSip ? participant.attributes : undefined
}
