import { Effect } from "effect"
import type { Delivery } from "../domain/Delivery.ts"
import { Conflict, NotFound, type StoreUnavailable } from "../domain/Errors.ts"
import type { TenantHealth } from "../domain/TenantHealth.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import { EngineClock } from "./EngineClock.ts"
import { LaneWindow } from "./LaneWindow.ts"
import { TenantHealthTracker } from "./TenantHealthTracker.ts"

/** What operators do to deliveries through the admin API: replay them, and enable a disabled tenant. */
export class DeliveryAdmin extends Effect.Service<DeliveryAdmin>()("DeliveryAdmin", {
  effect: Effect.gen(function* () {
    const store = yield* DeliveryQueue
    const window = yield* LaneWindow
    const health = yield* TenantHealthTracker
    const clock = yield* EngineClock
    return {
      /** Re-queues one failed delivery with a fresh attempt budget. */
      retry: (id: number): Effect.Effect<Delivery, NotFound | Conflict | StoreUnavailable> =>
        Effect.gen(function* () {
          const result = yield* store.requeue(id, clock.wallMs())
          if (result._tag === "NotFound") return yield* new NotFound({ message: `no delivery ${id}` })
          if (result._tag === "NotFailed") return yield* new Conflict({ message: `delivery ${id} is ${result.status}, not failed` })
          window.resume(result.delivery.tenant, id)
          return result.delivery
        }),
      /** Re-queues a tenant's failed deliveries created since `since`; returns how many. */
      recover: (tenant: string, since: number): Effect.Effect<number, StoreUnavailable> =>
        Effect.gen(function* () {
          const requeued = yield* store.requeueFailed(tenant, since, clock.wallMs())
          if (requeued.firstId !== undefined) window.resume(tenant, requeued.firstId)
          return requeued.count
        }),
      /** Enables a disabled tenant and ends its failing streak; new deliveries flow, failed ones wait for recover. */
      enable: (tenant: string): Effect.Effect<void, StoreUnavailable> => health.enable(tenant),
      /** The tenant's health as the store has it (shared by instances). */
      healthOf: (tenant: string): Effect.Effect<TenantHealth, StoreUnavailable> => health.stored(tenant)
    }
  })
}) {}
