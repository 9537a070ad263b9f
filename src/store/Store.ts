import { Context, Effect, Option, Stream } from "effect"
import type {
  AttemptRecord,
  Delivery,
  DeliveryDetail,
  DeliveryQuery,
  NewDelivery,
  Pin,
  UnroutableEvent
} from "../domain/Delivery.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { NumberMapping, StoredHook } from "../domain/Hook.ts"
import type { TenantHealth } from "../domain/TenantHealth.ts"

/**
 * How an accepted event changes its room's pin. `Set` pins a room that has no pin (a pin is
 * never replaced, so a call stays where it started). `Touch` keeps a long call's pin from being
 * pruned. `End` marks the call ended (its SIP participant left) and keeps the pin; `Clear`
 * removes it (the room finished).
 */
export type PinChange =
  | { readonly _tag: "Set"; readonly pin: Pin }
  | { readonly _tag: "Touch"; readonly room: string }
  | { readonly _tag: "End"; readonly room: string; readonly at: number }
  | { readonly _tag: "Clear"; readonly room: string }

export interface Acceptance {
  readonly eventId: string
  readonly receivedAt: number
  readonly delivery: NewDelivery | undefined
  readonly pinChange: PinChange | undefined
  readonly unroutable: UnroutableEvent | undefined
  /**
   * A call event derived from this one (call.started with a `Set`, call.ended with an `End` or
   * `Clear`), queued after `delivery` only if the pin change took effect on the call: `Set`
   * created the pin, `End` or `Clear` found it not yet ended. The store decides, atomically, so
   * a call starts and ends once however its events are spread over batches and instances.
   */
  readonly callEvent?: NewDelivery | undefined
}

/** A pending delivery as the engine queues it: the body stays in the store until its attempt is due. */
export type QueuedDelivery = Omit<Delivery, "body"> & { readonly body?: string | undefined }

export interface RecordedAttempt {
  readonly id: number
  readonly record: AttemptRecord
}

export interface QueueStats {
  readonly depth: number
  /** `queuedAt` of the delivery that has waited longest; undefined when none is pending. */
  readonly oldestQueuedAt: number | undefined
}

export type AcceptResult =
  | { readonly _tag: "Accepted"; readonly delivery: Delivery | undefined; readonly callEvent?: Delivery | undefined }
  | { readonly _tag: "Duplicate" }

/** A delivery as the store has just queued it, built from what was written, so the store need not read it back. */
export const justQueued = (d: NewDelivery, id: number, at: number): Delivery => ({
  ...d,
  id,
  status: "pending",
  attempts: 0,
  lastStatus: null,
  lastError: null,
  nextAttemptAt: at,
  createdAt: at,
  queuedAt: at,
  updatedAt: at
})

export type RequeueResult =
  | { readonly _tag: "Requeued"; readonly delivery: Delivery }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "NotFailed"; readonly status: Delivery["status"] }

/** Both stores keep a tenant's health as one small cached value under this key. */
export const healthKey = (tenant: string) => `tenant-health:${tenant}`

export interface Requeued {
  readonly count: number
  readonly firstId: number | undefined
}

/** How long finished records are kept, in milliseconds, counted from their last change. */
export interface RetentionPolicy {
  readonly delivered: number
  readonly failed: number
  readonly dedupe: number
  readonly unroutable: number
  readonly pins: number
}

export interface Pruned {
  readonly deliveries: number
  readonly events: number
  readonly unroutable: number
  readonly pins: number
}

/**
 * Durable state: dedupe ids, room pins, the delivery outbox with its attempt
 * history, unroutable events and API-managed hooks. Every operation can fail
 * only with StoreUnavailable, so callers decide what a store outage means (for
 * the webhook: 503, so LiveKit retries). The Forwarder sees only this interface.
 */
export class Store extends Context.Tag("Store")<
  Store,
  {
    /**
     * Records each event with its pin change, delivery or unroutable record
     * atomically, all of them in one write; a repeated id is a Duplicate and
     * writes nothing. Results come in the order of the acceptances.
     */
    readonly acceptAll: (acceptances: ReadonlyArray<Acceptance>) => Effect.Effect<ReadonlyArray<AcceptResult>, StoreUnavailable>
    /** Succeeds when the store can be read. */
    readonly ping: Effect.Effect<void, StoreUnavailable>
    /** The pins of these rooms, in one read; rooms without one are absent. */
    readonly pinsOf: (rooms: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Pin>, StoreUnavailable>
    // The store is the delivery queue. The next four read it a window at a time, by
    // index, so neither memory nor start-up depends on how much is pending. A shared
    // store answers with what this instance holds (it accepted, requeued or took over).
    /** Tenants with a pending delivery. */
    readonly pendingTenants: Effect.Effect<ReadonlyArray<string>, StoreUnavailable>
    /** A tenant's pending deliveries with an id above `afterId`, in id (arrival) order, without their bodies. */
    readonly pendingAfter: (tenant: string, afterId: number, limit: number) => Effect.Effect<ReadonlyArray<QueuedDelivery>, StoreUnavailable>
    /** The first pending deliveries of one call (tenant and room), in id order, without their bodies. */
    readonly pendingInLane: (tenant: string, room: string, limit: number) => Effect.Effect<ReadonlyArray<QueuedDelivery>, StoreUnavailable>
    /** A delivery's body, read when its attempt is due; none once it is pruned. */
    readonly bodyOf: (id: number) => Effect.Effect<Option.Option<string>, StoreUnavailable>
    /** How many deliveries are pending, and since when the oldest has been waiting. */
    readonly queueStats: Effect.Effect<QueueStats, StoreUnavailable>
    /**
     * Appends each attempt to its delivery's history and moves the delivery to its new state, in one write.
     * An expiry (`final: "expired"`) is no attempt: it finishes a pending delivery without a history entry,
     * keeping its last status. Only a pending delivery changes state.
     */
    readonly recordAttempts: (attempts: ReadonlyArray<RecordedAttempt>) => Effect.Effect<void, StoreUnavailable>
    readonly deliveries: (query: DeliveryQuery) => Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    readonly delivery: (id: number) => Effect.Effect<Option.Option<DeliveryDetail>, StoreUnavailable>
    /** Moves a failed delivery back to pending with a fresh attempt budget. */
    readonly requeue: (id: number, now: number) => Effect.Effect<RequeueResult, StoreUnavailable>
    /** Requeues a tenant's failed deliveries created at or after `since`: how many, and the lowest id among them. */
    readonly requeueFailed: (tenant: string, since: number, now: number) => Effect.Effect<Requeued, StoreUnavailable>
    readonly unroutable: (limit: number) => Effect.Effect<ReadonlyArray<UnroutableEvent>, StoreUnavailable>
    /** Deletes what the policy no longer keeps (expired deliveries go with `failed`); pending deliveries are never pruned. */
    readonly prune: (now: number, policy: RetentionPolicy) => Effect.Effect<Pruned, StoreUnavailable>
    readonly apiHooks: Effect.Effect<ReadonlyArray<StoredHook>, StoreUnavailable>
    readonly putApiHook: (hook: StoredHook) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiHook: (host: string) => Effect.Effect<boolean, StoreUnavailable>
    readonly apiNumbers: Effect.Effect<ReadonlyArray<NumberMapping>, StoreUnavailable>
    readonly putApiNumber: (mapping: NumberMapping) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiNumber: (number: string) => Effect.Effect<boolean, StoreUnavailable>
    /** A small named value kept across restarts (the HTTP hook source's last good table). */
    readonly cached: (key: string) => Effect.Effect<Option.Option<string>, StoreUnavailable>
    readonly cache: (key: string, value: string) => Effect.Effect<void, StoreUnavailable>
    /** A tenant's health (failing streak, auto-disable); HEALTHY when none is recorded. */
    readonly tenantHealth: (tenant: string) => Effect.Effect<TenantHealth, StoreUnavailable>
    /** Replaces a tenant's health; written only on transitions (a streak starts or ends, disable, enable). */
    readonly setTenantHealth: (tenant: string, health: TenantHealth) => Effect.Effect<void, StoreUnavailable>
    /** Emits when another instance may have changed the API hooks or numbers, so the table is reloaded; never for a store of one. */
    readonly apiChanges: Stream.Stream<void>
    /** Keeps this instance's claim on the deliveries it holds, so no other instance takes them over. */
    readonly renewLeases: Effect.Effect<void, StoreUnavailable>
    /** Takes over pending deliveries whose holder stopped renewing them (it died), in arrival order. */
    readonly claimStale: Effect.Effect<ReadonlyArray<QueuedDelivery>, StoreUnavailable>
  }
>() {}
