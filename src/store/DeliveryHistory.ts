import { Context, type Effect, type Option } from "effect"
import type { Delivery, DeliveryChange, DeliveryDetail, DeliveryQuery, UnroutableEvent, UnroutableGroup } from "../domain/Delivery.ts"
import type { MinuteTally } from "../domain/AttemptMinutes.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"

/** What the admin API reads back: deliveries with their attempt history, and the events that reached no tenant. */
export class DeliveryHistory extends Context.Tag("DeliveryHistory")<
  DeliveryHistory,
  {
    readonly deliveries: (query: DeliveryQuery) => Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    readonly delivery: (id: number) => Effect.Effect<Option.Option<DeliveryDetail>, StoreUnavailable>
    readonly unroutable: (limit: number) => Effect.Effect<ReadonlyArray<UnroutableEvent>, StoreUnavailable>
    /** The unroutable events the store still holds, grouped by domain and reason, most recently seen first. */
    readonly unroutableGroups: Effect.Effect<ReadonlyArray<UnroutableGroup>, StoreUnavailable>
    /** Delivery changes after the one `after` names (a change's id), in order. */
    readonly changesAfter: (after: string, limit: number) => Effect.Effect<ReadonlyArray<DeliveryChange>, StoreUnavailable>
    /** The latest change's id: where a stream with nothing to resume starts. */
    readonly lastChange: Effect.Effect<string, StoreUnavailable>
    /**
     * The tallies of the attempts that ended in minutes `first` to `last` (minutes since the epoch,
     * both included; at most an hour's), in no particular order; a minute without attempts has none.
     * Each is kept at least two hours (MINUTE_TALLY_KEPT).
     */
    readonly attemptMinutes: (first: number, last: number) => Effect.Effect<ReadonlyArray<MinuteTally>, StoreUnavailable>
  }
>() {}
