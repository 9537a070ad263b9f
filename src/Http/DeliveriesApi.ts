import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import type { Attempt, Delivery, UnroutableEvent } from "../Domain/Delivery.ts"
import { NotFound } from "../Domain/Errors.ts"
import { HostPattern } from "../Domain/Hook.ts"
import { Forwarder } from "../Forwarder.ts"
import { Store } from "../Store.ts"
import { admin, decodeParam, decodeQuery } from "./Admin.ts"

const iso = (ms: number) => new Date(ms).toISOString()

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

const IntFromString = (min: number, max: number) =>
  Schema.NumberFromString.pipe(
    Schema.int({ message: () => "expected a whole number" }),
    Schema.between(min, max, { message: () => `expected a whole number from ${min} to ${max}` })
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
  admin(
    Effect.gen(function* () {
      const query = yield* decodeQuery(ListQuery, request)
      const limit = query.limit ?? 100
      const items = yield* (yield* Store).deliveries({ status: query.status, tenant: query.tenant, limit, before: query.cursor })
      // Pages run newest first; the cursor is the last id shown.
      const nextCursor = items.length === limit ? String(items[items.length - 1]!.id) : null
      return HttpServerResponse.unsafeJson({ items: items.map(deliveryView), nextCursor })
    })
  )
)

const idParam = decodeParam("id", DeliveryId)

const GetDelivery = HttpLayerRouter.add(
  "GET",
  "/v1/deliveries/:id",
  admin(
    Effect.gen(function* () {
      const id = yield* idParam
      const found = yield* (yield* Store).delivery(id)
      if (found._tag === "None") return yield* new NotFound({ message: `no delivery ${id}` })
      return HttpServerResponse.unsafeJson({ ...deliveryView(found.value), history: found.value.history.map(attemptView) })
    })
  )
)

const RetryDelivery = HttpLayerRouter.add(
  "POST",
  "/v1/deliveries/:id/retry",
  admin(
    Effect.gen(function* () {
      const delivery = yield* (yield* Forwarder).retry(yield* idParam)
      return HttpServerResponse.unsafeJson(deliveryView(delivery), { status: 202 })
    })
  )
)

const RecoverQuery = Schema.Struct({
  since: Schema.Date.annotations({ message: () => "expected an ISO-8601 time like 2026-01-31T12:00:00Z" })
})

const RecoverTenant = HttpLayerRouter.add("POST", "/v1/tenants/:host/recover", (request) =>
  admin(
    Effect.gen(function* () {
      const host = yield* decodeParam("host", HostPattern)
      const { since } = yield* decodeQuery(RecoverQuery, request)
      const requeued = yield* (yield* Forwarder).recover(host, since.getTime())
      return HttpServerResponse.unsafeJson({ tenant: host, since: since.toISOString(), requeued }, { status: 202 })
    })
  )
)

const UnroutableQuery = Schema.Struct({ limit: Schema.optional(Limit) })

const ListUnroutable = HttpLayerRouter.add("GET", "/v1/unroutable", (request) =>
  admin(
    Effect.gen(function* () {
      const { limit } = yield* decodeQuery(UnroutableQuery, request)
      const items = yield* (yield* Store).unroutable(limit ?? 100)
      return HttpServerResponse.unsafeJson({ items: items.map(unroutableView) })
    })
  )
)

export const DeliveriesApi = Layer.mergeAll(ListDeliveries, GetDelivery, RetryDelivery, RecoverTenant, ListUnroutable)
