import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import type { UnroutableEvent, UnroutableGroup } from "../domain/Delivery.ts"
import type { UnroutableDomainView, UnroutableView } from "../domain/DeliveryViews.ts"
import { AppConfig } from "../AppConfig.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { sipRules } from "../ingest/SipDecision.ts"
import { HealthStore } from "../store/HealthStore.ts"
import { hintsWithHealth } from "./Hints.ts"
import { Replay } from "../ingest/Replay.ts"
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

const domainView = (g: UnroutableGroup, hints: ReadonlyArray<string>): UnroutableDomainView => ({
  domain: g.domain,
  reason: g.reason,
  count: g.count,
  firstSeen: iso(g.firstSeen),
  lastSeen: iso(g.lastSeen),
  sampleEventId: g.sampleEventId,
  hints
})

const TENANT_CONFLICT_HINT =
  "Callers of this domain were put in rooms already pinned to another tenant: give each call its own room (LiveKit's individual dispatch rule), so no caller is placed with another tenant's call."

/** Operators only: an unroutable event belongs to no tenant, so no tenant token may read it. */
export const UnroutableLive = HttpApiBuilder.group(AdminApi, "unroutable", (handlers) =>
  Effect.gen(function* () {
    const history = yield* DeliveryHistory
    const config = yield* AppConfig
    const hooks = yield* HookTable
    const health = yield* HealthStore
    const rules = sipRules(config)
    /**
     * What an operator could do about a domain's unroutable events, from the latest one's headers.
     * A tenant conflict's domain routes; what is wrong is the room its callers were put in.
     */
    const hintsOf = (group: UnroutableGroup) =>
      group.reason === "tenant_conflict"
        ? Effect.succeed([TENANT_CONFLICT_HINT])
        : hintsWithHealth(health, { ...rules, table: hooks.inForce() }, {
            domain: group.domain,
            dialled: group.headers.dialled === null ? [] : [group.headers.dialled],
            routedTo: undefined
          })
    const replays = yield* Replay
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
      .handle("replay", ({ payload: { domain, since } }) =>
        Effect.zipRight(Effect.flatMap(CurrentPrincipal, requireOperator), replays.replay(domain, since?.getTime() ?? 0))
      )
  })
)
