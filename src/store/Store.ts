import type { CallChange } from "../domain/Call.ts"
import type { AttemptRecord, Delivery, NewDelivery, Pin, UnroutableEvent } from "../domain/Delivery.ts"

// The store's vocabulary, shared by its tags (EventStore, DeliveryQueue, Leases, HealthStore,
// DeliveryHistory, HookStore, Retention, CallHistory) and the backends that implement them.

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
  /** What the event does to its call's record (created, identified, started, ended, its timeline), applied in the same write. */
  readonly call?: CallChange | undefined
  /**
   * The raw LiveKit event, for an event that reached no tenant: the store keeps it while the call
   * is unrouted for a reason (an unroutable SIP event, or the other events of its room), so
   * `POST /v1/unroutable/replay` can route it once a hook exists.
   */
  readonly unroutedBody?: string | undefined
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
  readonly calls: number
  readonly feed: number
}
