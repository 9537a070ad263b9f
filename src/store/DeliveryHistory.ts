import { Context, type Effect, type Option } from "effect"
import type { Delivery, DeliveryDetail, DeliveryQuery, UnroutableEvent } from "../domain/Delivery.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"

/** What the admin API reads back: deliveries with their attempt history, and the events that reached no tenant. */
export class DeliveryHistory extends Context.Tag("DeliveryHistory")<
  DeliveryHistory,
  {
    readonly deliveries: (query: DeliveryQuery) => Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    readonly delivery: (id: number) => Effect.Effect<Option.Option<DeliveryDetail>, StoreUnavailable>
    readonly unroutable: (limit: number) => Effect.Effect<ReadonlyArray<UnroutableEvent>, StoreUnavailable>
  }
>() {}
