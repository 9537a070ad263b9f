import { Effect, type Layer, Option } from "effect"
import type { CallChange } from "../../src/domain/Call.ts"
import type { AttemptRecord, Delivery, DeliveryQuery, NewDelivery, Pin, UnroutableEvent } from "../../src/domain/Delivery.ts"
import type { StoreUnavailable } from "../../src/domain/Errors.ts"
import type { Acceptance, PinChange } from "../../src/store/Store.ts"
import type { StoreServices } from "../../src/store/StoreLive.ts"
import { Store } from "./store.ts"

// What the store contract's cases are written with: values to store, and the operations they repeat.

/** Runs a program against a store from `layer`; the scope closes it. */
export const runOn = (layer: Layer.Layer<StoreServices, StoreUnavailable>) => <A>(program: Effect.Effect<A, StoreUnavailable, StoreServices>) =>
  Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped))

let eventSeq = 0
export const freshEventId = () => `evt-${++eventSeq}`

/** A webhook span's context as the store keeps it with the delivery. */
export const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

export const newDelivery = (over: Partial<NewDelivery> = {}): NewDelivery => ({
  eventId: over.eventId ?? freshEventId(),
  eventType: "participant_joined",
  tenant: "calls.drsmith.com",
  url: "https://hooks.drsmith.example/voice",
  room: "room-1",
  domain: "calls.drsmith.com",
  body: JSON.stringify({ event: "participant_joined", n: eventSeq }),
  eventCreatedAt: 1_000,
  secret: null,
  trace: TRACEPARENT,
  call: null,
  ...over
})

export const acceptance = (a: {
  eventId: string
  receivedAt: number
  delivery?: NewDelivery
  pinChange?: PinChange
  unroutable?: UnroutableEvent
  callEvent?: NewDelivery
  call?: CallChange
  unroutedBody?: string
}): Acceptance => ({
  eventId: a.eventId,
  receivedAt: a.receivedAt,
  delivery: a.delivery,
  pinChange: a.pinChange,
  unroutable: a.unroutable,
  callEvent: a.callEvent,
  call: a.call,
  unroutedBody: a.unroutedBody
})

/** One event through `acceptAll`. */
export const acceptOne = (store: Store, a: Acceptance) => Effect.map(store.acceptAll([a]), (results) => results[0]!)

export const pinOne = (store: Store, room: string) => Effect.map(store.pinsOf([room]), (pins) => Option.fromNullable(pins.get(room)))

export const recordOne = (store: Store, id: number, record: AttemptRecord) => store.recordAttempts([{ id, record }])

/** Every pending delivery, read the way the engine reads the queue (tenant by tenant, by id), with its body, in id order. */
export const pendingAll = (store: Store) =>
  Effect.gen(function* () {
    const all: Array<Delivery> = []
    for (const tenant of yield* store.pendingTenants) {
      for (const queued of yield* store.pendingAfter(tenant, 0, 100_000)) {
        all.push({ ...queued, body: Option.getOrThrow(yield* store.bodyOf(queued.id)) })
      }
    }
    return all.sort((a, b) => a.id - b.id)
  })

/** Accepts a fresh event carrying one delivery and returns the stored delivery. */
export const deliver = (receivedAt: number, over: Partial<NewDelivery> = {}) =>
  Effect.gen(function* () {
    const store = yield* Store
    const d = newDelivery(over)
    const result = yield* acceptOne(store, acceptance({ eventId: d.eventId, receivedAt, delivery: d }))
    if (result._tag !== "Accepted" || result.delivery === undefined) throw new Error(`expected a delivery, got ${result._tag}`)
    return result.delivery
  })

export const attempt = (a: Partial<AttemptRecord> & Pick<AttemptRecord, "at">): AttemptRecord => ({
  attempt: 1,
  status: 503,
  error: "HTTP 503",
  latencyMs: 12,
  final: undefined,
  nextAttemptAt: a.at + 1_000,
  ...a
})

/** An expiry as the engine records it: no attempt, the attempts made so far, error "expired". */
export const expiry = (attempts: number, at: number): AttemptRecord => ({
  attempt: attempts,
  at,
  status: null,
  error: "expired",
  latencyMs: 0,
  final: "expired",
  nextAttemptAt: at
})

/** Records one final attempt (or, for `expired`, an expiry after none) at `at`. */
export const finish = (id: number, final: "delivered" | "failed" | "expired", at: number) =>
  Effect.flatMap(Store, (store) =>
    recordOne(
      store,
      id,
      final === "expired"
        ? expiry(0, at)
        : attempt({ at, final, status: final === "delivered" ? 200 : 500, error: final === "delivered" ? null : "HTTP 500", nextAttemptAt: at })
    )
  )

export const query = (q: Partial<DeliveryQuery> = {}): DeliveryQuery => ({
  status: undefined,
  tenant: undefined,
  before: undefined,
  limit: 1_000,
  ...q
})

export const pin = (room: string, tenant = "calls.drsmith.com"): Pin => ({
  room,
  destination: { tenant, url: `https://${tenant}/hook`, events: ["participant_joined", "participant_left"] },
  call: { room, sipCallId: `sip-${room}`, from: "+15550001111", to: null, domain: tenant }
})

export const unroutableEvent = (eventId: string, at: number, reason: UnroutableEvent["reason"] = "unknown_domain"): UnroutableEvent => ({
  at,
  eventId,
  eventType: "participant_joined",
  room: `room-${eventId}`,
  headers: { xToIp: reason === "missing_header" ? null : "sip.unknown.example", to: null, dialled: "+15557654321" },
  domain: reason === "unknown_domain" ? "sip.unknown.example" : null,
  reason,
  call: null
})

export const ids = (ds: ReadonlyArray<{ readonly id: number }>) => ds.map((d) => d.id)
