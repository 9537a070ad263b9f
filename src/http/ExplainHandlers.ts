import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { ExplainView } from "../domain/ExplainViews.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { REASONS } from "../ingest/Router.ts"
import { observedIn } from "../ingest/RoutingHints.ts"
import { decideSip, sipRules } from "../ingest/SipDecision.ts"
import { HealthStore } from "../store/HealthStore.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireOperator } from "./Authorization.ts"
import { hintsWithHealth } from "./Hints.ts"

/**
 * Operators only: the answer names any tenant's hook and URL. The decision is
 * the router's own (`decideSip` over the table in force); only the health of
 * the hooks the hints name is read, from the store every instance shares.
 */
export const ExplainLive = HttpApiBuilder.group(AdminApi, "explain", (handlers) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const hooks = yield* HookTable
    const health = yield* HealthStore
    const rules = sipRules(config)
    return handlers.handle("explain", ({ payload: { attributes } }) =>
      Effect.gen(function* () {
        yield* requireOperator(yield* CurrentPrincipal)
        const routing = { ...rules, table: hooks.inForce() }
        const decision = decideSip(attributes, routing.table, rules)
        const hints = yield* hintsWithHealth(health, routing, observedIn(decision))
        return {
          routed: decision.hook !== undefined,
          tenant: decision.hook?.host ?? null,
          url: decision.hook?.url ?? null,
          rule: decision.rule,
          pattern: decision.pattern,
          reason: decision.reason ? REASONS[decision.reason._tag] : null,
          steps: decision.steps,
          hints
        } satisfies ExplainView
      })
    )
  })
)
