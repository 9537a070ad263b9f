import { Context, type Effect } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { TenantHealth } from "../domain/TenantHealth.ts"

/** Each tenant's delivery health, shared by instances and kept across restarts. */
export class HealthStore extends Context.Tag("HealthStore")<
  HealthStore,
  {
    /** A tenant's health (failing streak, auto-disable); HEALTHY when none is recorded. */
    readonly tenantHealth: (tenant: string) => Effect.Effect<TenantHealth, StoreUnavailable>
    /** Every tenant whose health was ever recorded, with it, in one read: the others are healthy. */
    readonly recordedHealth: Effect.Effect<ReadonlyArray<readonly [tenant: string, health: TenantHealth]>, StoreUnavailable>
    /** Replaces a tenant's health; written only on transitions (a streak starts or ends, disable, enable). */
    readonly setTenantHealth: (tenant: string, health: TenantHealth) => Effect.Effect<void, StoreUnavailable>
  }
>() {}
