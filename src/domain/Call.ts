import { Schema } from "effect"

/**
 * A call as the router saw it: one record per room instance (LiveKit's room
 * `sid`; the room name when an event carries none), created by the first event
 * of the room, routed or not, and kept in the same store write as each event.
 */

/** A room instance's key: its sid, else its name (prefixed, so a name can never pass for a sid). */
export const callKeyOf = (room: string, roomSid: string | undefined) => roomSid ?? `name:${room}`

/** `unrouted`: no tenant (yet), ended or not; else `ended` once it ended, whichever came first, its tenant or its end, and `active` until then. */
export const CallStatus = Schema.Literal("active", "ended", "unrouted")
export type CallStatus = typeof CallStatus.Type

export const EndedBy = Schema.Literal("participant_left", "participant_connection_aborted", "room_finished")
export type EndedBy = typeof EndedBy.Type

export const UnroutableReason = Schema.Literal("missing_header", "malformed_header", "unknown_domain", "tenant_conflict")
export type UnroutableReason = typeof UnroutableReason.Type

/** How the call found its tenant (`rule`, `pattern`, `source`), or why it found none (`reason`). */
export const CallRouting = Schema.Struct({
  rule: Schema.NullOr(Schema.Literal("exact", "wildcard", "number")),
  pattern: Schema.NullOr(Schema.String),
  source: Schema.NullOr(Schema.Literal("sip.h.x-to-ip", "sip.h.to", "sip.trunkPhoneNumber")),
  reason: Schema.NullOr(UnroutableReason)
})
export type CallRouting = typeof CallRouting.Type

export const NO_ROUTING: CallRouting = { rule: null, pattern: null, source: null, reason: null }

/** Who the call is and where it went, as its first SIP event said. */
export const CallIdentity = Schema.Struct({
  tenant: Schema.NullOr(Schema.String),
  domain: Schema.NullOr(Schema.String),
  from: Schema.NullOr(Schema.String),
  to: Schema.NullOr(Schema.String),
  sipCallId: Schema.NullOr(Schema.String),
  routing: CallRouting,
  /** The SIP participant's `sip.*` attributes as first seen, keys as LiveKit sent them. */
  sip: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String }))
})
export type CallIdentity = typeof CallIdentity.Type

export const CallRecord = Schema.Struct({
  key: Schema.String,
  room: Schema.String,
  roomSid: Schema.NullOr(Schema.String),
  status: CallStatus,
  ...CallIdentity.fields,
  firstSeenAt: Schema.Number,
  startedAt: Schema.NullOr(Schema.Number),
  endedAt: Schema.NullOr(Schema.Number),
  endedBy: Schema.NullOr(EndedBy),
  disconnectReason: Schema.NullOr(Schema.String)
})
export interface CallRecord extends Schema.Schema.Type<typeof CallRecord> {}

/** Every delivery of a call by status, call events included. */
export const DeliveryCounts = Schema.Struct({ pending: Schema.Number, delivered: Schema.Number, failed: Schema.Number, expired: Schema.Number })
export type DeliveryCounts = typeof DeliveryCounts.Type

/** A LiveKit event of the call, for its timeline. */
export const CallEventEntry = Schema.Struct({
  eventId: Schema.String,
  eventType: Schema.String,
  /** When the router received it. */
  at: Schema.Number,
  /** LiveKit's createdAt, when it had one. */
  createdAt: Schema.NullOr(Schema.Number)
})
export type CallEventEntry = typeof CallEventEntry.Type

/**
 * What one accepted event does to its call's record, applied by the store in the
 * same write: the record is created if the room instance is new; `identity` fills a
 * record that has no tenant yet (routed now, or why not); `startedAt` is kept once;
 * `ended` ends it once (first wins, as call.ended does); `event` joins the timeline.
 */
export interface CallChange {
  readonly key: string
  readonly room: string
  readonly roomSid: string | null
  readonly at: number
  readonly event: CallEventEntry
  readonly identity?: CallIdentity | undefined
  readonly startedAt?: number | undefined
  readonly ended?: { readonly at: number; readonly by: EndedBy; readonly disconnectReason: string | null } | undefined
}

/** Which calls a listing wants; newest first by start (first seen for calls with none). */
export interface CallQuery {
  /** Exactly this hook host. */
  readonly tenant: string | undefined
  /** Only calls of these hosts, or of hosts under their wildcards (a tenant token's). */
  readonly scope: ReadonlyArray<string> | undefined
  readonly status: CallStatus | undefined
  /** E.164: matches `from` or `to`. */
  readonly number: string | undefined
  readonly domain: string | undefined
  readonly since: number | undefined
  readonly until: number | undefined
  readonly limit: number
  /** Only calls after this one in the listing's order. */
  readonly after: { readonly sortAt: number; readonly key: string } | undefined
}

/** When a call sorts in listings: its start, else when it was first seen. */
export const sortAtOf = (call: Pick<CallRecord, "startedAt" | "firstSeenAt">) => call.startedAt ?? call.firstSeenAt

/** A call's record with its deliveries counted. */
export const CallListing = Schema.Struct({ ...CallRecord.fields, deliveries: DeliveryCounts })
export interface CallListing extends Schema.Schema.Type<typeof CallListing> {}

/** A delivery attempt of the call, as in a delivery's history. */
export interface TimelineAttempt {
  readonly deliveryId: number
  readonly eventId: string
  readonly eventType: string
  readonly attempt: number
  readonly at: number
  readonly status: number | null
  readonly error: string | null
  readonly latencyMs: number
}

/** A delivery of the call that expired (maxAge) unsent. A delivery ended by a disable is in `attempts`, with the error "disabled". */
export interface TimelineExpiry {
  readonly at: number
  readonly deliveryId: number
  readonly eventId: string
  readonly eventType: string
}

/** Each part in time order; events received at one time as written, attempts made at one time by delivery (then as recorded), expiries by delivery. */
export interface CallTimeline {
  readonly events: ReadonlyArray<CallEventEntry>
  readonly attempts: ReadonlyArray<TimelineAttempt>
  readonly expiries: ReadonlyArray<TimelineExpiry>
}

export interface CallDetail extends CallListing {
  readonly timeline: CallTimeline
}

/** The record a call change creates when its room instance is new: the rest of the change is applied to it as to any record. */
export const callCreatedBy = (change: CallChange): CallRecord => ({
  key: change.key,
  room: change.room,
  roomSid: change.roomSid,
  status: change.identity?.tenant ? "active" : "unrouted",
  tenant: null,
  domain: null,
  from: null,
  to: null,
  sipCallId: null,
  routing: NO_ROUTING,
  sip: null,
  ...change.identity,
  firstSeenAt: change.at,
  startedAt: change.startedAt ?? null,
  endedAt: null,
  endedBy: null,
  disconnectReason: null
})
