import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import type { Attempt, Delivery, UnroutableEvent } from "../domain/Delivery.ts"
import { NotFound } from "../domain/Errors.ts"
import { HostPattern } from "../domain/Hook.ts"
import { IsoTime } from "../domain/IsoTime.ts"
import { Forwarder } from "../delivery/Forwarder.ts"
import { Store } from "../store/Store.ts"
import { iso } from "./Responses.ts"
import { admin, decodeParam, decodeQuery, Forbidden, mayAccess, requireAccess, requireOperator, type Principal } from "./Admin.ts"
import { excerpt } from "../domain/Untrusted.ts"

/** The operator's view of a delivery; the body stays in the store (it carries callers' numbers). */
const deliveryView = (d: Delivery) => ({
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

const unroutableView = (u: UnroutableEvent) => ({
  at: iso(u.at),
  eventId: u.eventId,
  type: u.eventType,
  room: u.room,
  headers: u.headers,
  domain: u.domain,
  reason: u.reason
})

/** Plain decimal digits only: Number() would also take "0x10", "1e3" and " 7 ". */
const IntFromString = (min: number, max: number) =>
  Schema.String.pipe(
    Schema.filter((s) => /^[0-9]{1,16}$/.test(s) || `expected a whole number from ${min} to ${max}, got ${excerpt(s)}`),
    Schema.compose(Schema.NumberFromString),
    Schema.filter((n) => (n >= min && n <= max) || `expected a whole number from ${min} to ${max}`)
  )

const Limit = IntFromString(1, 1000)
const DeliveryId = IntFromString(1, Number.MAX_SAFE_INTEGER)

const ListQuery = Schema.Struct({
  status: Schema.optional(Schema.Literal("pending", "failed", "delivered")),
  tenant: Schema.optional(HostPattern),
  limit: Schema.optional(Limit),
  cursor: Schema.optional(DeliveryId)
})

const ListDeliveries = HttpLayerRouter.add("GET", "/v1/deliveries", (request) =>
  admin((principal) =>
    Effect.gen(function* () {
      const query = yield* decodeQuery(ListQuery, request)
      // A tenant token lists one of its own hosts at a time.
      if (principal._tag === "Tenant" && query.tenant === undefined) {
        return yield* new Forbidden({ message: "a tenant token must name one of its hosts with ?tenant=" })
      }
      if (query.tenant !== undefined) yield* requireAccess(principal, query.tenant)
      const limit = query.limit ?? 100
      // One more than asked says whether another page exists. Pages run newest first; the cursor is the last id shown.
      const found = yield* (yield* Store).deliveries({ status: query.status, tenant: query.tenant, limit: limit + 1, before: query.cursor })
      const items = found.slice(0, limit)
      const nextCursor = found.length > limit ? String(items[items.length - 1]!.id) : null
      return HttpServerResponse.unsafeJson({ items: items.map(deliveryView), nextCursor })
    })
  )
)

const idParam = decodeParam("id", DeliveryId)

/** The delivery the path names; another tenant's is reported as absent, not as forbidden. */
const addressedDelivery = (principal: Principal) =>
  Effect.gen(function* () {
    const id = yield* idParam
    const found = yield* (yield* Store).delivery(id)
    if (found._tag === "None" || !mayAccess(principal, found.value.tenant)) return yield* new NotFound({ message: `no delivery ${id}` })
    return found.value
  })

const GetDelivery = HttpLayerRouter.add(
  "GET",
  "/v1/deliveries/:id",
  admin((principal) =>
    Effect.map(addressedDelivery(principal), (found) =>
      HttpServerResponse.unsafeJson({ ...deliveryView(found), history: found.history.map(attemptView) })
    )
  )
)

const RetryDelivery = HttpLayerRouter.add(
  "POST",
  "/v1/deliveries/:id/retry",
  admin((principal) =>
    Effect.gen(function* () {
      const { id } = yield* addressedDelivery(principal)
      const delivery = yield* (yield* Forwarder).retry(id)
      return HttpServerResponse.unsafeJson(deliveryView(delivery), { status: 202 })
    })
  )
)

const RecoverQuery = Schema.Struct({ since: IsoTime })

const RecoverTenant = HttpLayerRouter.add("POST", "/v1/tenants/:host/recover", (request) =>
  admin((principal) =>
    Effect.gen(function* () {
      const host = yield* decodeParam("host", HostPattern)
      yield* requireAccess(principal, host)
      const { since } = yield* decodeQuery(RecoverQuery, request)
      const requeued = yield* (yield* Forwarder).recover(host, since.getTime())
      return HttpServerResponse.unsafeJson({ tenant: host, since: since.toISOString(), requeued }, { status: 202 })
    })
  )
)

const UnroutableQuery = Schema.Struct({ limit: Schema.optional(Limit) })

/** Operators only: an unroutable event belongs to no tenant, so no tenant token may read it. */
const ListUnroutable = HttpLayerRouter.add("GET", "/v1/unroutable", (request) =>
  admin((principal) =>
    Effect.gen(function* () {
      yield* requireOperator(principal)
      const { limit } = yield* decodeQuery(UnroutableQuery, request)
      const items = yield* (yield* Store).unroutable(limit ?? 100)
      return HttpServerResponse.unsafeJson({ items: items.map(unroutableView) })
    })
  )
)

export const DeliveriesApi = Layer.mergeAll(ListDeliveries, GetDelivery, RetryDelivery, RecoverTenant, ListUnroutable)
