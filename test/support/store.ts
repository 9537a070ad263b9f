import { Effect } from "effect"
import { Backups } from "../../src/store/Backups.ts"
import { CallHistory } from "../../src/store/CallHistory.ts"
import { DeliveryHistory } from "../../src/store/DeliveryHistory.ts"
import { DeliveryQueue } from "../../src/store/DeliveryQueue.ts"
import { EventStore } from "../../src/store/EventStore.ts"
import { HealthStore } from "../../src/store/HealthStore.ts"
import { HookStore } from "../../src/store/HookStore.ts"
import { Leases } from "../../src/store/Leases.ts"
import { Retention } from "../../src/store/Retention.ts"
import { SecretsAtRest } from "../../src/store/SecretsAtRest.ts"
import type { StoreServices } from "../../src/store/StoreLive.ts"
import { SessionStore } from "../../src/store/SessionStore.ts"
import { TokenStore } from "../../src/store/TokenStore.ts"

/** Every store tag's operations in one object (no two tags share a name), so the cases read as against one store. */
export type Store = EventStore["Type"] &
  DeliveryQueue["Type"] &
  Leases["Type"] &
  HealthStore["Type"] &
  DeliveryHistory["Type"] &
  HookStore["Type"] &
  Retention["Type"] &
  CallHistory["Type"] &
  TokenStore["Type"] &
  SessionStore["Type"] &
  Backups["Type"] &
  SecretsAtRest["Type"]

export const Store: Effect.Effect<Store, never, StoreServices> = Effect.map(
  Effect.all([EventStore, DeliveryQueue, Leases, HealthStore, DeliveryHistory, HookStore, Retention, CallHistory, TokenStore, SessionStore, Backups, SecretsAtRest]),
  (services): Store => Object.assign({}, ...services)
)

/** Runs `program` on a store gathered as above: each tag gets its part of it. */
export const provideStore = <A, E>(program: Effect.Effect<A, E, StoreServices>, store: Store) =>
  program.pipe(
    Effect.provideService(EventStore, store),
    Effect.provideService(DeliveryQueue, store),
    Effect.provideService(Leases, store),
    Effect.provideService(HealthStore, store),
    Effect.provideService(DeliveryHistory, store),
    Effect.provideService(HookStore, store),
    Effect.provideService(Retention, store),
    Effect.provideService(CallHistory, store),
    Effect.provideService(TokenStore, store),
    Effect.provideService(SessionStore, store),
    Effect.provideService(Backups, store),
    Effect.provideService(SecretsAtRest, store)
  )
