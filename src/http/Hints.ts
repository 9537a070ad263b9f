import { Effect } from "effect"
import { hintsFor, hooksNamed, type Observed, type RoutingInForce } from "../ingest/RoutingHints.ts"
import type { HealthStore } from "../store/HealthStore.ts"

/** The hints for what was observed, with the health of the hooks they name read from the store every instance shares. */
export const hintsWithHealth = (health: HealthStore["Type"], routing: RoutingInForce, observed: Observed) =>
  Effect.map(
    Effect.forEach(hooksNamed(observed, routing), (host) => Effect.map(health.tenantHealth(host), ({ disabledAt }) => [host, disabledAt] as const)),
    (found) => {
      const disabledAt = new Map(found)
      return hintsFor(observed, routing, (host) => disabledAt.get(host) ?? null)
    }
  )
