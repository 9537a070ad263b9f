import { Context, type Effect, type Option } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { QueuedDelivery, QueueStats, RecordedAttempt, Requeued, RequeueResult } from "./Store.ts"

/**
 * The store is the delivery queue: the delivery engine reads it and records
 * attempts in it, and the admin API's retry and recover requeue from it.
 */
export class DeliveryQueue extends Context.Tag("DeliveryQueue")<
  DeliveryQueue,
  {
    // The next four read the queue a window at a time, by index, so neither memory nor
    // start-up depends on how much is pending. A shared store answers with what this
    // instance holds (it accepted, requeued or took over).
    /** Tenants with a pending delivery. */
    readonly pendingTenants: Effect.Effect<ReadonlyArray<string>, StoreUnavailable>
    /** A tenant's pending deliveries with an id above `afterId`, in id (arrival) order, without their bodies. */
    readonly pendingAfter: (tenant: string, afterId: number, limit: number) => Effect.Effect<ReadonlyArray<QueuedDelivery>, StoreUnavailable>
    /** The first pending deliveries of one call (tenant and room), in id order, without their bodies. */
    readonly pendingInLane: (tenant: string, room: string, limit: number) => Effect.Effect<ReadonlyArray<QueuedDelivery>, StoreUnavailable>
    /** A delivery's body, read when its attempt is due; none once it is pruned. */
    readonly bodyOf: (id: number) => Effect.Effect<Option.Option<string>, StoreUnavailable>
    /**
     * Appends each attempt to its delivery's history and moves the delivery to its new state, in one write.
     * An expiry (`final: "expired"`) is no attempt: it finishes a pending delivery without a history entry,
     * keeping its last status. Only a pending delivery changes state.
     */
    readonly recordAttempts: (attempts: ReadonlyArray<RecordedAttempt>) => Effect.Effect<void, StoreUnavailable>
    /** How many deliveries are pending, and since when the oldest has been waiting. */
    readonly queueStats: Effect.Effect<QueueStats, StoreUnavailable>
    /** Moves a failed delivery back to pending with a fresh attempt budget. */
    readonly requeue: (id: number, now: number) => Effect.Effect<RequeueResult, StoreUnavailable>
    /** Requeues a tenant's failed deliveries created at or after `since`: how many, and the lowest id among them. */
    readonly requeueFailed: (tenant: string, since: number, now: number) => Effect.Effect<Requeued, StoreUnavailable>
  }
>() {}
