import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Clock, Effect } from "effect"
import { lastMinutes, MINUTE_MS, summarize } from "../domain/AttemptMinutes.ts"
import type { TenantHealth } from "../domain/TenantHealth.ts"
import { topUnroutableDomains } from "../domain/OverviewViews.ts"
import { entryFor, HookTable } from "../hooks/HookTable.ts"
import { DeliveryHistory } from "../store/DeliveryHistory.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import { HealthStore } from "../store/HealthStore.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireOperator } from "./Authorization.ts"
import { iso } from "./Responses.ts"

/** The minutes the overview covers: the last hour. */
const HOUR = 60
/** The unroutable domains it names. */
const TOP_DOMAINS = 5

/** Operators only: it spans every tenant. */
export const OverviewLive = HttpApiBuilder.group(AdminApi, "overview", (handlers) =>
  Effect.gen(function* () {
    const history = yield* DeliveryHistory
    const queue = yield* DeliveryQueue
    const health = yield* HealthStore
    const hooks = yield* HookTable

    /** The hosts with a hook now whose health is failing or disabled, each sorted; a removed hook's health is not its tenant's any more. */
    const troubled = Effect.map(health.recordedHealth, (recorded) => {
      const table = hooks.inForce()
      const current = recorded.filter(([host]) => entryFor(table, host) !== undefined)
      const hosts = (keep: (h: TenantHealth) => boolean) =>
        current
          .filter(([, h]) => keep(h))
          .map(([host]) => host)
          .sort()
      return { failing: hosts((h) => h.disabledAt === null && h.failingSince !== null), disabled: hosts((h) => h.disabledAt !== null) }
    })

    return handlers.handle("overview", () =>
      Effect.gen(function* () {
        yield* requireOperator(yield* CurrentPrincipal)
        const now = yield* Clock.currentTimeMillis
        const { first, last } = lastMinutes(now, HOUR)
        const { tallies, stats, tenants, groups } = yield* Effect.all(
          { tallies: history.attemptMinutes(first, last), stats: queue.queueStats, tenants: troubled, groups: history.unroutableGroups },
          { concurrency: "unbounded" }
        )
        const hour = summarize(tallies, first, last)
        return {
          from: iso(first * MINUTE_MS),
          to: iso(now),
          minutes: hour.minutes.map((m) => ({ at: iso(m.minute * MINUTE_MS), succeeded: m.succeeded, failed: m.failed })),
          successRate: hour.successRate,
          p99Ms: hour.p99Ms,
          queue: { pending: stats.depth, oldestPendingAt: stats.oldestQueuedAt === undefined ? null : iso(stats.oldestQueuedAt) },
          tenants,
          unroutable: topUnroutableDomains(groups, TOP_DOMAINS)
        }
      })
    )
  })
)
