import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import type { UnroutableEvent } from "../domain/Delivery.ts"
import type { UnroutableView } from "../domain/DeliveryViews.ts"
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


/** Operators only: an unroutable event belongs to no tenant, so no tenant token may read it. */
export const UnroutableLive = HttpApiBuilder.group(AdminApi, "unroutable", (handlers) =>
  Effect.gen(function* () {
    const history = yield* DeliveryHistory
    const replays = yield* Replay
    return handlers
      .handle("list", ({ urlParams: { limit } }) =>
        Effect.gen(function* () {
          yield* requireOperator(yield* CurrentPrincipal)
          return { items: (yield* history.unroutable(limit ?? 100)).map(view) }
        })
      )
      .handle("replay", ({ payload: { domain, since } }) =>
        Effect.zipRight(Effect.flatMap(CurrentPrincipal, requireOperator), replays.replay(domain, since?.getTime() ?? 0))
      )
  })
)
