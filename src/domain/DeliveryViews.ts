import { Schema } from "effect"
import { ALERTS_TENANT, AlertType } from "./Alert.ts"
import { DeliveryStatus, UnroutableEvent } from "./Delivery.ts"
import { CALL_EVENTS, HostPattern, isHostname, LIVEKIT_EVENTS, normaliseHost } from "./Hook.ts"
import { strict } from "./HookViews.ts"
import { IsoTime } from "./IsoTime.ts"
import { excerpt, oneOf } from "./Untrusted.ts"

/** What the admin API shows of deliveries and unroutable events (`…View`), and the URL parameters that select them (`…Params`). Times are ISO-8601 in UTC. */

/** The operator's view of a delivery; the body stays in the store (it carries callers' numbers). */
export const DeliveryView = Schema.Struct({
  id: Schema.Number,
  eventId: Schema.String,
  type: Schema.String,
  tenant: Schema.String,
  url: Schema.String,
  room: Schema.NullOr(Schema.String),
  status: DeliveryStatus,
  attempts: Schema.Number,
  lastStatus: Schema.NullOr(Schema.Number),
  lastError: Schema.NullOr(Schema.String),
  nextAttemptAt: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
  updatedAt: Schema.String
}).annotations({ identifier: "Delivery" })
export type DeliveryView = typeof DeliveryView.Type

export const AttemptView = Schema.Struct({
  attempt: Schema.Number,
  at: Schema.String,
  status: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(Schema.String),
  latencyMs: Schema.Number
})

export const DeliveryDetailView = Schema.Struct({ ...DeliveryView.fields, history: Schema.Array(AttemptView) }).annotations({ identifier: "DeliveryDetail" })
export type DeliveryDetailView = typeof DeliveryDetailView.Type

/** Newest first; `nextCursor` fetches the next page, `null` on the last. */
export const DeliveryPageView = Schema.Struct({ items: Schema.Array(DeliveryView), nextCursor: Schema.NullOr(Schema.String) })
export type DeliveryPageView = typeof DeliveryPageView.Type

export const RecoveryView = Schema.Struct({ tenant: Schema.String, since: Schema.String, requeued: Schema.Number })
export type RecoveryView = typeof RecoveryView.Type

const UNROUTABLE_REASONS =
  "missing_header: neither sip.h.x-to-ip nor sip.h.to arrived; malformed_header: no host in them; unknown_domain: no hook (or number) claims the domain; tenant_conflict: a SIP participant whose own domain is another tenant's than the room's (its events go to neither)"

export const UnroutableView = Schema.Struct({
  at: Schema.String,
  eventId: Schema.String,
  type: Schema.String,
  room: Schema.NullOr(Schema.String),
  headers: UnroutableEvent.fields.headers,
  domain: Schema.NullOr(Schema.String),
  reason: UnroutableEvent.fields.reason.annotations({ description: UNROUTABLE_REASONS })
}).annotations({ identifier: "UnroutableEvent" })
export type UnroutableView = typeof UnroutableView.Type

export const UnroutableListView = Schema.Struct({ items: Schema.Array(UnroutableView) })

/** Plain decimal digits only: Number() would also take "0x10", "1e3" and " 7 ". */
const IntFromString = (min: number, max: number) =>
  Schema.String.pipe(
    Schema.filter((s) => /^[0-9]{1,16}$/.test(s) || `expected a whole number from ${min} to ${max}, got ${excerpt(s)}`),
    Schema.compose(Schema.NumberFromString),
    Schema.filter((n) => (n >= min && n <= max) || `expected a whole number from ${min} to ${max}`)
  )

export const Limit = IntFromString(1, 1000)
export const DeliveryId = IntFromString(1, Number.MAX_SAFE_INTEGER)

/** Whose deliveries: a hook host, or the operational alerts' pseudo-tenant. */
export const DeliveryTenant = Schema.Union(HostPattern, Schema.Literal(ALERTS_TENANT))

/** Text as LiveKit or an edge wrote it (a room name, an event id): 1 to `max` characters, none of them a control character. */
const NameText = (what: string, max: number) =>
  Schema.String.pipe(
    Schema.filter((s) => (s.length >= 1 && s.length <= max && !/[\u0000-\u001f\u007f]/.test(s)) || `expected ${what} of 1 to ${max} characters without control characters, got ${excerpt(s)}`)
  )

/** A LiveKit room's name, or its sid (`RM_…`). */
export const RoomName = NameText("a room name", 512)
export const EventIdFilter = NameText("an event id", 256)

/** Every type a delivery can carry: a LiveKit event, a call event, an operational alert. */
export const EventType = Schema.Literal(...LIVEKIT_EVENTS, ...CALL_EVENTS, ...AlertType.literals).annotations({
  message: (issue) => ({
    message: `expected an event type (participant_joined, room_finished, call.started, delivery.failed, ...), got ${typeof issue.actual === "string" ? excerpt(issue.actual) : typeof issue.actual}`,
    override: true
  })
})

const isIpv6 = (s: string) => s.includes(":") && /^[0-9a-f:.]{2,45}$/.test(s)

/** A call's domain as the router parsed it from the SIP headers: a host name or an IP address, compared lower-case. */
export const CallDomain = Schema.transform(Schema.String, Schema.String, {
  strict: true,
  decode: (s) => normaliseHost(s).replace(/^\[(.*)\]$/, "$1"),
  encode: (s) => s
}).pipe(Schema.filter((d) => isHostname(d) || isIpv6(d) || `expected a domain like "calls.example.com" or an IP address, got ${excerpt(d)}`))

export const DeliveryListParams = Schema.Struct({
  status: Schema.optional(oneOf(DeliveryStatus)),
  tenant: Schema.optional(DeliveryTenant),
  limit: Schema.optional(Limit),
  cursor: Schema.optional(DeliveryId),
  room: Schema.optional(RoomName),
  eventId: Schema.optional(EventIdFilter),
  eventType: Schema.optional(EventType),
  /** The call's domain: a host under a wildcard hook finds its own deliveries, not its siblings'. */
  domain: Schema.optional(CallDomain)
}).annotations(strict)

export const RecoverParams = Schema.Struct({ since: IsoTime }).annotations(strict)

export const UnroutableListParams = Schema.Struct({ limit: Schema.optional(Limit) }).annotations(strict)

/** `POST /v1/unroutable/replay`: the domain whose unroutable calls to route again, since when (default: all the store holds). */
export const ReplayRequest = Schema.Struct({
  domain: HostPattern.annotations({ description: "the domain the calls arrived for; a hook must match it now" }),
  since: Schema.optional(IsoTime)
}).annotations({ ...strict, identifier: "ReplayRequest" })

/** How many events were routed again, and to which hook. */
export const ReplayView = Schema.Struct({ replayed: Schema.Number, tenant: Schema.String }).annotations({ identifier: "Replay" })
export type ReplayView = typeof ReplayView.Type

/** Unroutable events of one domain and reason, counted (`GET /v1/unroutable/domains`). */
export const UnroutableDomainView = Schema.Struct({
  domain: Schema.NullOr(Schema.String),
  reason: UnroutableEvent.fields.reason.annotations({ description: UNROUTABLE_REASONS }),
  count: Schema.Number,
  firstSeen: Schema.String,
  lastSeen: Schema.String,
  sampleEventId: Schema.String.annotations({ description: "the latest of them" }),
  hints: Schema.Array(Schema.String).annotations({ description: "what an operator could do about them" })
}).annotations({ identifier: "UnroutableDomain" })
export type UnroutableDomainView = typeof UnroutableDomainView.Type

/** Most recently seen first. */
export const UnroutableDomainListView = Schema.Struct({ items: Schema.Array(UnroutableDomainView) })
