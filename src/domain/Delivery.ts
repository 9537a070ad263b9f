import { Schema } from "effect"
import { UnroutableReason } from "./Call.ts"
import { EventName, StoredSecret } from "./Hook.ts"

// Schemas, so the stores decode what they read instead of trusting it, and keep secrets redacted.

/** Where a call's events go: fixed when the room is pinned, so mid-call hook edits do not move a call. */
export const Destination = Schema.Struct({
  /** The hook's host pattern, which is also the tenant's name in logs and metrics. */
  tenant: Schema.String,
  url: Schema.String,
  /** Event filter in force when the room was pinned; undefined means all events. */
  events: Schema.optional(Schema.Array(EventName)),
  /** The hook's own secret when the room was pinned, for signing if the hook is later removed or moved. */
  secret: Schema.optional(StoredSecret)
})
export interface Destination extends Schema.Schema.Type<typeof Destination> {}

/** What the tenant is told about the call, in every forwarded event. */
export const CallInfo = Schema.Struct({
  room: Schema.NullOr(Schema.String),
  sipCallId: Schema.NullOr(Schema.String),
  from: Schema.NullOr(Schema.String),
  to: Schema.NullOr(Schema.String),
  domain: Schema.NullOr(Schema.String)
})
export interface CallInfo extends Schema.Schema.Type<typeof CallInfo> {}

/** The call's SIP participant as the event that pinned the room saw it: what call.started and call.ended report. */
export const CallStart = Schema.Struct({
  /** LiveKit's createdAt of the pinning event (else when the router received it), in ms. */
  at: Schema.Number,
  identity: Schema.NullOr(Schema.String),
  sid: Schema.NullOr(Schema.String)
})
export interface CallStart extends Schema.Schema.Type<typeof CallStart> {}

export const Pin = Schema.Struct({
  room: Schema.String,
  /** The room instance pinned (LiveKit's room sid): an event of another instance of the same name is a new call. Absent on older pins. */
  roomSid: Schema.optional(Schema.String),
  destination: Destination,
  call: CallInfo,
  /** Absent on pins written before call events existed: such a call gets no call.ended. */
  start: Schema.optional(CallStart),
  /** When the call's SIP participant left (ms): the call has ended, and the pin stays so the room's later events still route. */
  endedAt: Schema.optional(Schema.Number)
})
export interface Pin extends Schema.Schema.Type<typeof Pin> {}

/** `expired`: the hook's `maxAge` passed before the event could be sent; it never will be (final, like `failed`). */
export const DeliveryStatus = Schema.Literal("pending", "failed", "delivered", "expired")
export type DeliveryStatus = typeof DeliveryStatus.Type

/** A forwarded event as written at acceptance time; the body is final, the signature is made per attempt. */
export const NewDelivery = Schema.Struct({
  eventId: Schema.String,
  eventType: Schema.String,
  tenant: Schema.String,
  url: Schema.String,
  /** Deliveries of one room to one tenant go out in arrival order. */
  room: Schema.NullOr(Schema.String),
  domain: Schema.NullOr(Schema.String),
  body: Schema.String,
  /** LiveKit's createdAt, for end-to-end latency; null when the event had none. */
  eventCreatedAt: Schema.NullOr(Schema.Number),
  /** The destination's own secret as resolved (null: the default secret). */
  secret: Schema.NullOr(StoredSecret),
  /** The W3C `traceparent` of the webhook's span, so every attempt joins its trace, even after a restart; null when not traced. */
  trace: Schema.NullOr(Schema.String),
  /** The call (room instance) it belongs to; null for alerts, and for deliveries from before call records. */
  call: Schema.NullOr(Schema.String)
})
export interface NewDelivery extends Schema.Schema.Type<typeof NewDelivery> {}

export const Delivery = Schema.Struct({
  id: Schema.Number,
  ...NewDelivery.fields,
  status: DeliveryStatus,
  /** Attempts since the delivery was (re)queued. */
  attempts: Schema.Number,
  lastStatus: Schema.NullOr(Schema.Number),
  lastError: Schema.NullOr(Schema.String),
  nextAttemptAt: Schema.Number,
  createdAt: Schema.Number,
  /** When it last became pending: at acceptance, or when an operator requeued it. */
  queuedAt: Schema.Number,
  updatedAt: Schema.Number
})
export interface Delivery extends Schema.Schema.Type<typeof Delivery> {}

/** One attempt as it happened, kept for the admin API's history. */
export const Attempt = Schema.Struct({
  attempt: Schema.Number,
  at: Schema.Number,
  status: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(Schema.String),
  latencyMs: Schema.Number
})
export interface Attempt extends Schema.Schema.Type<typeof Attempt> {}

/** The error of the history entry that ends a delivery unsent because its tenant is disabled. */
export const DISABLED_ERROR = "disabled"

type HistoryEntry = Pick<Attempt, "attempt" | "status" | "error">

/** A disable's entry in a history: nothing was sent. */
export const isDisableEntry = (entry: Omit<HistoryEntry, "attempt">) => entry.status === null && entry.error === DISABLED_ERROR

/**
 * A history numbered as it is read: each attempt one more than the one before
 * it, across retries (the engine counts within an attempt budget, which a
 * retry or recover starts afresh), and a disable's entry with the attempts
 * made before it. Entries in recorded order; `deliveryOf` numbers the
 * deliveries of a mixed list (a call's timeline) each on its own.
 */
export const numberedOn = <A extends HistoryEntry>(entries: ReadonlyArray<A>, deliveryOf: (entry: A) => number = () => 0): ReadonlyArray<A> => {
  const made = new Map<number, number>()
  return entries.map((entry) => {
    const delivery = deliveryOf(entry)
    const attempt = (made.get(delivery) ?? 0) + (isDisableEntry(entry) ? 0 : 1)
    made.set(delivery, attempt)
    return { ...entry, attempt }
  })
}

/** The outcome of one attempt, recorded together with the delivery's new state. */
export interface AttemptRecord extends Attempt {
  /**
   * Set when the delivery is finished; otherwise it stays pending until `nextAttemptAt`.
   * `expired` is a finish without an attempt: nothing was sent, so it adds no history entry,
   * keeps the attempt count (`attempt`: the attempts made so far) and the last status, and
   * sets the last error (`error`).
   */
  readonly final: "delivered" | "failed" | "expired" | undefined
  readonly nextAttemptAt: number
}

export interface DeliveryDetail extends Delivery {
  readonly history: ReadonlyArray<Attempt>
}

export interface DeliveryQuery {
  readonly status: DeliveryStatus | undefined
  readonly tenant: string | undefined
  readonly room?: string | undefined
  readonly eventId?: string | undefined
  readonly eventType?: string | undefined
  /** The call's domain: a host under a wildcard hook finds its own deliveries, not its siblings'. */
  readonly domain?: string | undefined
  readonly limit: number
  /** Only deliveries with a smaller id: pages run newest first. */
  readonly before: number | undefined
}

/** A SIP event that reached no tenant, kept so operators can see what arrived. */
export const UnroutableEvent = Schema.Struct({
  at: Schema.Number,
  eventId: Schema.String,
  eventType: Schema.String,
  room: Schema.NullOr(Schema.String),
  /** The raw header values the router saw (x-to-ip, to) and the dialled number. */
  headers: Schema.Struct({ xToIp: Schema.NullOr(Schema.String), to: Schema.NullOr(Schema.String), dialled: Schema.NullOr(Schema.String) }),
  domain: Schema.NullOr(Schema.String),
  reason: UnroutableReason,
  /** The call (room instance) it belongs to; absent on records from before call records. */
  call: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })
})
export interface UnroutableEvent extends Schema.Schema.Type<typeof UnroutableEvent> {}

/** Unroutable events of one domain and reason, counted: what `GET /v1/unroutable/domains` lists. */
export interface UnroutableGroup {
  readonly domain: string | null
  readonly reason: UnroutableEvent["reason"]
  readonly count: number
  readonly firstSeen: number
  readonly lastSeen: number
  /** The latest of them: its id and what the edge sent. */
  readonly sampleEventId: string
  readonly headers: UnroutableEvent["headers"]
}

/** A change of a delivery (queued, attempted, expired, requeued), as the live stream sends it; `id` is where a stream resumes. */
export const DeliveryChange = Schema.Struct({
  id: Schema.String,
  deliveryId: Schema.Number,
  ...Delivery.pick("tenant", "eventId", "eventType", "room").fields,
  status: DeliveryStatus,
  attempts: Schema.Number,
  at: Schema.Number
})
export interface DeliveryChange extends Schema.Schema.Type<typeof DeliveryChange> {}

/** An event kept while its call was unrouted, for a replay. */
export const UnroutedEvent = Schema.Struct({
  call: Schema.String,
  eventId: Schema.String,
  at: Schema.Number,
  body: Schema.String
})
export interface UnroutedEvent extends Schema.Schema.Type<typeof UnroutedEvent> {}
