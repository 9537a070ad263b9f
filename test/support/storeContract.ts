import { describe, expect, test } from "bun:test"
import { Effect, type Layer, Option, Schema } from "effect"
import fc from "fast-check"
import { StoredToken, tokenHash } from "../../src/domain/AdminToken.ts"
import type { Delivery, DeliveryStatus, Pin, UnroutableEvent } from "../../src/domain/Delivery.ts"
import type { StoreUnavailable } from "../../src/domain/Errors.ts"
import { HEALTHY } from "../../src/domain/TenantHealth.ts"
import type { AcceptResult, PinChange, RetentionPolicy } from "../../src/store/Store.ts"
import type { StoreServices } from "../../src/store/StoreLive.ts"
import { callContract } from "./callContract.ts"
import { overviewContract } from "./overviewContract.ts"
import { Store } from "./store.ts"
import {
  acceptance,
  acceptOne,
  attempt,
  deliver,
  expiry,
  finish,
  ids,
  newDelivery,
  pendingAll,
  pin,
  pinOne,
  query,
  recordOne,
  runOn,
  unroutableEvent
} from "./storeFixtures.ts"

export * from "./storeFixtures.ts"

/**
 * What every store must do, whatever keeps the data: the SQLite store and
 * the Redis store both run these cases (and those of callContract.ts).
 */

/** Registers every case; `fresh` gives an empty store for each run. */
export const storeContract = (fresh: () => Layer.Layer<StoreServices, StoreUnavailable>) => {
  const run = <A>(program: Effect.Effect<A, StoreUnavailable, StoreServices>) => runOn(fresh())(program)
  // ---------------------------------------------------------------------------
  // accept
  // ---------------------------------------------------------------------------

  describe("accept", () => {
    test("writes the delivery and returns it with an id, pending, due at once", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = newDelivery({ room: null, domain: null, eventCreatedAt: null, trace: null })
          const result = yield* acceptOne(store, acceptance({ eventId: d.eventId, receivedAt: 5_000, delivery: d }))
          if (result._tag !== "Accepted" || !result.delivery) throw new Error("not accepted")
          const stored = result.delivery
          expect(stored).toEqual({
            ...d,
            id: stored.id,
            status: "pending",
            attempts: 0,
            lastStatus: null,
            lastError: null,
            nextAttemptAt: 5_000,
            createdAt: 5_000,
            queuedAt: 5_000,
            updatedAt: 5_000
          })
          expect(Number.isInteger(stored.id) && stored.id > 0).toBe(true)
          expect(yield* pendingAll(store)).toEqual([stored])
          expect(yield* store.delivery(stored.id)).toEqual(Option.some({ ...stored, history: [] }))
          const second = yield* deliver(6_000)
          expect(second.id).toBeGreaterThan(stored.id)
        })
      ))

    test("a repeated event id is a Duplicate and writes nothing: no delivery, pin or unroutable record", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const first = yield* deliver(1_000, { eventId: "evt-dup" })
          const again = yield* acceptOne(store, 
            acceptance({
              eventId: "evt-dup",
              receivedAt: 2_000,
              delivery: newDelivery({ eventId: "evt-dup", tenant: "other.example" }),
              pinChange: { _tag: "Set", pin: pin("room-dup") },
              unroutable: unroutableEvent("evt-dup", 2_000)
            })
          )
          expect(again).toEqual({ _tag: "Duplicate" })
          expect(yield* pendingAll(store)).toEqual([first])
          expect(yield* store.deliveries(query())).toEqual([first])
          expect(yield* pinOne(store, "room-dup")).toEqual(Option.none())
          expect(yield* store.unroutable(10)).toEqual([])
        })
      ))

    test("an event with no delivery is still remembered for dedupe", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const event = acceptance({ eventId: "evt-pin-only", receivedAt: 1_000, pinChange: { _tag: "Set", pin: pin("r") } })
          expect(yield* acceptOne(store, event)).toEqual({ _tag: "Accepted", delivery: undefined })
          expect(yield* acceptOne(store, event)).toEqual({ _tag: "Duplicate" })
          expect(yield* pendingAll(store)).toEqual([])
        })
      ))

    test("property: one delivery per distinct event id, whatever the repeats and concurrency", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 40 }), (picks) =>
          run(
            Effect.gen(function* () {
              const store = yield* Store
              // All accepts are queued together, so they share group commits.
              const results = yield* Effect.forEach(
                picks,
                (k, i) => acceptOne(store, acceptance({ eventId: `e${k}`, receivedAt: i, delivery: newDelivery({ eventId: `e${k}` }) })),
                { concurrency: "unbounded" }
              )
              const distinct = new Set(picks).size
              expect(results.filter((r) => r._tag === "Accepted")).toHaveLength(distinct)
              const pending = yield* pendingAll(store)
              expect(new Set(pending.map((d) => d.eventId)).size).toBe(distinct)
              expect(pending).toHaveLength(distinct)
            })
          )
        ),
        { numRuns: 40 }
      )
    })
  })

  // ---------------------------------------------------------------------------
  // pending, recordAttempt, scheduleRetry, delivery
  // ---------------------------------------------------------------------------

  describe("the outbox", () => {
    test("pending lists only pending deliveries, in id order (not receivedAt order)", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          // receivedAt runs backwards, so an order by time would differ from id order.
          const ds = yield* Effect.forEach([5, 4, 3, 2, 1], (t) => deliver(t * 1_000))
          yield* finish(ds[1]!.id, "delivered", 9_000)
          yield* finish(ds[3]!.id, "failed", 9_000)
          const pending = yield* pendingAll(store)
          expect(ids(pending)).toEqual([ds[0]!.id, ds[2]!.id, ds[4]!.id])
          expect(ids(pending)).toEqual([...ids(pending)].sort((a, b) => a - b))
        })
      ))

    test("a non-final attempt keeps it pending and records attempts, status, error, next attempt and update time", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          yield* recordOne(store, d.id, attempt({ attempt: 2, at: 1_500, status: null, error: "timeout after 5000 ms", nextAttemptAt: 4_000 }))
          const [after] = yield* pendingAll(store)
          expect(after).toEqual({ ...d, attempts: 2, lastStatus: null, lastError: "timeout after 5000 ms", nextAttemptAt: 4_000, updatedAt: 1_500 })
        })
      ))

    test.each<["delivered" | "failed", number, string | null]>([
      ["delivered", 204, null],
      ["failed", 410, "HTTP 410 Gone"]
    ])("a final %p attempt finishes the delivery", (final, status, error) =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 1_500 }))
          yield* recordOne(store, d.id, attempt({ attempt: 2, at: 2_000, status, error, final, nextAttemptAt: 2_000 }))
          expect(yield* pendingAll(store)).toEqual([])
          const detail = Option.getOrThrow(yield* store.delivery(d.id))
          expect(detail).toEqual({
            ...d,
            status: final,
            attempts: 2,
            lastStatus: status,
            lastError: error,
            nextAttemptAt: 2_000,
            updatedAt: 2_000,
            history: [
              { attempt: 1, at: 1_500, status: 503, error: "HTTP 503", latencyMs: 12 },
              { attempt: 2, at: 2_000, status, error, latencyMs: 12 }
            ]
          })
        })
      ))

    test("delivery(id) returns the attempt history in order, only its own, and none for an unknown id", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const a = yield* deliver(1_000)
          const b = yield* deliver(1_000)
          const history = [
            { attempt: 1, at: 1_100, status: null, error: "connection refused", latencyMs: 3 },
            { attempt: 2, at: 2_100, status: 503, error: "HTTP 503", latencyMs: 40 },
            { attempt: 3, at: 4_100, status: 200, error: null, latencyMs: 25 }
          ]
          for (const [i, h] of history.entries()) {
            const final = i === history.length - 1 ? "delivered" : undefined
            yield* recordOne(store, a.id, { ...h, final, nextAttemptAt: h.at + 1_000 })
            // Interleave another delivery's attempts: they must not show up in a's history.
            yield* recordOne(store, b.id, attempt({ attempt: i + 1, at: h.at + 1 }))
          }
          expect(Option.getOrThrow(yield* store.delivery(a.id)).history).toEqual(history)
          expect(Option.getOrThrow(yield* store.delivery(b.id)).history.map((h) => h.at)).toEqual([1_101, 2_101, 4_101])
          expect(yield* store.delivery(b.id + 1_000)).toEqual(Option.none())
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // deliveries(query)
  // ---------------------------------------------------------------------------

  describe("deliveries(query)", () => {
    /** Creates deliveries for the given (tenant, status) pairs, in order. */
    const seed = (rows: ReadonlyArray<readonly [string, DeliveryStatus]>) =>
      Effect.forEach(rows, ([tenant, status], i) =>
        Effect.gen(function* () {
          const d = yield* deliver(1_000 + i, { tenant })
          if (status !== "pending") yield* finish(d.id, status, 50_000 + i)
          return { id: d.id, tenant, status }
        })
      )

    test("filters by status and tenant, newest first, up to the limit", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const rows = yield* seed([
            ["a", "pending"],
            ["b", "failed"],
            ["a", "failed"],
            ["a", "delivered"],
            ["b", "pending"],
            ["a", "failed"]
          ])
          const id = (i: number) => rows[i]!.id
          expect(ids(yield* store.deliveries(query()))).toEqual([id(5), id(4), id(3), id(2), id(1), id(0)])
          expect(ids(yield* store.deliveries(query({ status: "failed" })))).toEqual([id(5), id(2), id(1)])
          expect(ids(yield* store.deliveries(query({ tenant: "a" })))).toEqual([id(5), id(3), id(2), id(0)])
          expect(ids(yield* store.deliveries(query({ tenant: "a", status: "failed" })))).toEqual([id(5), id(2)])
          expect(ids(yield* store.deliveries(query({ tenant: "b", status: "delivered" })))).toEqual([])
          expect(ids(yield* store.deliveries(query({ tenant: "nobody" })))).toEqual([])
          expect(ids(yield* store.deliveries(query({ limit: 2 })))).toEqual([id(5), id(4)])
          expect(ids(yield* store.deliveries(query({ before: id(3), limit: 2 })))).toEqual([id(2), id(1)])
          const statuses = (yield* store.deliveries(query({ tenant: "a" }))).map((d) => d.status)
          expect(statuses).toEqual(["failed", "delivered", "failed", "pending"])
        })
      ))

    test("property: paging with `before` = last id of the previous page covers every match once, in order", async () => {
      const tenantArb = fc.constantFrom("a", "b", "c")
      const statusArb = fc.constantFrom<DeliveryStatus>("pending", "delivered", "failed")
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(tenantArb, statusArb), { maxLength: 30 }),
          fc.integer({ min: 1, max: 7 }),
          fc.option(tenantArb, { nil: undefined }),
          fc.option(statusArb, { nil: undefined }),
          (rows, pageSize, tenant, status) =>
            run(
              Effect.gen(function* () {
                const store = yield* Store
                const seeded = yield* seed(rows)
                const expected = seeded
                  .filter((r) => (tenant === undefined || r.tenant === tenant) && (status === undefined || r.status === status))
                  .map((r) => r.id)
                  .sort((x, y) => y - x)
                const seen: number[] = []
                let before: number | undefined
                for (;;) {
                  const page = yield* store.deliveries({ status, tenant, limit: pageSize, before })
                  expect(page.length).toBeLessThanOrEqual(pageSize)
                  for (const d of page) {
                    if (tenant !== undefined) expect(d.tenant).toBe(tenant)
                    if (status !== undefined) expect(d.status).toBe(status)
                  }
                  seen.push(...ids(page))
                  if (page.length < pageSize) break
                  before = page[page.length - 1]!.id
                }
                expect(seen).toEqual(expected)
              })
            )
        ),
        { numRuns: 60 }
      )
    })
  })

  // ---------------------------------------------------------------------------
  // requeue
  // ---------------------------------------------------------------------------

  describe("requeue", () => {
    test("NotFound for an unknown id; NotFailed (with the status) for pending and delivered", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const pending = yield* deliver(1_000)
          const delivered = yield* deliver(1_000)
          yield* finish(delivered.id, "delivered", 2_000)
          expect(yield* store.requeue(delivered.id + 100, 3_000)).toEqual({ _tag: "NotFound" })
          expect(yield* store.requeue(pending.id, 3_000)).toEqual({ _tag: "NotFailed", status: "pending" })
          expect(yield* store.requeue(delivered.id, 3_000)).toEqual({ _tag: "NotFailed", status: "delivered" })
          // Nothing changed.
          expect(Option.getOrThrow(yield* store.delivery(delivered.id)).status).toBe("delivered")
          expect(yield* pendingAll(store)).toEqual([pending])
        })
      ))

    test("a failed delivery is requeued with a fresh attempt budget, due now", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          yield* recordOne(store, d.id, attempt({ attempt: 8, at: 2_000, final: "failed" }))
          const result = yield* store.requeue(d.id, 9_000)
          if (result._tag !== "Requeued") throw new Error(`expected Requeued, got ${result._tag}`)
          expect(result.delivery).toMatchObject({
            id: d.id,
            status: "pending",
            attempts: 0,
            nextAttemptAt: 9_000,
            queuedAt: 9_000,
            updatedAt: 9_000,
            createdAt: 1_000
          })
          expect(yield* pendingAll(store)).toEqual([result.delivery])
          // A second requeue finds it pending.
          expect(yield* store.requeue(d.id, 9_500)).toEqual({ _tag: "NotFailed", status: "pending" })
        })
      ))

    test("after a retry or a recover the history numbers on from the last attempt; the budget (attempts) starts afresh", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          const entry = (a: { attempt: number; at: number; status: number | null; error: string | null }) => ({ ...a, latencyMs: 12 })
          // The engine numbers within a budget: from 1 again after each requeue.
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 1_100 }))
          yield* recordOne(store, d.id, attempt({ attempt: 2, at: 1_200, final: "failed" }))
          yield* store.requeue(d.id, 2_000)
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 2_100, final: "failed", status: 500, error: "HTTP 500" }))
          yield* store.requeueFailed(d.tenant, 0, 3_000)
          // Ended unsent by its tenant's disable: an entry with the attempts made before it.
          yield* recordOne(store, d.id, attempt({ attempt: 0, at: 3_100, final: "failed", status: null, error: "disabled", latencyMs: 0 }))
          yield* store.requeue(d.id, 4_000)
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 4_100, final: "delivered", status: 200, error: null }))
          const detail = Option.getOrThrow(yield* store.delivery(d.id))
          expect(detail).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200 })
          expect(detail.history).toEqual([
            entry({ attempt: 1, at: 1_100, status: 503, error: "HTTP 503" }),
            entry({ attempt: 2, at: 1_200, status: 503, error: "HTTP 503" }),
            entry({ attempt: 3, at: 2_100, status: 500, error: "HTTP 500" }),
            { attempt: 3, at: 3_100, status: null, error: "disabled", latencyMs: 0 },
            entry({ attempt: 4, at: 4_100, status: 200, error: null })
          ])
        })
      ))

    test("requeueFailed touches only that tenant's failed deliveries created at or after `since`", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const make = (tenant: string, createdAt: number, status: DeliveryStatus) =>
            Effect.gen(function* () {
              const d = yield* deliver(createdAt, { tenant })
              if (status !== "pending") yield* finish(d.id, status, 5_000)
              return d
            })
          const early = yield* make("a", 199, "failed")
          const atSince = yield* make("a", 200, "failed")
          const later = yield* make("a", 300, "failed")
          const delivered = yield* make("a", 300, "delivered")
          const pending = yield* make("a", 300, "pending")
          const otherTenant = yield* make("b", 300, "failed")

          expect(yield* store.requeueFailed("a", 200, 8_000)).toEqual({ count: 2, firstId: atSince.id })
          const requeued = (yield* pendingAll(store)).filter((d) => d.id !== pending.id)
          expect(ids(requeued)).toEqual([atSince.id, later.id])
          for (const d of requeued) expect(d).toMatchObject({ status: "pending", attempts: 0, nextAttemptAt: 8_000, queuedAt: 8_000, updatedAt: 8_000 })
          expect(requeued.map((d) => d.createdAt)).toEqual([200, 300])

          const statusOf = (id: number) => Effect.map(store.delivery(id), (o) => Option.getOrThrow(o).status)
          expect(yield* statusOf(early.id)).toBe("failed")
          expect(yield* statusOf(delivered.id)).toBe("delivered")
          expect(yield* statusOf(otherTenant.id)).toBe("failed")
          expect(ids(yield* pendingAll(store))).toEqual([atSince.id, later.id, pending.id])
          // Nothing left to requeue for a.
          expect(yield* store.requeueFailed("a", 200, 9_000)).toEqual({ count: 0, firstId: undefined })
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // expiry (the hook's maxAge passed before the event could be sent)
  // ---------------------------------------------------------------------------

  describe("expired", () => {
    test("an expiry finishes a pending delivery unsent: no history entry, attempts and last status kept, out of the queue", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000, { room: "room-x" })
          const next = yield* deliver(1_000, { room: "room-x" })
          yield* recordOne(store, d.id, attempt({ attempt: 1, at: 1_500, status: 503, error: "HTTP 503", nextAttemptAt: 3_000 }))
          expect((yield* store.queueStats).depth).toBe(2)
          yield* recordOne(store, d.id, expiry(1, 3_000))
          expect(Option.getOrThrow(yield* store.delivery(d.id))).toEqual({
            ...d,
            status: "expired",
            attempts: 1,
            lastStatus: 503,
            lastError: "expired",
            nextAttemptAt: 3_000,
            updatedAt: 3_000,
            history: [{ attempt: 1, at: 1_500, status: 503, error: "HTTP 503", latencyMs: 12 }]
          })
          // Not pending any more, by any of the queue's reads; the call's next delivery is its lane's head.
          expect(ids(yield* pendingAll(store))).toEqual([next.id])
          expect(ids(yield* store.pendingInLane(d.tenant, "room-x", 10))).toEqual([next.id])
          expect((yield* store.queueStats).depth).toBe(1)
          yield* finish(next.id, "delivered", 3_100)
          expect(yield* store.pendingTenants).toEqual([])
          expect(yield* store.queueStats).toEqual({ depth: 0, oldestQueuedAt: undefined })
        })
      ))

    test("an expiry never touches a delivery that is no longer pending", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          yield* finish(d.id, "delivered", 2_000)
          yield* recordOne(store, d.id, expiry(1, 3_000))
          expect(Option.getOrThrow(yield* store.delivery(d.id))).toMatchObject({ status: "delivered", lastStatus: 200, lastError: null, updatedAt: 2_000 })
          expect((yield* store.queueStats).depth).toBe(0)
        })
      ))

    test("listed by status (and by tenant and status), newest first", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const a = yield* deliver(1_000, { tenant: "a" })
          const b = yield* deliver(1_000, { tenant: "b" })
          const c = yield* deliver(1_000, { tenant: "a" })
          const failed = yield* deliver(1_000, { tenant: "a" })
          for (const d of [a, b, c]) yield* finish(d.id, "expired", 2_000)
          yield* finish(failed.id, "failed", 2_000)
          expect(ids(yield* store.deliveries(query({ status: "expired" })))).toEqual([c.id, b.id, a.id])
          expect(ids(yield* store.deliveries(query({ status: "expired", tenant: "a" })))).toEqual([c.id, a.id])
          expect(ids(yield* store.deliveries(query({ status: "failed" })))).toEqual([failed.id])
        })
      ))

    test("not requeued: retry answers NotFailed with the status, recover leaves expired deliveries alone", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const expired = yield* deliver(1_000, { tenant: "a" })
          const failed = yield* deliver(1_000, { tenant: "a" })
          yield* finish(expired.id, "expired", 2_000)
          yield* finish(failed.id, "failed", 2_000)
          expect(yield* store.requeue(expired.id, 3_000)).toEqual({ _tag: "NotFailed", status: "expired" })
          expect(yield* store.requeueFailed("a", 0, 3_000)).toEqual({ count: 1, firstId: failed.id })
          expect(ids(yield* pendingAll(store))).toEqual([failed.id])
          expect(Option.getOrThrow(yield* store.delivery(expired.id)).status).toBe("expired")
        })
      ))

    test("pruned after the failed retention, counted with the other deliveries", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const NOW = 1_000_000
          const policy: RetentionPolicy = { delivered: 1_000, failed: 5_000, dedupe: 0, unroutable: 0, pins: 0 }
          const old = yield* deliver(0)
          yield* finish(old.id, "expired", NOW - 5_001)
          // Older than the delivered retention, but expired ones are kept as long as failed ones.
          const mid = yield* deliver(0)
          yield* finish(mid.id, "expired", NOW - 2_000)
          expect((yield* store.prune(NOW, policy)).deliveries).toBe(1)
          expect(yield* store.delivery(old.id)).toEqual(Option.none())
          expect(ids(yield* store.deliveries(query({ status: "expired" })))).toEqual([mid.id])
          expect(ids(yield* store.deliveries(query()))).toEqual([mid.id])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // tenant health (auto-disable)
  // ---------------------------------------------------------------------------

  describe("tenantHealth / setTenantHealth", () => {
    test("a tenant never recorded is healthy", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          expect(yield* store.tenantHealth("never.example.com")).toEqual(HEALTHY)
        })
      ))

    test("a failing streak, its alert and a disable round-trip per tenant; healthy again clears them", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* store.setTenantHealth("down.example.com", { failingSince: 1_000, failingAlerted: false, disabledAt: null })
          yield* store.setTenantHealth("*.wild.example.com", { failingSince: 2_000, failingAlerted: false, disabledAt: 9_000 })
          expect(yield* store.tenantHealth("down.example.com")).toEqual({ failingSince: 1_000, failingAlerted: false, disabledAt: null })
          expect(yield* store.tenantHealth("*.wild.example.com")).toEqual({ failingSince: 2_000, failingAlerted: false, disabledAt: 9_000 })
          expect(yield* store.tenantHealth("other.example.com")).toEqual(HEALTHY)
          yield* store.setTenantHealth("down.example.com", { failingSince: 1_000, failingAlerted: true, disabledAt: 5_000 })
          expect(yield* store.tenantHealth("down.example.com")).toEqual({ failingSince: 1_000, failingAlerted: true, disabledAt: 5_000 })
          yield* store.setTenantHealth("*.wild.example.com", HEALTHY)
          expect(yield* store.tenantHealth("*.wild.example.com")).toEqual(HEALTHY)
          expect(yield* store.tenantHealth("down.example.com")).toEqual({ failingSince: 1_000, failingAlerted: true, disabledAt: 5_000 })
        })
      ))

    test("kept apart from the cache's other values", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* store.cache("down.example.com", "not health")
          yield* store.setTenantHealth("down.example.com", { failingSince: 7, failingAlerted: false, disabledAt: null })
          expect(yield* store.cached("down.example.com")).toEqual(Option.some("not health"))
          expect(yield* store.tenantHealth("down.example.com")).toEqual({ failingSince: 7, failingAlerted: false, disabledAt: null })
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // unroutable
  // ---------------------------------------------------------------------------

  describe("unroutable(limit)", () => {
    test("newest first, at most `limit`, every field round-trips", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const events = [
            unroutableEvent("u1", 1_000, "missing_header"),
            unroutableEvent("u2", 2_000, "malformed_header"),
            { ...unroutableEvent("u3", 3_000, "unknown_domain"), room: null, headers: { xToIp: null, to: "<sip:+1555@x.example>", dialled: null } }
          ]
          for (const u of events) yield* acceptOne(store, acceptance({ eventId: u.eventId, receivedAt: u.at, unroutable: u }))
          expect(yield* store.unroutable(10)).toEqual([...events].reverse())
          expect(yield* store.unroutable(2)).toEqual([events[2]!, events[1]!])
          expect(yield* store.unroutable(0)).toEqual([])
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // pins
  // ---------------------------------------------------------------------------

  describe("pins", () => {
    const change = (eventId: string, receivedAt: number, pinChange: PinChange) =>
      Effect.flatMap(Store, (store) => acceptOne(store, acceptance({ eventId, receivedAt, pinChange })))

    test("Set then pinOf returns it; a second Set keeps the first (a call stays where it started); Clear removes it", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          expect(yield* pinOne(store, "room-a")).toEqual(Option.none())
          const first = pin("room-a")
          yield* change("p1", 1_000, { _tag: "Set", pin: first })
          expect(yield* pinOne(store, "room-a")).toEqual(Option.some(first))
          yield* change("p2", 2_000, { _tag: "Set", pin: pin("room-a", "main.citydental.com") })
          expect(yield* pinOne(store, "room-a")).toEqual(Option.some(first))
          // Pins are per room.
          expect(yield* pinOne(store, "room-b")).toEqual(Option.none())
          yield* change("p3", 3_000, { _tag: "Clear", room: "room-a" })
          expect(yield* pinOne(store, "room-a")).toEqual(Option.none())
          // Touching or clearing a room with no pin creates nothing.
          yield* change("p4", 4_000, { _tag: "Touch", room: "room-c" })
          yield* change("p5", 4_000, { _tag: "Clear", room: "room-c" })
          expect(yield* pinOne(store, "room-c")).toEqual(Option.none())
        })
      ))

    test("a destination without an event filter round-trips", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const p: Pin = { room: "r", destination: { tenant: "t.example", url: "https://t.example/h" }, call: pin("r").call }
          yield* change("p1", 1_000, { _tag: "Set", pin: p })
          expect(yield* pinOne(store, "r")).toEqual(Option.some(p))
        })
      ))

    describe("call events: queued only when the pin change starts or ends the call, once", () => {
      const start = { at: 1_000, identity: "sip_+15550001111", sid: "PA_1" }
      const callPin = (room: string): Pin => ({ ...pin(room), start })
      const callEvent = (room: string, type: string) => newDelivery({ eventType: type, room, body: JSON.stringify({ type, room }) })
      const roomOf = (change: PinChange) => (change._tag === "Set" ? change.pin.room : change.room)
      const accept = (eventId: string, at: number, pinChange: PinChange, type: string) =>
        Effect.flatMap(Store, (store) =>
          acceptOne(store, acceptance({ eventId, receivedAt: at, delivery: newDelivery({ eventId, room: roomOf(pinChange) }), pinChange, callEvent: callEvent(roomOf(pinChange), type) }))
        )
      const queuedCallEvent = (result: AcceptResult) => (result._tag === "Accepted" ? result.callEvent : undefined)

      test("Set creating the pin starts the call, after the event's own delivery; a Set that finds a pin does not", () =>
        run(
          Effect.gen(function* () {
            const store = yield* Store
            const first = yield* accept("s1", 1_000, { _tag: "Set", pin: callPin("c1") }, "call.started")
            const started = queuedCallEvent(first)!
            expect(started).toMatchObject({ eventType: "call.started", room: "c1", status: "pending", attempts: 0 })
            expect(started.id).toBeGreaterThan((first as { delivery: Delivery }).delivery.id)
            expect(queuedCallEvent(yield* accept("s2", 1_500, { _tag: "Set", pin: callPin("c1") }, "call.started"))).toBeUndefined()
            const pending = yield* pendingAll(store)
            expect(pending.filter((d) => d.eventType === "call.started").map((d) => d.id)).toEqual([started.id])
            expect(pending.find((d) => d.id === started.id)?.body).toBe(started.body)
            expect(yield* pinOne(store, "c1")).toEqual(Option.some(callPin("c1")))
          })
        ))

      test("End ends an open call once and keeps the pin, marked ended; a later Clear ends nothing and removes it", () =>
        run(
          Effect.gen(function* () {
            const store = yield* Store
            yield* accept("e1", 1_000, { _tag: "Set", pin: callPin("c2") }, "call.started")
            expect(queuedCallEvent(yield* accept("e2", 2_000, { _tag: "End", room: "c2", at: 1_900 }, "call.ended"))).toBeDefined()
            expect(yield* pinOne(store, "c2")).toEqual(Option.some({ ...callPin("c2"), endedAt: 1_900 }))
            expect(queuedCallEvent(yield* accept("e3", 2_500, { _tag: "End", room: "c2", at: 2_400 }, "call.ended"))).toBeUndefined()
            expect(yield* pinOne(store, "c2")).toEqual(Option.some({ ...callPin("c2"), endedAt: 1_900 }))
            expect(queuedCallEvent(yield* accept("e4", 3_000, { _tag: "Clear", room: "c2" }, "call.ended"))).toBeUndefined()
            expect(yield* pinOne(store, "c2")).toEqual(Option.none())
            const ended = (yield* pendingAll(store)).filter((d) => d.eventType === "call.ended")
            expect(ended.map((d) => d.room)).toEqual(["c2"])
          })
        ))

      test("Clear ends an open call; End or Clear of a room without a pin ends nothing; a duplicate event queues nothing", () =>
        run(
          Effect.gen(function* () {
            const store = yield* Store
            yield* accept("f1", 1_000, { _tag: "Set", pin: callPin("c3") }, "call.started")
            expect(queuedCallEvent(yield* accept("f2", 2_000, { _tag: "Clear", room: "c3" }, "call.ended"))?.eventType).toBe("call.ended")
            expect(queuedCallEvent(yield* accept("f3", 2_000, { _tag: "Clear", room: "c3" }, "call.ended"))).toBeUndefined()
            expect(queuedCallEvent(yield* accept("f4", 2_000, { _tag: "End", room: "nowhere", at: 2_000 }, "call.ended"))).toBeUndefined()
            expect(yield* pinOne(store, "nowhere")).toEqual(Option.none())
            expect((yield* accept("f1", 3_000, { _tag: "Set", pin: callPin("c3") }, "call.started"))._tag).toBe("Duplicate")
            expect(yield* pinOne(store, "c3")).toEqual(Option.none())
            const calls = (yield* pendingAll(store)).filter((d) => d.eventType.startsWith("call."))
            expect(calls.map((d) => `${d.room} ${d.eventType}`)).toEqual(["c3 call.started", "c3 call.ended"])
          })
        ))

      let propertyRooms = 0
      test("any sequence of pin changes, in any batches: a call event is queued exactly when the call starts or ends, as a model of the pin says", async () => {
        const change = fc.constantFrom<PinChange["_tag"]>("Set", "Touch", "End", "Clear")
        await fc.assert(
          fc.asyncProperty(fc.array(fc.tuple(change, fc.boolean()), { minLength: 1, maxLength: 24 }), (steps) =>
            run(
              Effect.gen(function* () {
                const store = yield* Store
                const room = `prop-${++propertyRooms}-${Date.now().toString(36)}`
                const changes: Array<PinChange> = steps.map(([tag], i) =>
                  tag === "Set" ? { _tag: "Set", pin: callPin(room) } : tag === "End" ? { _tag: "End", room, at: 1_000 + i } : { _tag: tag, room }
                )
                // The model: no pin, an open call, or an ended call whose pin stays. A pin is never
                // replaced; End and Clear end an open call; Clear removes the pin.
                let state: "none" | "open" | "ended" = "none"
                const wanted = changes.map((c) => {
                  if (c._tag === "Set") return state === "none" ? ((state = "open"), "call.started") : null
                  if (c._tag === "End") return state === "open" ? ((state = "ended"), "call.ended") : null
                  if (c._tag === "Clear") {
                    const was = state
                    state = "none"
                    return was === "open" ? "call.ended" : null
                  }
                  return null
                })
                // Written in batches where the second flag of a step says "start a new write here".
                const batches: Array<Array<number>> = []
                steps.forEach(([, split], i) => (split || batches.length === 0 ? batches.push([i]) : batches[batches.length - 1]!.push(i)))
                const queued: Array<string | null> = []
                for (const batch of batches) {
                  const results = yield* store.acceptAll(
                    batch.map((i) => acceptance({ eventId: `${room}-${i}`, receivedAt: 1_000 + i, pinChange: changes[i]!, callEvent: callEvent(room, changes[i]!._tag === "Set" ? "call.started" : "call.ended") }))
                  )
                  for (const result of results) queued.push(queuedCallEvent(result)?.eventType ?? null)
                }
                expect(queued).toEqual(wanted)
                const finalPin = yield* pinOne(store, room)
                if (state === "none") expect(finalPin).toEqual(Option.none())
                else expect(Option.getOrThrow(finalPin).endedAt !== undefined).toBe(state === "ended")
              })
            )
          ),
          { numRuns: 40 }
        )
      })

      test("within one write, events see the pin changes before them: started, ended once, whatever the order of End and Clear", () =>
        run(
          Effect.gen(function* () {
            const store = yield* Store
            const item = (eventId: string, pinChange: PinChange, type: string) =>
              acceptance({ eventId, receivedAt: 1_000, pinChange, callEvent: callEvent(roomOf(pinChange), type) })
            const results = yield* store.acceptAll([
              item("g1", { _tag: "Set", pin: callPin("c4") }, "call.started"),
              item("g2", { _tag: "Set", pin: callPin("c4") }, "call.started"),
              item("g3", { _tag: "Clear", room: "c4" }, "call.ended"),
              item("g4", { _tag: "End", room: "c4", at: 1_000 }, "call.ended")
            ])
            expect(results.map((r) => queuedCallEvent(r)?.eventType ?? null)).toEqual(["call.started", null, "call.ended", null])
          })
        ))
    })

    test("Touch moves the pin's time forward, so a long call's pin outlives the retention", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* change("p1", 1_000, { _tag: "Set", pin: pin("long-call") })
          yield* change("p2", 1_000, { _tag: "Set", pin: pin("idle-call") })
          yield* change("p3", 5_000, { _tag: "Touch", room: "long-call" })
          // Cut-off for pins: 6_000 - 2_000 = 4_000; only the untouched pin is older.
          const pruned = yield* store.prune(6_000, { delivered: 1e9, failed: 1e9, dedupe: 1e9, unroutable: 1e9, pins: 2_000 })
          expect(pruned.pins).toBe(1)
          expect(yield* pinOne(store, "long-call")).toEqual(Option.some(pin("long-call")))
          expect(yield* pinOne(store, "idle-call")).toEqual(Option.none())
        })
      ))
  })

  // ---------------------------------------------------------------------------
  // prune
  // ---------------------------------------------------------------------------

  describe("prune", () => {
    const NOW = 1_000_000
    const POLICY: RetentionPolicy = { delivered: 1_000, failed: 5_000, dedupe: 2_000, unroutable: 3_000, pins: 4_000 }

    test("deletes exactly what each retention no longer keeps (strictly older), and counts it", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const accept = (eventId: string, receivedAt: number, extra: { pinChange?: PinChange; unroutable?: UnroutableEvent } = {}) =>
            acceptOne(store, acceptance({ eventId, receivedAt, ...extra }))

          // Deliveries, all received long ago: their age counts from their last change (updatedAt).
          const dOld = yield* deliver(0, { eventId: "d-old" })
          yield* finish(dOld.id, "delivered", NOW - 1_001)
          const dEdge = yield* deliver(0, { eventId: "d-edge" })
          yield* finish(dEdge.id, "delivered", NOW - 1_000)
          const dLate = yield* deliver(0, { eventId: "d-late" })
          yield* finish(dLate.id, "delivered", NOW - 10)
          const fOld = yield* deliver(0, { eventId: "f-old" })
          yield* finish(fOld.id, "failed", NOW - 5_001)
          // Older than the delivered retention, but failed ones are kept longer.
          const fMid = yield* deliver(0, { eventId: "f-mid" })
          yield* finish(fMid.id, "failed", NOW - 2_000)
          const pOld = yield* deliver(0, { eventId: "p-old" })
          yield* recordOne(store, pOld.id, attempt({ at: 1 }))

          yield* accept("u-old", NOW - 3_001, { unroutable: unroutableEvent("u-old", NOW - 3_001) })
          yield* accept("u-edge", NOW - 3_000, { unroutable: unroutableEvent("u-edge", NOW - 3_000) })
          yield* accept("pin-old", NOW - 4_001, { pinChange: { _tag: "Set", pin: pin("room-old") } })
          yield* accept("pin-edge", NOW - 4_000, { pinChange: { _tag: "Set", pin: pin("room-edge") } })
          yield* accept("e-edge", NOW - 2_000)
          yield* accept("e-new", NOW - 1)

          const pruned = yield* store.prune(NOW, POLICY)
          // Events older than NOW - 2000: the six deliveries' and the u-/pin- ones.
          // The feed: the six deliveries' queueing and their four attempts, all before the delivered cut-off.
          expect(pruned).toEqual({ deliveries: 2, events: 10, unroutable: 1, pins: 1, calls: 0, feed: 10 })

          expect(ids(yield* store.deliveries(query()))).toEqual([pOld.id, fMid.id, dLate.id, dEdge.id])
          expect(yield* store.delivery(dOld.id)).toEqual(Option.none())
          expect(yield* store.delivery(fOld.id)).toEqual(Option.none())
          expect(Option.getOrThrow(yield* store.delivery(pOld.id)).history).toHaveLength(1)
          expect((yield* store.unroutable(10)).map((u) => u.eventId)).toEqual(["u-edge"])
          expect(yield* pinOne(store, "room-old")).toEqual(Option.none())
          expect(Option.isSome(yield* pinOne(store, "room-edge"))).toBe(true)

          // A forgotten event id is accepted again; a remembered one is still a duplicate.
          expect((yield* acceptOne(store, acceptance({ eventId: "d-old", receivedAt: NOW, delivery: newDelivery({ eventId: "d-old" }) })))._tag).toBe(
            "Accepted"
          )
          expect(yield* accept("e-edge", NOW)).toEqual({ _tag: "Duplicate" })
          expect(yield* accept("e-new", NOW)).toEqual({ _tag: "Duplicate" })

          // Counts are of this run only: pruning again at the same time finds nothing.
          expect(yield* store.prune(NOW, POLICY)).toEqual({ deliveries: 0, events: 0, unroutable: 0, pins: 0, calls: 0, feed: 0 })
        })
      ))

    test("never deletes a pending delivery, however old, even with zero retention", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const ds = yield* Effect.forEach([0, 1, 500, 10_000], (t) => deliver(t))
          yield* recordOne(store, ds[0]!.id, attempt({ at: 2 }))
          const before = yield* pendingAll(store)
          const zero: RetentionPolicy = { delivered: 0, failed: 0, dedupe: 0, unroutable: 0, pins: 0 }
          const pruned = yield* store.prune(Number.MAX_SAFE_INTEGER, zero)
          // The feed's entries go, as any record does past its retention: the deliveries themselves stay pending.
          expect(pruned).toEqual({ deliveries: 0, events: 4, unroutable: 0, pins: 0, calls: 0, feed: 5 })
          expect(yield* pendingAll(store)).toEqual(before)
          expect(Option.getOrThrow(yield* store.delivery(ds[0]!.id)).history).toHaveLength(1)
        })
      ))
  })

  describe("tokens", () => {
    const token = (id: string, createdAt: number, hosts: ReadonlyArray<string> = ["a.example"]) =>
      Schema.decodeSync(StoredToken)({ id, hash: tokenHash(`srt_${id}`), hosts, label: null, createdAt })

    test("found by hash, listed oldest first, removed by id once", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          const older = token("tok_00000000000000aa", 2_000, ["*.citydental.com", "calls.drsmith.com"])
          const newer = { ...token("tok_00000000000000bb", 3_000), label: "Dr Smith's front desk" }
          yield* store.putToken(newer)
          yield* store.putToken(older)
          expect(yield* store.tokenByHash(older.hash)).toEqual(Option.some(older))
          expect(yield* store.tokenByHash(tokenHash("srt_unknown"))).toEqual(Option.none())
          expect(yield* store.tokens).toEqual([older, newer])
          expect(yield* store.removeToken(older.id)).toBe(true)
          expect(yield* store.removeToken(older.id)).toBe(false)
          expect(yield* store.tokenByHash(older.hash)).toEqual(Option.none())
          expect(yield* store.tokens).toEqual([newer])
        })
      ))
  })

  callContract(fresh)
  overviewContract(fresh)
}
