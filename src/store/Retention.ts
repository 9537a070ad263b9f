import { Context, type Effect } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { Pruned, RetentionPolicy } from "./Store.ts"

/** What pruning deletes, each in slices. */
export type PruneTarget = "delivered" | "failed" | "expired" | "events" | "unroutable" | "pins" | "calls" | "feed"

/** The Janitor's: deleting what retention no longer keeps, so the store does not grow without bound. */
export class Retention extends Context.Tag("Retention")<
  Retention,
  {
    /** Deletes what the policy no longer keeps (expired deliveries go with `failed`); pending deliveries are never pruned. */
    readonly prune: (now: number, policy: RetentionPolicy) => Effect.Effect<Pruned, StoreUnavailable>
  }
>() {}
