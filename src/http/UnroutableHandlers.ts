import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import type { UnroutableEvent, UnroutableGroup } from "../domain/Delivery.ts"
import type { UnroutableDomainView, UnroutableView } from "../domain/DeliveryViews.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import { DeliveryHistory } from "../store/DeliveryHistory.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireOperator } from "./Authorization.ts"
import { iso } from "./Responses.ts"

const view = (u: UnroutableEvent): UnroutableView => ({
  at: iso(u.at),
  eventId: u.eventId,
  type: u.eventType,
  room: u.room,
  headers: u.headers,
  domain: u.domain,
  reason: u.reason
})

/** What an operator could do about a domain's unroutable events: none yet (the routing hints will say). */
const hintsOf = (_group: UnroutableGroup): Effect.Effect<ReadonlyArray<string>, StoreUnavailable> => Effect.succeed([])

const domainView = (g: UnroutableGroup, hints: ReadonlyArray<string>): UnroutableDomainView => ({
  domain: g.domain,
  reason: g.reason,
  count: g.count,
  firstSeen: iso(g.firstSeen),
  lastSeen: iso(g.lastSeen),
  sampleEventId: g.sampleEventId,
  hints
})

/** Operators only: an unroutable event belongs to no tenant, so no tenant token may read it. */
export const UnroutableLive = HttpApiBuilder.group(AdminApi, "unroutable", (handlers) =>
  Effect.gen(function* () {
    const history = yield* DeliveryHistory
    return handlers
      .handle("list", ({ urlParams: { limit } }) =>
        Effect.gen(function* () {
          yield* requireOperator(yield* CurrentPrincipal)
          return { items: (yield* history.unroutable(limit ?? 100)).map(view) }
        })
      )
      .handle("domains", () =>
        Effect.gen(function* () {
          yield* requireOperator(yield* CurrentPrincipal)
          const groups = yield* history.unroutableGroups
          return { items: yield* Effect.forEach(groups, (group) => Effect.map(hintsOf(group), (hints) => domainView(group, hints))) }
        })
      )
  })
)
