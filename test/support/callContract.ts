import { describe, expect, test } from "bun:test"
import { Effect, type Layer, Option } from "effect"
import fc from "fast-check"
import { NO_ROUTING, type CallChange, type CallIdentity, type CallListing, type CallQuery, type UnroutableReason } from "../../src/domain/Call.ts"
import type { Delivery, DeliveryChange, NewDelivery, Pin, UnroutableEvent } from "../../src/domain/Delivery.ts"
import type { StoreUnavailable } from "../../src/domain/Errors.ts"
import type { AcceptResult, RetentionPolicy } from "../../src/store/Store.ts"
import type { StoreServices } from "../../src/store/StoreLive.ts"
import { Store } from "./store.ts"
import { acceptance, acceptOne, attempt, deliver, expiry, finish, ids, newDelivery, pin, pinOne, query, recordOne, runOn } from "./storeFixtures.ts"

/**
 * The store's part in call records, replays and the live feed, as every store
 * must keep them (the SQLite reference and Redis both run these cases): what
 * the doc comments of CallChange, CallQuery, DeliveryChange and the tags say.
 */

const TENANT = "calls.drsmith.com"

export const routedIdentity = (over: Partial<CallIdentity> = {}): CallIdentity => ({
  tenant: TENANT,
  domain: TENANT,
  from: "+15550001111",
  to: "+15557654321",
  sipCallId: "sip-call-1",
  routing: { rule: "exact", pattern: TENANT, source: "sip.h.x-to-ip", reason: null },
  sip: { "sip.callID": "sip-call-1", "sip.phoneNumber": "+15550001111", "sip.h.x-to-ip": TENANT },
  ...over
})

export const unroutedIdentity = (reason: UnroutableReason = "unknown_domain", over: Partial<CallIdentity> = {}): CallIdentity => ({
  ...routedIdentity({ tenant: null, domain: "sip.unknown.example", routing: { ...NO_ROUTING, source: "sip.h.x-to-ip", reason } }),
  ...over
})

/** A call change for the event `eventId` of the call `key` (a room sid, or `name:` and the room), received at `at`. */
export const callChange = (key: string, eventId: string, at: number, over: Partial<CallChange> & { eventType?: string } = {}): CallChange => {
  const { eventType = "participant_joined", ...rest } = over
  const room = key.startsWith("name:") ? key.slice("name:".length) : `room-of-${key}`
  return { key, room, roomSid: key.startsWith("name:") ? null : key, at, event: { eventId, eventType, at, createdAt: at - 5 }, ...rest }
}

/** A call's record as a listing shows it, before anything but its creation changed it. */
const listing = (change: CallChange, over: Partial<CallListing> = {}): CallListing => ({
  key: change.key,
  room: change.room,
  roomSid: change.roomSid,
  status: change.identity?.tenant ? "active" : "unrouted",
  tenant: null,
  domain: null,
  from: null,
  to: null,
  sipCallId: null,
  routing: NO_ROUTING,
  sip: null,
  ...change.identity,
  firstSeenAt: change.at,
  startedAt: change.startedAt ?? null,
  endedAt: null,
  endedBy: null,
  disconnectReason: null,
  deliveries: { pending: 0, delivered: 0, failed: 0, expired: 0 },
  ...over
})

const calls = (q: Partial<CallQuery> = {}): CallQuery => ({
  tenant: undefined,
  scope: undefined,
  status: undefined,
  number: undefined,
  domain: undefined,
  since: undefined,
  until: undefined,
  limit: 1_000,
  after: undefined,
  ...q
})

/** Accepts one event with its call change (and whatever else it carries). */
const event = (change: CallChange, extra: Omit<Parameters<typeof acceptance>[0], "eventId" | "receivedAt" | "call"> = {}) =>
  Effect.flatMap(Store, (store) => acceptOne(store, acceptance({ eventId: change.event.eventId, receivedAt: change.at, call: change, ...extra })))

const recordOf = (ref: string) =>
  Effect.flatMap(Store, (store) =>
    Effect.map(store.call(ref), (found) => {
      if (Option.isNone(found)) throw new Error(`no call ${ref}`)
      const { timeline: _, ...record } = found.value
      return record
    })
  )

const keysOf = (listings: ReadonlyArray<CallListing>) => listings.map((c) => c.key)

/** A delivery of the call, queued with the event. */
const deliveryOf = (change: CallChange, over: Partial<NewDelivery> = {}) =>
  newDelivery({ eventId: change.event.eventId, eventType: change.event.eventType, room: change.room, call: change.key, ...over })

const queued = (result: AcceptResult) => {
  if (result._tag !== "Accepted") throw new Error(`expected Accepted, got ${result._tag}`)
  return result
}

export const callContract = (fresh: () => Layer.Layer<StoreServices, StoreUnavailable>) => {
  const run = <A>(program: Effect.Effect<A, StoreUnavailable, StoreServices>) => runOn(fresh())(program)

  // ---------------------------------------------------------------------------
  // pins by room instance
  // ---------------------------------------------------------------------------

  describe("pins by room instance", () => {
    const start = { at: 1_000, identity: "sip_+15550001111", sid: "PA_1" }
    const sidPin = (room: string, roomSid: string | undefined, tenant = TENANT): Pin => ({
      ...pin(room, tenant),
      ...(roomSid === undefined ? {} : { roomSid }),
      start
    })
    const set = (eventId: string, at: number, p: Pin) =>
      Effect.flatMap(Store, (store) =>
        acceptOne(
          store,
          acceptance({ eventId, receivedAt: at, pinChange: { _tag: "Set", pin: p }, callEvent: newDelivery({ eventId: `${eventId}:call.started`, eventType: "call.started", room: p.room }) })
        )
      )

    test("a Set for a room pinned with another room sid replaces the pin, clearing its end, and starts the new call without ending the old one", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          expect(queued(yield* set("r1", 1_000, sidPin("reused", "RM_old"))).callEvent?.eventType).toBe("call.started")
          yield* acceptOne(store, acceptance({ eventId: "r2", receivedAt: 2_000, pinChange: { _tag: "End", room: "reused", at: 1_900 } }))
          expect(Option.getOrThrow(yield* pinOne(store, "reused")).endedAt).toBe(1_900)
          const replacing = queued(yield* set("r3", 3_000, sidPin("reused", "RM_new", "main.citydental.com")))
          expect(replacing.callEvent?.eventType).toBe("call.started")
          expect(yield* pinOne(store, "reused")).toEqual(Option.some(sidPin("reused", "RM_new", "main.citydental.com")))
          // Ending it ends the new call (the old call's end was recorded already): call.ended is queued once more.
          const end = newDelivery({ eventId: "r4:call.ended", eventType: "call.ended", room: "reused" })
          const ended = queued(yield* acceptOne(store, acceptance({ eventId: "r4", receivedAt: 4_000, pinChange: { _tag: "End", room: "reused", at: 3_900 }, callEvent: end })))
          expect(ended.callEvent?.eventType).toBe("call.ended")
          const types = (yield* store.deliveries(query())).map((d) => d.eventType).reverse()
          expect(types).toEqual(["call.started", "call.started", "call.ended"])
        })
      ))

    test("the same room sid, or a pin or a Set without one, never replaces: the call stays where it started", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* set("s1", 1_000, sidPin("same", "RM_1"))
          expect(queued(yield* set("s2", 2_000, sidPin("same", "RM_1", "other.example"))).callEvent).toBeUndefined()
          expect(queued(yield* set("s3", 2_000, sidPin("same", undefined, "other.example"))).callEvent).toBeUndefined()
          expect(yield* pinOne(store, "same")).toEqual(Option.some(sidPin("same", "RM_1")))

          // A pin from before room sids were kept has none: it is never replaced.
          yield* set("o1", 1_000, sidPin("older", undefined))
          expect(queued(yield* set("o2", 2_000, sidPin("older", "RM_2", "other.example"))).callEvent).toBeUndefined()
          expect(yield* pinOne(store, "older")).toEqual(Option.some(sidPin("older", undefined)))
        })
      ))

    test("pinsOf returns the room sid with the pin", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* set("p1", 1_000, sidPin("a", "RM_a"))
          yield* set("p2", 1_000, sidPin("b", undefined))
          const pins = yield* store.pinsOf(["a", "b"])
          expect(pins.get("a")?.roomSid).toBe("RM_a")
          expect(pins.get("b")).toEqual(sidPin("b", undefined))
          expect(pins.get("b")!.roomSid).toBeUndefined()
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // call records
  // ---------------------------------------------------------------------------

  describe("call records", () => {
    test("the first event of a room instance, routed or not, creates its record in the same acceptAll; a Duplicate changes nothing", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const joined = callChange("RM_1", "c1", 1_000, { identity: routedIdentity(), startedAt: 990 })
          const started = callChange("name:lobby", "c2", 1_100, { eventType: "room_started" })
          // Another instance of a room's name is another call.
          const again = callChange("RM_2", "c3", 1_200, { room: "room-of-RM_1", identity: routedIdentity({ tenant: "main.citydental.com" }) })
          const results = yield* store.acceptAll([joined, started, again].map((c) => acceptance({ eventId: c.event.eventId, receivedAt: c.at, call: c })))
          expect(results.map((r) => r._tag)).toEqual(["Accepted", "Accepted", "Accepted"])
          expect(yield* recordOf("RM_1")).toEqual(listing(joined))
          expect(yield* recordOf("name:lobby")).toEqual(listing(started))
          expect(yield* recordOf("RM_2")).toEqual(listing(again))

          // The same event again, saying the call ended: a duplicate, so nothing of it is kept.
          const repeated = callChange("RM_1", "c1", 5_000, { ended: { at: 5_000, by: "room_finished", disconnectReason: null } })
          expect(yield* event(repeated)).toEqual({ _tag: "Duplicate" })
          const detail = Option.getOrThrow(yield* store.call("RM_1"))
          expect(detail.endedAt).toBeNull()
          expect(detail.timeline.events.map((e) => e.eventId)).toEqual(["c1"])
          expect(keysOf(yield* store.calls(calls()))).toEqual(["RM_2", "name:lobby", "RM_1"])
        })
      ))

    test("an identity fills a record without a tenant: a routed one always, an unrouted one only while the record has no reason", () =>
      run(
        Effect.gen(function* () {
          const first = callChange("RM_1", "i1", 1_000, { eventType: "room_started" })
          yield* event(first)
          expect(yield* recordOf("RM_1")).toEqual(listing(first))
          const unknown = unroutedIdentity("unknown_domain")
          yield* event(callChange("RM_1", "i2", 2_000, { identity: unknown }))
          expect(yield* recordOf("RM_1")).toEqual(listing(first, { ...unknown, status: "unrouted" }))
          // Another unrouted identity: the record keeps the first reason it was given.
          yield* event(callChange("RM_1", "i3", 3_000, { identity: unroutedIdentity("malformed_header", { domain: null, from: "+15559999999" }) }))
          expect(yield* recordOf("RM_1")).toEqual(listing(first, { ...unknown, status: "unrouted" }))
          // A routed identity replaces it, and the call is active.
          const routed = routedIdentity()
          yield* event(callChange("RM_1", "i4", 4_000, { identity: routed }))
          expect(yield* recordOf("RM_1")).toEqual(listing(first, { ...routed, status: "active" }))
          // A record with a tenant keeps it.
          yield* event(callChange("RM_1", "i5", 5_000, { identity: routedIdentity({ tenant: "main.citydental.com", from: "+15552222222" }) }))
          yield* event(callChange("RM_1", "i6", 6_000, { identity: unroutedIdentity() }))
          expect(yield* recordOf("RM_1")).toEqual(listing(first, { ...routed, status: "active" }))
        })
      ))

    test("startedAt is kept once and ended once (the first of each wins); an ended call is `ended`, or stays `unrouted` without a tenant", () =>
      run(
        Effect.gen(function* () {
          const first = callChange("RM_1", "e1", 1_000, { identity: routedIdentity(), startedAt: 995 })
          yield* event(first)
          yield* event(callChange("RM_1", "e2", 2_000, { startedAt: 1_995 }))
          const left = { at: 3_000, by: "participant_left", disconnectReason: "CLIENT_INITIATED" } as const
          yield* event(callChange("RM_1", "e3", 3_000, { ended: left }))
          yield* event(callChange("RM_1", "e4", 4_000, { ended: { at: 4_000, by: "room_finished", disconnectReason: null } }))
          expect(yield* recordOf("RM_1")).toEqual(
            listing(first, { status: "ended", startedAt: 995, endedAt: 3_000, endedBy: "participant_left", disconnectReason: "CLIENT_INITIATED" })
          )

          const lost = callChange("RM_2", "u1", 1_000, { identity: unroutedIdentity(), startedAt: 1_000 })
          yield* event(lost)
          yield* event(callChange("RM_2", "u2", 2_000, { ended: { at: 2_000, by: "participant_connection_aborted", disconnectReason: "CONNECTION_TIMEOUT" } }))
          expect(yield* recordOf("RM_2")).toEqual(
            listing(lost, { status: "unrouted", endedAt: 2_000, endedBy: "participant_connection_aborted", disconnectReason: "CONNECTION_TIMEOUT" })
          )
        })
      ))

    test("a call that ended before it found its tenant is `ended` once it finds one (events can arrive out of order)", () =>
      run(
        Effect.gen(function* () {
          const finished = callChange("RM_1", "o1", 1_000, { eventType: "room_finished", ended: { at: 1_000, by: "room_finished", disconnectReason: null } })
          yield* event(finished)
          expect((yield* recordOf("RM_1")).status).toBe("unrouted")
          yield* event(callChange("RM_1", "o2", 1_100, { identity: routedIdentity(), startedAt: 900 }))
          expect(yield* recordOf("RM_1")).toEqual(
            listing(finished, { ...routedIdentity(), status: "ended", startedAt: 900, endedAt: 1_000, endedBy: "room_finished" })
          )
        })
      ))

    test("the call's deliveries, its call events included, are counted by status as their attempts are recorded", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const joined = callChange("RM_1", "d1", 1_000, { identity: routedIdentity(), startedAt: 1_000 })
          const first = queued(
            yield* event(joined, { delivery: deliveryOf(joined), callEvent: deliveryOf(joined, { eventId: "d1:call.started", eventType: "call.started" }), pinChange: { _tag: "Set", pin: pin("room-of-RM_1") } })
          )
          const more = yield* Effect.forEach(["d2", "d3", "d4"], (id, i) => {
            const c = callChange("RM_1", id, 2_000 + i, { eventType: "track_published" })
            return Effect.map(event(c, { delivery: deliveryOf(c) }), (r) => queued(r).delivery!)
          })
          // Another call's delivery is not counted.
          yield* deliver(1_000, { call: "RM_other" })
          expect((yield* recordOf("RM_1")).deliveries).toEqual({ pending: 5, delivered: 0, failed: 0, expired: 0 })

          yield* finish(first.delivery!.id, "delivered", 3_000)
          yield* finish(first.callEvent!.id, "delivered", 3_000)
          yield* finish(more[0]!.id, "failed", 3_000)
          yield* finish(more[1]!.id, "expired", 3_000)
          yield* recordOne(store, more[2]!.id, attempt({ at: 3_000 }))
          expect((yield* recordOf("RM_1")).deliveries).toEqual({ pending: 1, delivered: 2, failed: 1, expired: 1 })
          expect((yield* store.calls(calls())).find((c) => c.key === "RM_1")?.deliveries).toEqual({ pending: 1, delivered: 2, failed: 1, expired: 1 })
          yield* store.requeue(more[0]!.id, 4_000)
          expect((yield* recordOf("RM_1")).deliveries).toEqual({ pending: 2, delivered: 2, failed: 0, expired: 1 })
        })
      ))

    test("call(ref): the call of a room sid, else the newest call of a room name; none for an unknown one", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* event(callChange("RM_old", "f1", 1_000, { room: "desk", startedAt: 1_000 }))
          yield* event(callChange("RM_new", "f2", 5_000, { room: "desk", startedAt: 5_000 }))
          yield* event(callChange("RM_mid", "f3", 6_000, { room: "desk", startedAt: 3_000 }))
          yield* event(callChange("name:lobby", "f4", 2_000))
          const keyOf = (ref: string) => Effect.map(store.call(ref), Option.map((c) => c.key))
          expect(yield* keyOf("RM_old")).toEqual(Option.some("RM_old"))
          expect(yield* keyOf("desk")).toEqual(Option.some("RM_new"))
          expect(yield* keyOf("lobby")).toEqual(Option.some("name:lobby"))
          expect(yield* keyOf("name:lobby")).toEqual(Option.some("name:lobby"))
          expect(yield* keyOf("RM_nobody")).toEqual(Option.none())
        })
      ))

    test("a call's timeline: its LiveKit events, the attempts of its deliveries (by delivery at one time) and their expiries, each in time order", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const joined = callChange("RM_T", "t1", 1_000, { identity: routedIdentity(), startedAt: 1_000 })
          const a = queued(
            yield* event(joined, { delivery: deliveryOf(joined), callEvent: deliveryOf(joined, { eventId: "t1:call.started", eventType: "call.started" }), pinChange: { _tag: "Set", pin: pin("room-of-RM_T") } })
          )
          const published = callChange("RM_T", "t2", 1_200, { eventType: "track_published" })
          const b = queued(yield* event(published, { delivery: deliveryOf(published) }))
          const unpublished = callChange("RM_T", "t3", 1_250, { eventType: "track_unpublished" })
          const c = queued(yield* event(unpublished, { delivery: deliveryOf(unpublished) }))
          const left = callChange("RM_T", "t4", 1_260, { eventType: "participant_left" })
          const e = queued(yield* event(left, { delivery: deliveryOf(left) }))
          // Received before the join, written after it.
          yield* event(callChange("RM_T", "t0", 900, { eventType: "room_started" }))
          // Another call's attempts are not in this one's timeline.
          const other = yield* deliver(1_000, { call: "RM_other" })
          yield* recordOne(store, other.id, attempt({ at: 1_120 }))

          const joinedId = a.delivery!.id
          const startedId = a.callEvent!.id
          yield* recordOne(store, joinedId, attempt({ attempt: 1, at: 1_100, status: 503, error: "HTTP 503", latencyMs: 7 }))
          yield* recordOne(store, startedId, attempt({ attempt: 1, at: 1_150, status: 200, error: null, final: "delivered", latencyMs: 9 }))
          // At the same time as the next one, recorded first: attempts at one time go by delivery.
          yield* recordOne(store, c.delivery!.id, attempt({ attempt: 1, at: 1_300, status: 200, error: null, final: "delivered", latencyMs: 13 }))
          yield* recordOne(store, joinedId, attempt({ attempt: 2, at: 1_300, status: 204, error: null, final: "delivered", latencyMs: 11 }))
          // Expiries in time order, whatever order they were recorded in.
          yield* recordOne(store, b.delivery!.id, expiry(0, 1_400))
          yield* recordOne(store, e.delivery!.id, expiry(0, 1_350))

          const { timeline } = Option.getOrThrow(yield* store.call("RM_T"))
          expect(timeline.events).toEqual([
            { eventId: "t0", eventType: "room_started", at: 900, createdAt: 895 },
            { eventId: "t1", eventType: "participant_joined", at: 1_000, createdAt: 995 },
            { eventId: "t2", eventType: "track_published", at: 1_200, createdAt: 1_195 },
            { eventId: "t3", eventType: "track_unpublished", at: 1_250, createdAt: 1_245 },
            { eventId: "t4", eventType: "participant_left", at: 1_260, createdAt: 1_255 }
          ])
          expect(timeline.attempts).toEqual([
            { deliveryId: joinedId, eventId: "t1", eventType: "participant_joined", attempt: 1, at: 1_100, status: 503, error: "HTTP 503", latencyMs: 7 },
            { deliveryId: startedId, eventId: "t1:call.started", eventType: "call.started", attempt: 1, at: 1_150, status: 200, error: null, latencyMs: 9 },
            { deliveryId: joinedId, eventId: "t1", eventType: "participant_joined", attempt: 2, at: 1_300, status: 204, error: null, latencyMs: 11 },
            { deliveryId: c.delivery!.id, eventId: "t3", eventType: "track_unpublished", attempt: 1, at: 1_300, status: 200, error: null, latencyMs: 13 }
          ])
          expect(timeline.expiries).toEqual([
            { at: 1_350, deliveryId: e.delivery!.id, eventId: "t4", eventType: "participant_left" },
            { at: 1_400, deliveryId: b.delivery!.id, eventId: "t2", eventType: "track_published" }
          ])
        })
      ))

    test("in a call's timeline each delivery's attempts number on across a retry, each delivery on its own", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const joined = callChange("RM_N", "n1", 1_000, { identity: routedIdentity(), startedAt: 1_000 })
          const a = queued(yield* event(joined, { delivery: deliveryOf(joined), pinChange: { _tag: "Set", pin: pin("room-of-RM_N") } }))
          const left = callChange("RM_N", "n2", 1_100, { eventType: "participant_left" })
          const b = queued(yield* event(left, { delivery: deliveryOf(left) }))
          const [joinedId, leftId] = [a.delivery!.id, b.delivery!.id]
          yield* recordOne(store, joinedId, attempt({ attempt: 1, at: 1_200, final: "failed" }))
          yield* recordOne(store, leftId, attempt({ attempt: 1, at: 1_250, final: "failed" }))
          yield* store.requeue(joinedId, 1_300)
          // The engine's own count starts afresh with the new budget.
          yield* recordOne(store, joinedId, attempt({ attempt: 1, at: 1_400, status: 200, error: null, final: "delivered" }))
          const { timeline } = Option.getOrThrow(yield* store.call("RM_N"))
          expect(timeline.attempts.map((x) => [x.deliveryId, x.attempt, x.at])).toEqual([
            [joinedId, 1, 1_200],
            [leftId, 1, 1_250],
            [joinedId, 2, 1_400]
          ])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // listing calls
  // ---------------------------------------------------------------------------

  describe("calls(query)", () => {
    /** Five calls, newest first: c3 (3000), c4 (2500, first seen, never started), c2 (2000), c5 (1500), c1 (1000). */
    const seed = Effect.gen(function* () {
      yield* event(callChange("RM_c1", "l1", 900, { identity: routedIdentity({ tenant: "a.example.com", domain: "a.example.com", from: "+15550000001", to: "+15550000100" }), startedAt: 1_000 }))
      yield* event(callChange("RM_c2", "l2", 1_900, { identity: routedIdentity({ tenant: "x.wild.example", domain: "x.wild.example", from: "+15550000002", to: "+15550000200" }), startedAt: 2_000 }))
      yield* event(callChange("RM_c2", "l2e", 2_100, { ended: { at: 2_100, by: "participant_left", disconnectReason: null } }))
      yield* event(callChange("RM_c3", "l3", 3_000, { identity: unroutedIdentity("unknown_domain", { from: "+15550000001", to: "+15550000300" }), startedAt: 3_000 }))
      yield* event(callChange("name:c4", "l4", 2_500, { eventType: "room_started" }))
      yield* event(callChange("RM_c5", "l5", 1_400, { identity: routedIdentity({ tenant: "*.wild.example", domain: "y.wild.example", from: "+15550000005", to: "+15550000500" }), startedAt: 1_500 }))
    })
    const list = (q: Partial<CallQuery>) => Effect.flatMap(Store, (store) => Effect.map(store.calls(calls(q)), keysOf))

    test("newest first by start (first seen for a call with none), each filter alone and together", () =>
      run(
        Effect.gen(function* () {
          yield* seed
          expect(yield* list({})).toEqual(["RM_c3", "name:c4", "RM_c2", "RM_c5", "RM_c1"])
          // tenant: exactly that hook host.
          expect(yield* list({ tenant: "a.example.com" })).toEqual(["RM_c1"])
          expect(yield* list({ tenant: "*.wild.example" })).toEqual(["RM_c5"])
          expect(yield* list({ tenant: "wild.example" })).toEqual([])
          // scope: those hosts, or hosts under their wildcards.
          expect(yield* list({ scope: ["*.wild.example"] })).toEqual(["RM_c2", "RM_c5"])
          expect(yield* list({ scope: ["*.example.com"] })).toEqual(["RM_c1"])
          expect(yield* list({ scope: ["a.example.com", "x.wild.example"] })).toEqual(["RM_c2", "RM_c1"])
          expect(yield* list({ scope: ["wild.example"] })).toEqual([])
          expect(yield* list({ scope: [] })).toEqual([])
          expect(yield* list({ status: "active" })).toEqual(["RM_c5", "RM_c1"])
          expect(yield* list({ status: "ended" })).toEqual(["RM_c2"])
          expect(yield* list({ status: "unrouted" })).toEqual(["RM_c3", "name:c4"])
          // number: from or to.
          expect(yield* list({ number: "+15550000001" })).toEqual(["RM_c3", "RM_c1"])
          expect(yield* list({ number: "+15550000200" })).toEqual(["RM_c2"])
          expect(yield* list({ domain: "sip.unknown.example" })).toEqual(["RM_c3"])
          expect(yield* list({ domain: "y.wild.example" })).toEqual(["RM_c5"])
          // since (inclusive) and until (exclusive), on the sort time.
          expect(yield* list({ since: 2_000 })).toEqual(["RM_c3", "name:c4", "RM_c2"])
          expect(yield* list({ until: 2_500 })).toEqual(["RM_c2", "RM_c5", "RM_c1"])
          expect(yield* list({ since: 1_500, until: 3_000 })).toEqual(["name:c4", "RM_c2", "RM_c5"])
          expect(yield* list({ limit: 2 })).toEqual(["RM_c3", "name:c4"])
          expect(yield* list({ limit: 0 })).toEqual([])
          expect(yield* list({ after: { sortAt: 2_500, key: "name:c4" } })).toEqual(["RM_c2", "RM_c5", "RM_c1"])
          expect(yield* list({ after: { sortAt: 2_500, key: "name:c4" }, limit: 1 })).toEqual(["RM_c2"])
          expect(yield* list({ scope: ["*.wild.example", "a.example.com"], status: "active", since: 1_000, until: 2_000 })).toEqual(["RM_c5", "RM_c1"])
          expect(yield* list({ tenant: "x.wild.example", status: "active" })).toEqual([])
          expect(yield* list({ number: "+15550000001", status: "unrouted", after: { sortAt: 3_000, key: "RM_c3" } })).toEqual([])
        })
      ))

    test("calls of the same sort time are ordered by key, newest-first pages never split them wrongly", () =>
      run(
        Effect.gen(function* () {
          for (const key of ["RM_b", "RM_a", "RM_c"]) yield* event(callChange(key, `tie-${key}`, 1_000))
          expect(yield* list({})).toEqual(["RM_c", "RM_b", "RM_a"])
          expect(yield* list({ after: { sortAt: 1_000, key: "RM_c" } })).toEqual(["RM_b", "RM_a"])
          expect(yield* list({ after: { sortAt: 1_000, key: "RM_bb" } })).toEqual(["RM_b", "RM_a"])
          // A call started later than it was first seen moves to its start.
          yield* event(callChange("RM_a", "tie-start", 1_100, { startedAt: 2_000 }))
          expect(yield* list({})).toEqual(["RM_a", "RM_c", "RM_b"])
        })
      ))

    test("property: paging with `after` through any set of calls returns each match once, in order", async () => {
      const callArb = fc.record({ first: fc.integer({ min: 0, max: 6 }), start: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }), tenant: fc.constantFrom("a.example", "b.example") })
      await fc.assert(
        fc.asyncProperty(
          fc.array(callArb, { maxLength: 14 }),
          fc.integer({ min: 1, max: 5 }),
          fc.option(fc.constantFrom("a.example", "b.example"), { nil: undefined }),
          fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
          (seeded, pageSize, tenant, since) =>
            run(
              Effect.gen(function* () {
                const store = yield* Store
                const made = seeded.map((c, i) => ({ key: `RM_${i}`, sortAt: c.start ?? c.first, tenant: c.tenant }))
                yield* store.acceptAll(
                  seeded.map((c, i) =>
                    acceptance({
                      eventId: `p${i}`,
                      receivedAt: c.first,
                      call: callChange(`RM_${i}`, `p${i}`, c.first, { identity: routedIdentity({ tenant: c.tenant }), startedAt: c.start })
                    })
                  )
                )
                const expected = made
                  .filter((c) => (tenant === undefined || c.tenant === tenant) && (since === undefined || c.sortAt >= since))
                  .sort((x, y) => y.sortAt - x.sortAt || (x.key < y.key ? 1 : -1))
                  .map((c) => c.key)
                const seen: Array<string> = []
                let after: CallQuery["after"]
                for (;;) {
                  const page = yield* store.calls(calls({ tenant, since, limit: pageSize, after }))
                  expect(page.length).toBeLessThanOrEqual(pageSize)
                  seen.push(...keysOf(page))
                  if (page.length < pageSize) break
                  const last = page[page.length - 1]!
                  after = { sortAt: last.startedAt ?? last.firstSeenAt, key: last.key }
                }
                expect(seen).toEqual(expected)
              })
            )
        ),
        { numRuns: 40 }
      )
    })
  })

  // ---------------------------------------------------------------------------
  // deliveries by call, event and domain
  // ---------------------------------------------------------------------------

  describe("deliveries(query), by room, event and domain", () => {
    test("each filter alone, and with status, tenant and `before` pages", () =>
      run(
        Effect.gen(function* () {
          const rows = yield* Effect.forEach(
            [
              { room: "r1", eventType: "participant_joined", domain: "a.example", tenant: "a" },
              { room: "r1", eventType: "track_published", domain: "a.example", tenant: "a" },
              { room: "r2", eventType: "participant_joined", domain: "b.example", tenant: "b" },
              { room: "r1", eventType: "participant_left", domain: "a.example", tenant: "a" },
              { room: "r2", eventType: "participant_left", domain: "c.example", tenant: "b" },
              { room: null, eventType: "alert.unroutable", domain: null, tenant: "@alerts" }
            ],
            (over, i) => deliver(1_000 + i, { ...over, eventId: `q${i}` })
          )
          const id = (i: number) => rows[i]!.id
          yield* finish(id(1), "delivered", 2_000)
          yield* finish(id(4), "failed", 2_000)
          const list = (q: Parameters<typeof query>[0]) => Effect.flatMap(Store, (store) => Effect.map(store.deliveries(query(q)), ids))
          expect(yield* list({ room: "r1" })).toEqual([id(3), id(1), id(0)])
          expect(yield* list({ room: "nowhere" })).toEqual([])
          expect(yield* list({ eventId: "q2" })).toEqual([id(2)])
          expect(yield* list({ eventType: "participant_left" })).toEqual([id(4), id(3)])
          expect(yield* list({ domain: "a.example" })).toEqual([id(3), id(1), id(0)])
          expect(yield* list({ room: "r1", status: "pending" })).toEqual([id(3), id(0)])
          expect(yield* list({ room: "r2", tenant: "b", status: "failed" })).toEqual([id(4)])
          expect(yield* list({ domain: "a.example", eventType: "track_published", status: "delivered" })).toEqual([id(1)])
          expect(yield* list({ room: "r1", eventType: "participant_joined", tenant: "b" })).toEqual([])
          expect(yield* list({ room: "r1", limit: 2 })).toEqual([id(3), id(1)])
          expect(yield* list({ room: "r1", limit: 2, before: id(1) })).toEqual([id(0)])
          expect(yield* list({ domain: "a.example", status: "pending", before: id(3) })).toEqual([id(0)])
          expect(yield* list({ eventId: "q2", before: id(2) })).toEqual([])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // unroutable records and their groups
  // ---------------------------------------------------------------------------

  describe("unroutable events, by call and grouped", () => {
    const unroutable = (eventId: string, at: number, domain: string | null, reason: UnroutableEvent["reason"], call: string | null = null): UnroutableEvent => ({
      at,
      eventId,
      eventType: "participant_joined",
      room: `room-${eventId}`,
      headers: { xToIp: domain ?? "not a host", to: `<sip:+1555@${eventId}.example>`, dialled: "+15557654321" },
      domain,
      reason,
      call
    })
    const record = (u: UnroutableEvent) => Effect.flatMap(Store, (store) => acceptOne(store, acceptance({ eventId: u.eventId, receivedAt: u.at, unroutable: u })))

    test("a record keeps its call", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const u = unroutable("k1", 1_000, "sip.unknown.example", "unknown_domain", "RM_1")
          yield* record(u)
          expect(yield* store.unroutable(10)).toEqual([u])
        })
      ))

    test("grouped by domain and reason: count, first and last seen, the latest one's id and headers; most recently seen first", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const all = [
            unroutable("g1", 1_000, "d.example", "unknown_domain", "RM_1"),
            unroutable("g2", 3_000, "d.example", "unknown_domain"),
            unroutable("g3", 2_000, null, "missing_header"),
            unroutable("g4", 4_000, "e.example", "unknown_domain"),
            unroutable("g5", 2_500, "d.example", "tenant_conflict"),
            // The same time as g2, written after it: the latest.
            unroutable("g6", 3_000, "d.example", "unknown_domain"),
            unroutable("g7", 1_500, null, "missing_header")
          ]
          for (const u of all) yield* record(u)
          const group = (u: UnroutableEvent, count: number, firstSeen: number) => ({
            domain: u.domain,
            reason: u.reason,
            count,
            firstSeen,
            lastSeen: u.at,
            sampleEventId: u.eventId,
            headers: u.headers
          })
          expect(yield* store.unroutableGroups).toEqual([
            group(all[3]!, 1, 4_000),
            group(all[5]!, 3, 1_000),
            group(all[4]!, 1, 2_500),
            group(all[2]!, 2, 1_500)
          ])
          // Pruned records leave their groups.
          yield* store.prune(4_000, { delivered: 1e9, failed: 1e9, dedupe: 1e9, unroutable: 2_000, pins: 1e9 })
          expect(yield* store.unroutableGroups).toEqual([group(all[3]!, 1, 4_000), group(all[5]!, 2, 3_000), group(all[4]!, 1, 2_500), group(all[2]!, 1, 2_000)])
          yield* store.prune(10_000, { delivered: 1e9, failed: 1e9, dedupe: 1e9, unroutable: 1, pins: 1e9 })
          expect(yield* store.unroutableGroups).toEqual([])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // the feed of delivery changes
  // ---------------------------------------------------------------------------

  describe("the feed: changesAfter and lastChange", () => {
    test("one change per queueing, recorded attempt, expiry and requeue, in order, with the status and attempts as of it", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const start = yield* store.lastChange
          expect(yield* store.changesAfter(start, 100)).toEqual([])
          const joined = callChange("RM_1", "fd1", 1_000, { identity: routedIdentity() })
          const first = queued(
            yield* event(joined, { delivery: deliveryOf(joined, { tenant: "a" }), callEvent: deliveryOf(joined, { tenant: "a", eventId: "fd1:call.started", eventType: "call.started" }), pinChange: { _tag: "Set", pin: pin("room-of-RM_1") } })
          )
          const d = first.delivery!
          const started = first.callEvent!
          const other = yield* deliver(1_100, { tenant: "a", room: null, eventId: "fd2" })
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 1_200 }))
          yield* recordOne(store, d.id, attempt({ attempt: 2, at: 1_300, final: "failed", status: 500 }))
          yield* recordOne(store, other.id, expiry(0, 1_400))
          // An expiry of what is no longer pending changes nothing.
          yield* recordOne(store, other.id, expiry(0, 1_450))
          yield* store.requeue(d.id, 1_500)
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 1_600, final: "failed", status: 500 }))
          yield* finish(started.id, "failed", 1_650)
          yield* store.requeueFailed("a", 0, 1_700)
          // A duplicate queues nothing.
          yield* event(joined, { delivery: deliveryOf(joined, { tenant: "a" }) })

          const change = (x: Delivery, status: DeliveryChange["status"], attempts: number, at: number) => ({
            deliveryId: x.id,
            tenant: x.tenant,
            eventId: x.eventId,
            eventType: x.eventType,
            room: x.room,
            status,
            attempts,
            at
          })
          const expected = [
            change(d, "pending", 0, 1_000),
            change(started, "pending", 0, 1_000),
            change(other, "pending", 0, 1_100),
            change(d, "pending", 1, 1_200),
            change(d, "failed", 2, 1_300),
            change(other, "expired", 0, 1_400),
            change(d, "pending", 0, 1_500),
            change(d, "failed", 1, 1_600),
            change(started, "failed", 1, 1_650),
            // requeueFailed: each delivery it requeued, in id order.
            change(d, "pending", 0, 1_700),
            change(started, "pending", 0, 1_700)
          ]
          const all = yield* store.changesAfter(start, 100)
          expect(all.map(({ id: _, ...rest }) => rest)).toEqual(expected)
          for (const c of all) expect(typeof c.id).toBe("string")
          expect(new Set(all.map((c) => c.id)).size).toBe(all.length)

          // Pages resume where the last one stopped.
          const page = yield* store.changesAfter(start, 4)
          expect(page).toEqual(all.slice(0, 4))
          expect(yield* store.changesAfter(page[3]!.id, 100)).toEqual(all.slice(4))
          expect(yield* store.changesAfter(all[all.length - 1]!.id, 100)).toEqual([])
          expect(yield* store.changesAfter(start, 0)).toEqual([])

          // A new stream starts at the latest: it sees only newer changes.
          const latest = yield* store.lastChange
          expect(latest).toBe(all[all.length - 1]!.id)
          const next = yield* deliver(2_000, { tenant: "b", eventId: "fd3" })
          expect((yield* store.changesAfter(latest, 100)).map(({ id: _, ...rest }) => rest)).toEqual([change(next, "pending", 0, 2_000)])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // replays of unrouted calls
  // ---------------------------------------------------------------------------

  describe("unrouted(domain, since) and forgetUnrouted", () => {
    const D = "sip.unknown.example"
    const unroutableOf = (change: CallChange, domain: string | null, reason: UnroutableEvent["reason"]): UnroutableEvent => ({
      at: change.at,
      eventId: change.event.eventId,
      eventType: change.event.eventType,
      room: change.room,
      headers: { xToIp: domain, to: null, dialled: null },
      domain,
      reason,
      call: change.key
    })
    /** An event that reached no tenant: its body kept only as the store's rules say. */
    const unrouted = (change: CallChange, reason?: UnroutableEvent["reason"], domain: string | null = D) =>
      event(change, { unroutedBody: `body of ${change.event.eventId}`, ...(reason === undefined ? {} : { unroutable: unroutableOf(change, domain, reason) }) })
    const bodies = (domain: string, since: number) => Effect.flatMap(Store, (store) => store.unrouted(domain, since))
    const kept = (call: string, eventId: string, at: number) => ({ call, eventId, at, body: `body of ${eventId}` })

    test("the kept events of the calls with an unroutable event of the domain since `since`, in order per call", () =>
      run(
        Effect.gen(function* () {
          // A: not kept before the call had a reason; its unroutable event and the no-tenant events after it are.
          yield* unrouted(callChange("RM_A", "a1", 1_000, { eventType: "room_started" }))
          yield* unrouted(callChange("RM_A", "a2", 1_100, { identity: unroutedIdentity() }), "unknown_domain")
          yield* unrouted(callChange("RM_A", "a4", 1_300, { eventType: "track_published" }))
          // Received before a4, written after it.
          yield* unrouted(callChange("RM_A", "a3", 1_200, { eventType: "track_subscribed" }))
          // B: its unroutable event is older than `since`.
          yield* unrouted(callChange("RM_B", "b1", 500, { identity: unroutedIdentity() }), "unknown_domain")
          yield* unrouted(callChange("RM_B", "b2", 1_500, { eventType: "track_published" }))
          // C: another domain.
          yield* unrouted(callChange("RM_C", "c1", 1_000, { identity: unroutedIdentity("unknown_domain", { domain: "other.example" }) }), "unknown_domain", "other.example")
          // E: a tenant conflict in a routed call: never kept, never replayed.
          yield* event(callChange("RM_E", "e1", 1_000, { identity: routedIdentity() }))
          yield* unrouted(callChange("RM_E", "e2", 1_100), "tenant_conflict")
          // F: a call whose record already has a reason; its second SIP event is unroutable too, for the same domain.
          yield* unrouted(callChange("RM_F", "f1", 2_000, { identity: unroutedIdentity() }), "unknown_domain")
          // G: the unroutable event of a call that found a tenant before it (a SIP participant of another domain): kept itself.
          yield* event(callChange("RM_G", "g1", 1_000, { identity: routedIdentity() }))
          yield* unrouted(callChange("RM_G", "g2", 1_100), "unknown_domain")
          yield* unrouted(callChange("RM_G", "g3", 1_200, { eventType: "track_published" }))

          const found = yield* bodies(D, 1_000)
          const perCall = (call: string) => found.filter((e) => e.call === call)
          expect(perCall("RM_A")).toEqual([kept("RM_A", "a2", 1_100), kept("RM_A", "a3", 1_200), kept("RM_A", "a4", 1_300)])
          expect(perCall("RM_F")).toEqual([kept("RM_F", "f1", 2_000)])
          expect(perCall("RM_G")).toEqual([kept("RM_G", "g2", 1_100)])
          expect(found).toHaveLength(5)
          expect((yield* bodies(D, 0)).filter((e) => e.call === "RM_B")).toEqual([kept("RM_B", "b1", 500), kept("RM_B", "b2", 1_500)])
          expect(yield* bodies("other.example", 0)).toEqual([kept("RM_C", "c1", 1_000)])
          expect(yield* bodies(D, 2_001)).toEqual([])
          expect(yield* bodies("nowhere.example", 0)).toEqual([])
        })
      ))

    test("forgetUnrouted drops the kept events of those calls only; what the call keeps afterwards can be replayed again", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* unrouted(callChange("RM_A", "a1", 1_000, { identity: unroutedIdentity() }), "unknown_domain")
          yield* unrouted(callChange("RM_B", "b1", 1_000, { identity: unroutedIdentity() }), "unknown_domain")
          yield* store.forgetUnrouted(["RM_A", "RM_nobody"])
          yield* store.forgetUnrouted([])
          expect(yield* bodies(D, 0)).toEqual([kept("RM_B", "b1", 1_000)])
          yield* unrouted(callChange("RM_A", "a2", 2_000, { eventType: "track_published" }))
          expect((yield* bodies(D, 0)).filter((e) => e.call === "RM_A")).toEqual([kept("RM_A", "a2", 2_000)])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // pruning calls and the feed
  // ---------------------------------------------------------------------------

  describe("prune: calls and the feed", () => {
    const NOW = 1_000_000
    const POLICY: RetentionPolicy = { delivered: 1_000, failed: 5_000, dedupe: 1e9, unroutable: 1e9, pins: 1e9 }

    test("a call goes, with its timeline and kept events, the longest delivery retention after its last event; the feed after the delivered one", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const origin = yield* store.lastChange
          const D = "sip.unknown.example"
          const old = callChange("RM_old", "o1", NOW - 5_001, { identity: unroutedIdentity() })
          yield* event(old, {
            unroutedBody: "old body",
            unroutable: { at: old.at, eventId: "o1", eventType: "participant_joined", room: old.room, headers: { xToIp: D, to: null, dialled: null }, domain: D, reason: "unknown_domain", call: "RM_old" }
          })
          yield* event(callChange("RM_edge", "e1", NOW - 5_000))
          // First seen long ago, but its last event is recent.
          yield* event(callChange("RM_long", "l1", 0, { startedAt: 0 }))
          yield* event(callChange("RM_long", "l2", NOW - 10, { eventType: "track_published" }))
          // The feed: two changes before the cut-off (NOW - 1000), one at it, one after.
          const d = yield* deliver(NOW - 2_000, { eventId: "fd" })
          yield* recordOne(store, d.id, attempt({ at: NOW - 1_001 }))
          yield* recordOne(store, d.id, attempt({ attempt: 2, at: NOW - 1_000 }))
          yield* recordOne(store, d.id, attempt({ attempt: 3, at: NOW - 1 }))
          const start = yield* store.lastChange

          const pruned = yield* store.prune(NOW, POLICY)
          expect(pruned).toMatchObject({ calls: 1, feed: 2 })
          expect(yield* store.call("RM_old")).toEqual(Option.none())
          expect(keysOf(yield* store.calls(calls()))).toEqual(["RM_edge", "RM_long"])
          expect(yield* store.unrouted(D, 0)).toEqual([])
          expect((yield* store.changesAfter(origin, 100)).map((c) => c.at)).toEqual([NOW - 1_000, NOW - 1])
          // The stream goes on where it was.
          expect(yield* store.changesAfter(start, 100)).toEqual([])
          expect(yield* store.lastChange).toBe(start)
          // The call's key, seen again, is a new record with a timeline of its own.
          yield* event(callChange("RM_old", "o2", NOW, { eventType: "track_published" }))
          const again = Option.getOrThrow(yield* store.call("RM_old"))
          expect(again.firstSeenAt).toBe(NOW)
          expect(again.timeline.events.map((e) => e.eventId)).toEqual(["o2"])
          expect(yield* store.prune(NOW, POLICY)).toMatchObject({ calls: 0, feed: 0 })
        })
      ))
  })
}
