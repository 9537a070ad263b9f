import { Context, Effect, Layer, type Scope } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import { DeliveryHistory } from "./DeliveryHistory.ts"
import { DeliveryQueue } from "./DeliveryQueue.ts"
import { EventStore } from "./EventStore.ts"
import { HealthStore } from "./HealthStore.ts"
import { HookStore } from "./HookStore.ts"
import { Leases } from "./Leases.ts"
import { Retention } from "./Retention.ts"

/** Every tag a store provides. */
export type StoreServices = EventStore | DeliveryQueue | Leases | HealthStore | DeliveryHistory | HookStore | Retention

/** Every tag's operations in one object, as a store makes them. */
export type StoreOperations = EventStore["Type"] &
  DeliveryQueue["Type"] &
  Leases["Type"] &
  HealthStore["Type"] &
  DeliveryHistory["Type"] &
  HookStore["Type"] &
  Retention["Type"]

/** Every tag over one store, opened once and shared. */
export const storeLayer = (make: Effect.Effect<StoreOperations, StoreUnavailable, Scope.Scope>): Layer.Layer<StoreServices, StoreUnavailable> =>
  Layer.scopedContext(
    Effect.map(make, (store) =>
      Context.make(EventStore, store).pipe(
        Context.add(DeliveryQueue, store),
        Context.add(Leases, store),
        Context.add(HealthStore, store),
        Context.add(DeliveryHistory, store),
        Context.add(HookStore, store),
        Context.add(Retention, store)
      )
    )
  )
