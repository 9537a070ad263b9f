import type { Effect } from "effect"
import type { Pin } from "../domain/Delivery.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { DeliveryHistory } from "./DeliveryHistory.ts"
import type { DeliveryQueue } from "./DeliveryQueue.ts"
import type { HookStore } from "./HookStore.ts"
import type { Leases } from "./Leases.ts"
import type { PruneTarget } from "./Retention.ts"
import type { Acceptance } from "./Store.ts"

/** What acceptance wrote for one event: the ids of what it queued, so the bodies need not be copied back. */
export type AcceptOutcome =
  | { readonly _tag: "Duplicate" }
  | { readonly _tag: "Accepted"; readonly deliveryId: number | undefined; readonly callEventId: number | undefined }

/**
 * What keeps the data (SQLite's tables, Redis's keys), as the operations each
 * does in its own SQL or Lua. What the stores have in common is written once
 * over this, in StoreLayer.ts: what acceptance answers, health kept in the
 * cache, how pruning proceeds, and the reads that need not reach the store.
 */
export interface StoreBackend {
  /** Writes each acceptance as EventStore.acceptAll says: atomically, in order, a repeated id writing nothing. */
  readonly accept: (acceptances: ReadonlyArray<Acceptance>) => Effect.Effect<ReadonlyArray<AcceptOutcome>, StoreUnavailable>
  /** The pins of these rooms (at least one), in one read. */
  readonly pinsOf: (rooms: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Pin>, StoreUnavailable>
  readonly ping: Effect.Effect<void, StoreUnavailable>
  /** Its reads are asked for at least one delivery. */
  readonly queue: DeliveryQueue["Type"]
  /** Its reads are asked for at least one record. */
  readonly history: DeliveryHistory["Type"]
  readonly hooks: HookStore["Type"]
  readonly leases: Leases["Type"]
  /** Deletes at most `limit` of the target's records last changed before `before` (never a pending delivery): how many went. */
  readonly pruneSlice: (target: PruneTarget, before: number, limit: number) => Effect.Effect<number, StoreUnavailable>
}
