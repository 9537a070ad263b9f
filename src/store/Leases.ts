import { Context, type Effect } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { QueuedDelivery } from "./Store.ts"

/**
 * A shared store's hold on pending deliveries, kept by the Reclaimer: each is
 * held by one instance, and what a dead one held is taken over. A store of one
 * (SQLite) has nothing to renew and nothing to take over.
 */
export class Leases extends Context.Tag("Leases")<
  Leases,
  {
    /** Keeps this instance's claim on the deliveries it holds, so no other instance takes them over. */
    readonly renewLeases: Effect.Effect<void, StoreUnavailable>
    /** Takes over pending deliveries whose holder stopped renewing them (it died), in arrival order. */
    readonly claimStale: Effect.Effect<ReadonlyArray<QueuedDelivery>, StoreUnavailable>
  }
>() {}
