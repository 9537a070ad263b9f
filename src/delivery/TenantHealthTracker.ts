import { Duration, Effect, Runtime } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { ALERTS_TENANT, tenantDisabled, tenantFailing, tenantRecovered, type LastSeen } from "../domain/Alert.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import { afterOutcome, alertedStreak, endedStreak, failingToTell, HEALTHY, streakToKeep, type TenantHealth } from "../domain/TenantHealth.ts"
import { HealthStore } from "../store/HealthStore.ts"
import { AlertQueue } from "./AlertQueue.ts"
import { InFlight } from "./InFlight.ts"

/**
 * Each tenant's delivery health (its failing streak, auto-disable) as the
 * engine sees it, over the pure transitions in domain/TenantHealth.ts. It is
 * read from the store once per tenant, and again while the tenant is disabled
 * (an operator may enable it on any instance); it is written only on
 * transitions. It raises the alerts those transitions call for. Times are
 * wall times: streaks are compared across instances and restarts.
 */
export class TenantHealthTracker extends Effect.Service<TenantHealthTracker>()("TenantHealthTracker", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* HealthStore
    const alerts = yield* AlertQueue
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const disableAfterMs = Duration.toMillis(config.delivery.disableAfter)
    const alerting = config.alerts !== undefined
    const writes = new InFlight()
    const health = new Map<string, TenantHealth>()
    const loading = new Map<string, Promise<void>>()
    /** Per tenant: bumped by every change, and how many writes are not yet committed, so a read never undoes a newer change. */
    const versions = new Map<string, number>()
    const writing = new Map<string, number>()
    /** When each tenant last answered a 2xx here: a streak in the store that began before that is not this outage. */
    const lastSuccess = new Map<string, number>()

    const current = (tenant: string) => health.get(tenant) ?? HEALTHY

    const healthOf = async (tenant: string): Promise<TenantHealth> => {
      const known = health.get(tenant)
      if (known !== undefined && known.disabledAt === null) return known
      let pending = loading.get(tenant)
      if (!pending) {
        const version = versions.get(tenant) ?? 0
        const quiet = (writing.get(tenant) ?? 0) === 0
        pending = run(
          store.tenantHealth(tenant).pipe(
            Effect.catchTag("StoreUnavailable", (e) => Effect.as(Effect.logWarning("could not read the delivery queue; will retry", e.cause), undefined))
          )
        ).then((found) => {
          loading.delete(tenant)
          if (found !== undefined && quiet && (versions.get(tenant) ?? 0) === version) health.set(tenant, found)
        })
        loading.set(tenant, pending)
      }
      await pending
      return current(tenant)
    }

    /** Sets the tenant's health here at once and runs `write` to record it; `version` is this change's, for `write` to compare. */
    const change = (tenant: string, next: TenantHealth, write: (version: number) => Effect.Effect<void, StoreUnavailable>) => {
      health.set(tenant, next)
      const version = (versions.get(tenant) ?? 0) + 1
      versions.set(tenant, version)
      writing.set(tenant, (writing.get(tenant) ?? 0) + 1)
      void writes.track(
        run(write(version).pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning("tenant health not recorded", e.cause)))).finally(() =>
          writing.set(tenant, writing.get(tenant)! - 1)
        )
      )
    }
    const set = (tenant: string, next: TenantHealth) => change(tenant, next, () => store.setTenantHealth(tenant, next))

    const startStreak = (tenant: string, started: TenantHealth) =>
      change(tenant, started, (version) =>
        Effect.flatMap(store.tenantHealth(tenant), (stored) => {
          const kept = streakToKeep(stored, started, lastSuccess.get(tenant) ?? -Infinity)
          if (kept === started) return store.setTenantHealth(tenant, started)
          return Effect.sync(() => void (versions.get(tenant) === version && health.set(tenant, stored)))
        })
      )

    /** Several instances ending the same streak send the same alert id, so one `tenant.recovered`. */
    const endStreak = (tenant: string, before: TenantHealth, ended: TenantHealth, at: number) =>
      change(tenant, ended, () =>
        Effect.flatMap(store.tenantHealth(tenant), (stored) => {
          const since = alertedStreak(before, stored)
          if (since !== undefined) alerts.raise(tenantRecovered(tenant, since, at))
          return store.setTenantHealth(tenant, endedStreak(stored))
        })
      )

    return {
      /** The tenant's health, read from the store when not known here or while disabled. */
      healthOf,
      /** Whether the tenant is disabled, as last known here: for checks that cannot wait for a read. */
      isDisabled: (tenant: string) => current(tenant).disabledAt !== null,
      /**
       * An attempt's outcome moves the tenant's failing streak; true when it disabled the tenant.
       * The alerts endpoint is never disabled: nothing would then say it is down.
       */
      noteOutcome: (tenant: string, succeeded: boolean, at: number): boolean => {
        if (tenant === ALERTS_TENANT) return false
        if (succeeded) lastSuccess.set(tenant, at)
        const before = current(tenant)
        const next = afterOutcome(before, succeeded, at, disableAfterMs)
        switch (next._tag) {
          case "Unchanged":
            return false
          case "StreakStarted":
            startStreak(tenant, next.health)
            return false
          case "StreakEnded":
            endStreak(tenant, before, next.health, at)
            return false
          case "Disabled":
            set(tenant, next.health)
            void run(
              Effect.logWarning("tenant disabled").pipe(
                Effect.annotateLogs({ tenant, failingSince: new Date(next.failingSince).toISOString(), disabledAt: new Date(at).toISOString() })
              )
            )
            alerts.raise(tenantDisabled(tenant, next.failingSince, at))
            return true
        }
      },
      /**
       * A circuit opening is a `tenant.failing`, once per streak. A circuit closing is not the
       * recovery: a 4xx closes it too, while the streak goes on; the 2xx that ends the streak is.
       */
      circuitOpened: (tenant: string, last: LastSeen, at: number) => {
        if (!alerting || tenant === ALERTS_TENANT) return
        const tell = failingToTell(current(tenant), at)
        if (tell === undefined) return
        alerts.raise(tenantFailing(tenant, tell.since, at, last))
        if (tell.health) set(tenant, tell.health)
      },
      /** Enables a disabled tenant and ends its failing streak. */
      enable: (tenant: string): Effect.Effect<void, StoreUnavailable> =>
        Effect.zipRight(
          store.setTenantHealth(tenant, HEALTHY),
          Effect.sync(() => {
            health.set(tenant, HEALTHY)
            versions.set(tenant, (versions.get(tenant) ?? 0) + 1)
          })
        ),
      /** The tenant's health as the store has it (shared by instances). */
      stored: (tenant: string): Effect.Effect<TenantHealth, StoreUnavailable> => store.tenantHealth(tenant),
      writes
    }
  })
}) {}
