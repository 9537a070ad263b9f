import { Schema } from "effect"
import { CallRouting, CallStatus, DeliveryCounts, EndedBy } from "./Call.ts"
import { CallDomain, Limit } from "./DeliveryViews.ts"
import { HostPattern, NumberText } from "./Hook.ts"
import { strict } from "./HookViews.ts"
import { IsoTime } from "./IsoTime.ts"
import { excerpt, oneOf } from "./Untrusted.ts"

/** What the admin API shows of calls (`…View`), and the URL parameters that select them (`…Params`). Times are ISO-8601 in UTC. */

export const CallView = Schema.Struct({
  room: Schema.String,
  roomSid: Schema.NullOr(Schema.String),
  tenant: Schema.NullOr(Schema.String).annotations({ description: "the hook host its events go to; null while unrouted" }),
  status: CallStatus,
  domain: Schema.NullOr(Schema.String).annotations({ description: "the domain the SIP headers gave" }),
  from: Schema.NullOr(Schema.String).annotations({ description: "the caller's number (E.164 when it is one)" }),
  to: Schema.NullOr(Schema.String).annotations({ description: "the dialled number (E.164 when it is one)" }),
  sipCallId: Schema.NullOr(Schema.String),
  startedAt: Schema.NullOr(Schema.String).annotations({ description: "when its SIP participant joined" }),
  endedAt: Schema.NullOr(Schema.String),
  durationSeconds: Schema.NullOr(Schema.Number).annotations({ description: "endedAt minus startedAt; null until both are known" }),
  endedBy: Schema.NullOr(EndedBy),
  disconnectReason: Schema.NullOr(Schema.String).annotations({ description: "LiveKit's, when the participant's leaving gave one" }),
  routing: CallRouting.annotations({
    identifier: "CallRouting",
    description: "how the call found its tenant (rule, pattern, source: the attribute that decided), or why it found none (reason)"
  }),
  deliveries: DeliveryCounts.annotations({ identifier: "CallDeliveries", description: "the call's deliveries by status, call events included" })
}).annotations({ identifier: "Call" })
export type CallView = typeof CallView.Type

/** Newest first; `nextCursor` fetches the next page, `null` on the last. */
export const CallPageView = Schema.Struct({ items: Schema.Array(CallView), nextCursor: Schema.NullOr(Schema.String) }).annotations({ identifier: "CallPage" })
export type CallPageView = typeof CallPageView.Type

const at = Schema.String
const ofDelivery = { deliveryId: Schema.Number, eventId: Schema.String, eventType: Schema.String }

/** A LiveKit event of the call: when the router received it (`at`), LiveKit's `createdAt`, and the difference. */
export const TimelineEventView = Schema.Struct({
  kind: Schema.Literal("event"),
  at,
  eventId: Schema.String,
  eventType: Schema.String,
  createdAt: Schema.NullOr(Schema.String),
  lagMs: Schema.NullOr(Schema.Number).annotations({ description: "receipt minus LiveKit's createdAt; null without one" })
}).annotations({ identifier: "TimelineEvent" })

/** One attempt to deliver one of the call's events (or call events) to its tenant. */
export const TimelineAttemptView = Schema.Struct({
  kind: Schema.Literal("attempt"),
  at,
  ...ofDelivery,
  attempt: Schema.Number,
  status: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(Schema.String),
  latencyMs: Schema.Number
}).annotations({ identifier: "TimelineAttempt" })

/** A delivery that ended unsent: its event outlived the hook's maxAge. */
export const TimelineExpiredView = Schema.Struct({ kind: Schema.Literal("expired"), at, ...ofDelivery }).annotations({ identifier: "TimelineExpired" })

/** A delivery ended unsent because its tenant was disabled. */
export const TimelineDisabledView = Schema.Struct({ kind: Schema.Literal("disabled"), at, ...ofDelivery }).annotations({ identifier: "TimelineDisabled" })

export const TimelineEntryView = Schema.Union(TimelineEventView, TimelineAttemptView, TimelineExpiredView, TimelineDisabledView)
export type TimelineEntryView = typeof TimelineEntryView.Type

export const CallDetailView = Schema.Struct({
  ...CallView.fields,
  sip: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String })).annotations({ description: "the SIP participant's sip.* attributes as first seen" }),
  timeline: Schema.Array(TimelineEntryView).annotations({ description: "the call's events and its deliveries' attempts, in time order" })
}).annotations({ identifier: "CallDetail" })
export type CallDetailView = typeof CallDetailView.Type

/** A page's `nextCursor`, as issued: checked (and refused unless the router issued it) when used. */
export const CallCursorText = Schema.String.pipe(
  Schema.filter((s) => /^[A-Za-z0-9_-]{1,4096}\.[A-Za-z0-9_-]{1,64}$/.test(s) || `expected a nextCursor from a previous page, got ${excerpt(s)}`)
)

export const CallListParams = Schema.Struct({
  tenant: Schema.optional(HostPattern),
  status: Schema.optional(oneOf(CallStatus)),
  /** Matches the caller's or the dialled number. */
  number: Schema.optional(NumberText),
  domain: Schema.optional(CallDomain),
  since: Schema.optional(IsoTime),
  until: Schema.optional(IsoTime),
  limit: Schema.optional(Limit),
  cursor: Schema.optional(CallCursorText)
}).annotations(strict)
