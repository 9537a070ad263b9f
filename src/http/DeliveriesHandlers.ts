import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { DeliveryAdmin } from "../delivery/DeliveryAdmin.ts"
import type { Attempt, Delivery } from "../domain/Delivery.ts"
import type { DeliveryView } from "../domain/DeliveryViews.ts"
import { Forbidden, NotFound } from "../domain/Errors.ts"
import { DeliveryHistory } from "../store/DeliveryHistory.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { mayAccess, requireAccess } from "./Authorization.ts"
import { iso } from "./Responses.ts"

const deliveryView = (d: Delivery): DeliveryView => ({
  id: d.id,
  eventId: d.eventId,
  type: d.eventType,
  tenant: d.tenant,
  url: d.url,
  room: d.room,
  status: d.status,
  attempts: d.attempts,
  lastStatus: d.lastStatus,
  lastError: d.lastError,
  nextAttemptAt: d.status === "pending" ? iso(d.nextAttemptAt) : null,
  createdAt: iso(d.createdAt),
  updatedAt: iso(d.updatedAt)
})

const attemptView = (a: Attempt) => ({ attempt: a.attempt, at: iso(a.at), status: a.status, error: a.error, latencyMs: a.latencyMs })

export const DeliveriesLive = HttpApiBuilder.group(AdminApi, "deliveries", (handlers) =>
  Effect.gen(function* () {
    const history = yield* DeliveryHistory
    const admin = yield* DeliveryAdmin

    /** The delivery the path names; another tenant's is reported as absent, not as forbidden. */
    const addressed = (id: number) =>
      Effect.gen(function* () {
        const principal = yield* CurrentPrincipal
        const found = yield* history.delivery(id)
        if (found._tag === "None" || !mayAccess(principal, found.value.tenant)) return yield* new NotFound({ message: `no delivery ${id}` })
        return found.value
      })

    return handlers
      .handle("list", ({ urlParams: query }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          // A tenant token lists one of its own hosts at a time.
          if (principal._tag === "Tenant" && query.tenant === undefined) {
            return yield* new Forbidden({ message: "a tenant token must name one of its hosts with ?tenant=" })
          }
          if (query.tenant !== undefined) yield* requireAccess(principal, query.tenant)
          const limit = query.limit ?? 100
          // One more than asked says whether another page exists. Pages run newest first; the cursor is the last id shown.
          const { status, tenant, room, eventId, eventType, domain } = query
          const found = yield* history.deliveries({ status, tenant, room, eventId, eventType, domain, limit: limit + 1, before: query.cursor })
          const items = found.slice(0, limit)
          return { items: items.map(deliveryView), nextCursor: found.length > limit ? String(items[items.length - 1]!.id) : null }
        })
      )
      .handle("get", ({ path }) => Effect.map(addressed(path.id), (found) => ({ ...deliveryView(found), history: found.history.map(attemptView) })))
      .handle("retry", ({ path }) =>
        Effect.gen(function* () {
          const { id } = yield* addressed(path.id)
          return deliveryView(yield* admin.retry(id))
        })
      )
  })
)
