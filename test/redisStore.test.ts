import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { RedisClient } from "bun"
import { Effect, Fiber, Layer, Option, Stream } from "effect"
import fc from "fast-check"
import { MINUTE_MS, MINUTE_TALLY_KEPT } from "../src/domain/AttemptMinutes.ts"
import type { AttemptRecord, Delivery } from "../src/domain/Delivery.ts"
import type { NumberMapping } from "../src/domain/Hook.ts"
import type { CallChange } from "../src/domain/Call.ts"
import { FEED_MAX } from "../src/store/redis/RedisScripts.ts"
import { CLAIM_PAGE } from "../src/store/redis/RedisStore.ts"
import type { StoreServices } from "../src/store/StoreLive.ts"
import { StoreLive } from "../src/store/StoreLive.ts"
import { redisAvailable, startRedis, type TestRedis } from "./support/redis.ts"
import { provideStore, Store } from "./support/store.ts"
import { acceptance, acceptOne, deliver, newDelivery, runOn, storeContract } from "./support/storeContract.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const DAY = 86_400_000
// The server CI started (REDIS_URL), or one of our own; the outage test always starts its own.
let redis: TestRedis | undefined
let url = process.env.REDIS_URL ?? ""
let raw: RedisClient
const run = crypto.randomUUID().slice(0, 8)
let seq = 0
/** A fresh key prefix per store, so cases share one server but no data. */
const layer = (options: { prefix?: string; leaseMs?: number } = {}) =>
  StoreLive.redis({ url, prefix: options.prefix ?? `t${run}-${++seq}:`, leaseMs: options.leaseMs ?? 10_000, dedupeMs: 2 * DAY, pinsMs: DAY })

type Instance = Store

const on = <A, E>(store: Instance, program: Effect.Effect<A, E, StoreServices>) => provideStore(program, store)

/** A retry (pending), or a final attempt. */
const attemptAt = (at: number, over: Partial<AttemptRecord> = {}): AttemptRecord => ({
  attempt: 1,
  at,
  status: 503,
  error: "HTTP 503",
  latencyMs: 5,
  final: undefined,
  nextAttemptAt: at + 1_000,
  ...over
})
const delivered = (at: number) => attemptAt(at, { status: 200, error: null, final: "delivered", nextAttemptAt: at })
const failed = (at: number) => attemptAt(at, { status: 500, error: "HTTP 500", final: "failed", nextAttemptAt: at })

/**
 * A take-over pass once a holder's heartbeat has expired: the first pass only
 * marks it a suspect; one after the grace (half the lease) takes over.
 */
const takeOver = (store: Instance, leaseMs: number) =>
  Effect.gen(function* () {
    const first = yield* store.claimStale
    if (first.length > 0) return first
    yield* Effect.sleep(Math.ceil(leaseMs / 2) + 30)
    return yield* store.claimStale
  })

/** What an instance holds, read as the engine reads it: tenant by tenant, in id order. */
const heldBy = (store: Instance) =>
  Effect.gen(function* () {
    const held: Array<number> = []
    for (const tenant of yield* store.pendingTenants) held.push(...(yield* store.pendingAfter(tenant, 0, 1_000_000)).map((d) => d.id))
    return held.sort((a, b) => a - b)
  })

/** How often the server has run each command so far (the whole server: cases in a file run one at a time). */
const commandCalls = async () => {
  const info = (await raw.send("INFO", ["commandstats"])) as string
  const calls = new Map<string, number>()
  for (const match of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls.set(match[1]!, Number(match[2]))
  return calls
}
const callsDuring = async (program: () => Promise<unknown>) => {
  const before = await commandCalls()
  await program()
  const after = await commandCalls()
  const delta = new Map<string, number>()
  for (const [command, n] of after) if (n - (before.get(command) ?? 0) > 0) delta.set(command, n - (before.get(command) ?? 0))
  // This measurement's own INFO.
  delta.set("info", (delta.get("info") ?? 1) - 1)
  if (delta.get("info") === 0) delta.delete("info")
  return delta
}

/** Script calls among them (the counts also include every command a script ran). */
const scriptCalls = (calls: ReadonlyMap<string, number>) => (calls.get("evalsha") ?? 0) + (calls.get("eval") ?? 0)

/** The consumer holding a delivery, read from its hash. */
const ownerOf = async (prefix: string, id: number) => (await raw.send("HGET", [`${prefix}d:${id}`, "owner"])) as string | null

/**
 * The invariants the scripts keep: every pending delivery is held by exactly
 * one consumer and sits in that consumer's indexes (all, tenant, lane) and in
 * `queued` with its queuedAt; nothing else is in any consumer's indexes; a
 * consumer's tenant set names exactly the tenants it holds something of.
 */
const checkIndexes = async (prefix: string) => {
  const z = async (key: string) => (await raw.send("ZRANGE", [key, "0", "-1"])) as Array<string>
  const pending = new Set(await z(`${prefix}ix:s:"pending"`))
  const expected = new Map<string, Set<string>>()
  const add = (key: string, id: string) => {
    if (!expected.has(key)) expected.set(key, new Set())
    expected.get(key)!.add(id)
  }
  const tenantsOf = new Map<string, Set<string>>()
  for (const id of pending) {
    const [owner, tenant, room, queuedAt] = (await raw.send("HMGET", [`${prefix}d:${id}`, "owner", "tenant", "room", "queuedAt"])) as Array<string | null>
    expect(owner, `pending delivery ${id} has a holder`).toBeString()
    add(`${prefix}o:${owner}`, id)
    add(`${prefix}o:${owner}|t:${tenant}`, id)
    if (room !== "null") add(`${prefix}o:${owner}|l:${tenant}|${room}`, id)
    if (!tenantsOf.has(owner!)) tenantsOf.set(owner!, new Set())
    tenantsOf.get(owner!)!.add(tenant!)
    expect(Number(await raw.send("ZSCORE", [`${prefix}queued`, id]))).toBe(Number(queuedAt))
  }
  expect(Number(await raw.send("ZCARD", [`${prefix}queued`]))).toBe(pending.size)
  const ownerKeys = ((await raw.send("KEYS", [`${prefix}o:*`])) as Array<string>).sort()
  expect(ownerKeys.filter((k) => !k.endsWith("|tenants"))).toEqual([...expected.keys()].sort())
  for (const [key, ids] of expected) expect(new Set(await z(key))).toEqual(ids)
  for (const key of ownerKeys.filter((k) => k.endsWith("|tenants"))) {
    const owner = key.slice(`${prefix}o:`.length, -"|tenants".length)
    expect(new Set((await raw.send("SMEMBERS", [key])) as Array<string>)).toEqual(tenantsOf.get(owner) ?? new Set())
  }
  for (const id of await z(`${prefix}ix`)) {
    if (!pending.has(id)) expect(await raw.send("HGET", [`${prefix}d:${id}`, "owner"])).toBeNull()
  }
}

describe.skipIf(!redisAvailable())("the Redis store", () => {
  beforeAll(async () => {
    if (url === "") {
      redis = await startRedis()
      url = redis.url()
    }
    raw = new RedisClient(url)
    await raw.connect()
  })
  afterAll(async () => {
    raw?.close()
    await redis?.stop()
  })

  storeContract(() => layer())

  /** A store open until the enclosing scope closes. */
  const open = (prefix: string, leaseMs: number) => Effect.flatMap(Layer.build(layer({ prefix, leaseMs })), (context) => Effect.provide(Store, context))
  /** Instances on one prefix: each its own connection and consumer, as separate processes would have. */
  const instances = <A>(count: number, leaseMs: number, program: (stores: Array<Instance>, prefix: string) => Effect.Effect<A, unknown>) => {
    const prefix = `pair${run}-${++seq}:`
    const one = open(prefix, leaseMs)
    return Effect.runPromise(Effect.scoped(Effect.flatMap(Effect.all(Array.from({ length: count }, () => one)), (stores) => program(stores, prefix))))
  }
  const twoInstances = <A>(leaseMs: number, program: (a: Instance, b: Instance, prefix: string) => Effect.Effect<A, unknown>) =>
    instances(2, leaseMs, ([a, b], prefix) => program(a!, b!, prefix))

  describe("holding and taking over", () => {
    test("a delivery whose holder stops renewing is taken over after the lease, with its attempt count and next attempt time; a renewed one is not", () =>
      twoInstances(300, (a, b, prefix) =>
        Effect.gen(function* () {
          const kept = yield* on(a, deliver(1_000))
          const orphan = yield* on(b, deliver(1_000, { room: "room-orphan" }))
          yield* b.recordAttempts([{ id: orphan.id, record: attemptAt(1_500, { attempt: 2, nextAttemptAt: 9_000 }) }])
          expect(yield* a.claimStale).toEqual([])
          // a keeps renewing; b has "died" (it never renews).
          for (let i = 0; i < 5; i++) {
            yield* a.renewLeases
            yield* Effect.sleep("100 millis")
          }
          const claimed = yield* takeOver(a, 300)
          expect(claimed.map((d) => [d.id, d.attempts, d.nextAttemptAt, d.lastStatus])).toEqual([[orphan.id, 2, 9_000, 503]])
          expect(claimed[0]!.body).toBeUndefined()
          // Taken over means held: a's queue reads show it, b's do not, and b cannot take it back.
          yield* a.renewLeases
          expect(yield* b.claimStale).toEqual([])
          expect(yield* heldBy(a)).toEqual([kept.id, orphan.id])
          expect(yield* heldBy(b)).toEqual([])
          expect((yield* a.pendingInLane(orphan.tenant, "room-orphan", 10)).map((d) => d.id)).toEqual([orphan.id])
          expect(yield* b.pendingInLane(orphan.tenant, "room-orphan", 10)).toEqual([])
          yield* Effect.promise(() => checkIndexes(prefix))
        })
      ))

    test("a finished delivery is never taken over; a new instance resumes nothing that is held", () =>
      twoInstances(200, (a, b, prefix) =>
        Effect.gen(function* () {
          const d = yield* on(a, deliver(1_000))
          yield* on(a, deliver(1_000))
          yield* a.recordAttempts([{ id: d.id, record: delivered(1_100) }])
          yield* a.renewLeases
          expect(yield* b.claimStale).toEqual([])
          expect(yield* b.pendingTenants).toEqual([])
          yield* Effect.sleep("300 millis")
          // a died: only its pending delivery moves.
          expect((yield* takeOver(b, 200)).map((q) => q.id)).toEqual([d.id + 1])
          yield* Effect.promise(() => checkIndexes(prefix))
        })
      ))

    test("after Redis was away for longer than the lease, no live instance is taken over: it renews within the grace", () =>
      twoInstances(300, (a, b, prefix) =>
        Effect.gen(function* () {
          const d = yield* on(b, deliver(1_000))
          // Every heartbeat expired meanwhile, as when Redis comes back from a long outage.
          const beats = (yield* Effect.promise(() => raw.send("KEYS", [`${prefix}hb:*`]))) as Array<string>
          expect(beats).toHaveLength(1)
          yield* Effect.promise(() => raw.send("DEL", beats))
          expect(yield* a.claimStale).toEqual([])
          yield* b.renewLeases
          yield* Effect.sleep("200 millis")
          expect(yield* a.claimStale).toEqual([])
          expect(yield* heldBy(b)).toEqual([d.id])
          // Silent again, and for longer than the grace: now it is taken over.
          yield* Effect.sleep("350 millis")
          expect((yield* takeOver(a, 300)).map((q) => q.id)).toEqual([d.id])
        })
      ))

    test("a cleanly stopped instance hands over at once, without waiting out the lease", () =>
      instances(1, 60_000, ([a], prefix) =>
        Effect.gen(function* () {
          const d = yield* Effect.scoped(Effect.flatMap(open(prefix, 60_000), (b) => on(b, deliver(1_000))))
          expect((yield* a!.claimStale).map((q) => q.id)).toEqual([d.id])
        })
      ))

    test("take-over goes a page at a time, in id order, keeping each call's lane, and forgets the drained instance", () =>
      twoInstances(200, (a, b, prefix) =>
        Effect.gen(function* () {
          const total = 2 * CLAIM_PAGE + 123
          const rooms = ["r0", "r1", "r2", null]
          const accepted = yield* b.acceptAll(
            Array.from({ length: total }, (_, i) => {
              const d = newDelivery({ room: rooms[i % rooms.length]!, tenant: i % 2 === 0 ? "even.example" : "odd.example" })
              return acceptance({ eventId: d.eventId, receivedAt: 1_000 + i, delivery: d })
            })
          )
          const ids = accepted.map((r) => (r._tag === "Accepted" ? r.delivery!.id : 0))
          const dead = (yield* Effect.promise(() => ownerOf(prefix, ids[0]!)))!
          yield* Effect.sleep("300 millis")
          yield* a.renewLeases
          const pages: Array<Array<number>> = [(yield* takeOver(a, 200)).map((d) => d.id)]
          for (;;) {
            const page = yield* a.claimStale
            if (page.length === 0) break
            pages.push(page.map((d) => d.id))
          }
          expect(pages.map((p) => p.length)).toEqual([CLAIM_PAGE, CLAIM_PAGE, 123])
          expect(pages.flat()).toEqual(ids)
          expect(yield* heldBy(a)).toEqual(ids)
          expect(yield* a.pendingTenants).toEqual(["even.example", "odd.example"])
          const lane = (yield* a.pendingInLane("even.example", "r0", 5)).map((d) => d.id)
          expect(lane).toEqual(ids.filter((_, i) => i % 4 === 0).slice(0, 5))
          // Nothing of b is left but its hashes' data: no index keys, not in the consumer set.
          expect((yield* Effect.promise(() => raw.send("KEYS", [`${prefix}o:${dead}*`])))).toEqual([])
          expect(yield* Effect.promise(() => raw.send("SISMEMBER", [`${prefix}consumers`, dead]))).toBe(0)
          yield* Effect.promise(() => checkIndexes(prefix))
        })
      ))

    test("an attempt recorded by an instance that was taken over mid-attempt never makes a finished delivery pending again", () =>
      twoInstances(200, (a, b, prefix) =>
        Effect.gen(function* () {
          const d = yield* on(b, deliver(1_000))
          yield* Effect.sleep("300 millis")
          expect((yield* takeOver(a, 200)).map((q) => q.id)).toEqual([d.id])
          // a delivers it; b, paused past the lease, then records its own (failed, to be retried) attempt.
          yield* a.recordAttempts([{ id: d.id, record: delivered(2_000) }])
          yield* b.recordAttempts([{ id: d.id, record: attemptAt(2_100) }])
          const detail = Option.getOrThrow(yield* a.delivery(d.id))
          expect(detail.status).toBe("delivered")
          expect(detail.history.map((h) => h.at)).toEqual([2_000, 2_100])
          expect(yield* heldBy(a)).toEqual([])
          expect(yield* heldBy(b)).toEqual([])
          // b still recording a final attempt for what a now holds releases it from a.
          const e = yield* on(b, deliver(3_000))
          yield* Effect.sleep("300 millis")
          expect((yield* takeOver(a, 200)).map((q) => q.id)).toEqual([e.id])
          yield* b.recordAttempts([{ id: e.id, record: delivered(3_100) }])
          expect(yield* heldBy(a)).toEqual([])
          yield* Effect.promise(() => checkIndexes(prefix))
        })
      ))
  })

  describe("the queue reads", () => {
    test("each instance reads only what it holds: tenants, pages after an id, lanes; none carries a body", () =>
      twoInstances(10_000, (a, b, prefix) =>
        Effect.gen(function* () {
          const a1 = yield* on(a, deliver(1_000, { tenant: "t1.example", room: "call-1" }))
          const b1 = yield* on(b, deliver(1_000, { tenant: "t1.example", room: "call-1" }))
          const a2 = yield* on(a, deliver(1_000, { tenant: "t1.example", room: "call-2" }))
          const a3 = yield* on(a, deliver(1_000, { tenant: "t2.example", room: null }))
          const a4 = yield* on(a, deliver(1_000, { tenant: "t1.example", room: "call-1" }))
          expect(yield* a.pendingTenants).toEqual(["t1.example", "t2.example"])
          expect(yield* b.pendingTenants).toEqual(["t1.example"])
          const page = yield* a.pendingAfter("t1.example", 0, 10)
          expect(page.map((d) => d.id)).toEqual([a1.id, a2.id, a4.id])
          for (const d of page) expect("body" in d).toBe(false)
          const { body: _, ...queued } = a1
          expect(page[0]).toEqual(queued)
          expect((yield* a.pendingAfter("t1.example", a1.id, 1)).map((d) => d.id)).toEqual([a2.id])
          expect(yield* a.pendingAfter("t1.example", a4.id, 10)).toEqual([])
          expect(yield* a.pendingAfter("t1.example", 0, 0)).toEqual([])
          expect((yield* a.pendingInLane("t1.example", "call-1", 10)).map((d) => d.id)).toEqual([a1.id, a4.id])
          expect((yield* a.pendingInLane("t1.example", "call-1", 1)).map((d) => d.id)).toEqual([a1.id])
          expect(yield* a.pendingInLane("t1.example", "call-1", 0)).toEqual([])
          expect((yield* b.pendingInLane("t1.example", "call-1", 10)).map((d) => d.id)).toEqual([b1.id])
          expect(yield* a.pendingInLane("t2.example", "call-1", 10)).toEqual([])
          expect((yield* a.pendingAfter("t2.example", 0, 10)).map((d) => d.id)).toEqual([a3.id])
          // A finished delivery leaves every read; a tenant with nothing left leaves the list.
          yield* a.recordAttempts([{ id: a3.id, record: delivered(2_000) }])
          expect(yield* a.pendingTenants).toEqual(["t1.example"])
          expect(Option.getOrThrow(yield* b.bodyOf(a3.id))).toBe(a3.body)
          expect(yield* a.bodyOf(999_999)).toEqual(Option.none())
          yield* Effect.promise(() => checkIndexes(prefix))
        })
      ))

    test("queueStats counts every instance's pending deliveries, and the oldest queuedAt among them", () =>
      twoInstances(10_000, (a, b) =>
        Effect.gen(function* () {
          expect(yield* a.queueStats).toEqual({ depth: 0, oldestQueuedAt: undefined })
          const first = yield* on(b, deliver(500))
          const second = yield* on(a, deliver(1_000))
          yield* on(a, deliver(2_000))
          expect(yield* a.queueStats).toEqual({ depth: 3, oldestQueuedAt: 500 })
          yield* b.recordAttempts([{ id: first.id, record: failed(3_000) }])
          expect(yield* b.queueStats).toEqual({ depth: 2, oldestQueuedAt: 1_000 })
          yield* a.recordAttempts([{ id: second.id, record: attemptAt(3_000) }])
          expect(yield* b.queueStats).toEqual({ depth: 2, oldestQueuedAt: 1_000 })
          // Requeued: pending again, waiting since the requeue.
          yield* b.requeue(first.id, 9_000)
          expect(yield* a.queueStats).toEqual({ depth: 3, oldestQueuedAt: 1_000 })
          yield* a.recordAttempts([{ id: second.id, record: delivered(9_500) }])
          expect(yield* a.queueStats).toEqual({ depth: 2, oldestQueuedAt: 2_000 })
        })
      ))

    test("requeue and requeueFailed hand what they requeue to the instance that asked, in pages past the first", () =>
      twoInstances(10_000, (a, b, prefix) =>
        Effect.gen(function* () {
          const count = 2_345
          const accepted = yield* b.acceptAll(
            Array.from({ length: count }, (_, i) => {
              const d = newDelivery({ tenant: i % 3 === 0 ? "other.example" : "bulk.example", room: `call-${i % 7}` })
              return acceptance({ eventId: d.eventId, receivedAt: i, delivery: d })
            })
          )
          const all = accepted.map((r) => (r._tag === "Accepted" ? r.delivery! : undefined)!)
          yield* b.recordAttempts(all.map((d) => ({ id: d.id, record: failed(5_000) })))
          expect(yield* b.queueStats).toEqual({ depth: 0, oldestQueuedAt: undefined })
          const bulk = all.filter((d) => d.tenant === "bulk.example")
          const since = 100
          const expected = bulk.filter((d) => d.createdAt >= since)
          expect(yield* a.requeueFailed("bulk.example", since, 9_000)).toEqual({ count: expected.length, firstId: expected[0]!.id })
          expect(yield* heldBy(a)).toEqual(expected.map((d) => d.id))
          expect(yield* heldBy(b)).toEqual([])
          expect(yield* a.queueStats).toEqual({ depth: expected.length, oldestQueuedAt: 9_000 })
          const one = all.find((d) => d.tenant === "other.example")!
          expect((yield* b.requeue(one.id, 9_100))._tag).toBe("Requeued")
          expect(yield* heldBy(b)).toEqual([one.id])
          expect((yield* b.pendingInLane("other.example", one.room!, 10)).map((d) => d.id)).toEqual([one.id])
          yield* Effect.promise(() => checkIndexes(prefix))
        })
      ))
  })

  describe("round trips", () => {
    test("one acceptAll is one script call, however many events; the accepts and the attempts of one turn share one", async () => {
      await runOn(layer())(
        Effect.gen(function* () {
          const store = yield* Store
          // Load the scripts first, so no NOSCRIPT retry is counted.
          const warm = yield* deliver(1)
          yield* store.recordAttempts([{ id: warm.id, record: attemptAt(2) }])
          const batch = Array.from({ length: 40 }, (_, i) => {
            const d = newDelivery({ room: `room-${i % 5}` })
            return acceptance({ eventId: d.eventId, receivedAt: 10 + i, delivery: d, pinChange: { _tag: "Touch", room: `room-${i % 5}` } })
          })
          let results: ReadonlyArray<unknown> = []
          const one = yield* Effect.promise(() => callsDuring(() => Effect.runPromise(Effect.map(store.acceptAll(batch), (r) => (results = r)))))
          expect(scriptCalls(one)).toBe(1)
          expect(results).toHaveLength(40)
          // Calls in one turn, from concurrent fibers, are grouped: one script call each for accepts and attempts.
          const ids = results.map((r) => (r as { delivery: Delivery }).delivery.id)
          const grouped = yield* Effect.promise(() =>
            callsDuring(() =>
              Effect.runPromise(
                Effect.all(
                  [
                    ...ids.map((id) => store.recordAttempts([{ id, record: attemptAt(100) }])),
                    ...Array.from({ length: 10 }, () => Effect.asVoid(on(store, deliver(200))))
                  ],
                  { concurrency: "unbounded" }
                )
              )
            )
          )
          expect(scriptCalls(grouped)).toBe(2)
          for (const id of ids) expect(Option.getOrThrow(yield* store.delivery(id)).history).toHaveLength(1)
          // A duplicate within one call is a duplicate too.
          const again = yield* store.acceptAll([batch[0]!, acceptance({ eventId: "same", receivedAt: 1 }), acceptance({ eventId: "same", receivedAt: 1 })])
          expect(again.map((r) => r._tag)).toEqual(["Duplicate", "Accepted", "Duplicate"])
        })
      )
    })

    test("renewing the lease is one command, however much the instance holds", () =>
      twoInstances(10_000, (a) =>
        Effect.gen(function* () {
          yield* a.acceptAll(
            Array.from({ length: 3_000 }, () => {
              const d = newDelivery()
              return acceptance({ eventId: d.eventId, receivedAt: 1, delivery: d })
            })
          )
          const calls = yield* Effect.promise(() => callsDuring(() => Effect.runPromise(a.renewLeases)))
          expect(scriptCalls(calls)).toBe(1)
          // The script's own commands: the heartbeat, the consumer set, the suspect mark. Nothing per delivery.
          expect([...calls.keys()].sort()).toEqual(["evalsha", "hdel", "sadd", "set"])
          expect(calls.get("set")).toBe(1)
        })
      ))

    test("pinsOf reads every room in one command; rooms without a pin are absent", async () => {
      await runOn(layer())(
        Effect.gen(function* () {
          const store = yield* Store
          const pin = (room: string) => ({ room, destination: { tenant: "t.example", url: "https://t.example/h" }, call: { room, sipCallId: null, from: null, to: null, domain: null } })
          yield* store.acceptAll(["a", "b", "c"].map((room) => acceptance({ eventId: `pin-${room}`, receivedAt: 1, pinChange: { _tag: "Set", pin: pin(room) } })))
          let pins: ReadonlyMap<string, unknown> = new Map()
          const calls = yield* Effect.promise(() => callsDuring(() => Effect.runPromise(Effect.map(store.pinsOf(["a", "x", "c"]), (p) => (pins = p)))))
          expect(calls).toEqual(new Map([["mget", 1]]))
          expect(pins).toEqual(new Map([["a", pin("a")], ["c", pin("c")]]))
          expect(yield* store.pinsOf([])).toEqual(new Map())
        })
      )
    })
  })

  describe("calls, unroutable groups, replays and the feed, as keys", () => {
    test("the feed keeps its last FEED_MAX changes: past them the oldest go, with their place in the age index", async () => {
      const prefix = `feed${run}-${++seq}:`
      // Filled past the bound by hand, as a long run would: FEED_MAX + 100 changes of deliveries long gone.
      await raw.send("EVAL", [
        `for i = 1, tonumber(ARGV[2]) do
           local id = redis.call('XADD', ARGV[1] .. 'feed', '*', 'd', 0, 's', '"delivered"', 'n', 1, 'at', i)
           redis.call('ZADD', ARGV[1] .. 'feed:age', i, id)
         end`,
        "0",
        prefix,
        String(FEED_MAX + 100)
      ])
      const oldest = ((await raw.send("XRANGE", [`${prefix}feed`, "-", "+", "COUNT", "1"])) as Array<[string]>)[0]![0]
      await runOn(layer({ prefix }))(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000_000)
          expect(Number(yield* Effect.promise(() => raw.send("XLEN", [`${prefix}feed`])))).toBe(FEED_MAX)
          expect(Number(yield* Effect.promise(() => raw.send("ZCARD", [`${prefix}feed:age`])))).toBe(FEED_MAX)
          expect(yield* Effect.promise(() => raw.send("ZSCORE", [`${prefix}feed:age`, oldest]))).toBeNull()
          // The changes of deliveries that are gone are skipped, however many: the stream reaches the one kept.
          const changes = yield* store.changesAfter("0", 10)
          expect(changes.map((c) => [c.deliveryId, c.status])).toEqual([[d.id, "pending"]])
        })
      )
    })

    test("pruning everything leaves no index of calls, groups, replays or the feed behind", async () => {
      const prefix = `prune${run}-${++seq}:`
      await runOn(layer({ prefix }))(
        Effect.gen(function* () {
          const store = yield* Store
          const call = (key: string, room: string, eventId: string, at: number, over: Partial<CallChange> = {}): CallChange => ({
            key,
            room,
            roomSid: key,
            at,
            event: { eventId, eventType: "participant_joined", at, createdAt: null },
            ...over
          })
          const identity = { tenant: "t.example", domain: "t.example", from: "+15550001111", to: null, sipCallId: null, routing: { rule: "exact", pattern: "t.example", source: "sip.h.to", reason: null }, sip: null } as const
          const routed = call("RM_1", "room-a", "a1", 1_000, { identity, startedAt: 1_000 })
          const r = yield* acceptOne(store, acceptance({ eventId: "a1", receivedAt: 1_000, call: routed, delivery: newDelivery({ eventId: "a1", tenant: "t.example", call: "RM_1" }) }))
          const lost = call("RM_2", "room-b", "b1", 1_000, { identity: { ...identity, tenant: null, domain: "x.example", routing: { ...identity.routing, reason: "unknown_domain" } } })
          const u = { at: 1_000, eventId: "b1", eventType: "participant_joined", room: "room-b", headers: { xToIp: "x.example", to: null, dialled: null }, domain: "x.example", reason: "unknown_domain", call: "RM_2" } as const
          yield* acceptOne(store, acceptance({ eventId: "b1", receivedAt: 1_000, call: lost, unroutable: u, unroutedBody: "{}" }))
          if (r._tag !== "Accepted") throw new Error("not accepted")
          yield* store.recordAttempts([{ id: r.delivery!.id, record: delivered(2_000) }])
          expect(yield* store.unrouted("x.example", 0)).toHaveLength(1)

          const zero = { delivered: 0, failed: 0, dedupe: 0, unroutable: 0, pins: 0 }
          expect(yield* store.prune(10_000, zero)).toEqual({ deliveries: 1, events: 2, unroutable: 1, pins: 0, calls: 2, feed: 2 })
          const left = ((yield* Effect.promise(() => raw.send("KEYS", [`${prefix}*`]))) as Array<string>).map((k) => k.slice(prefix.length)).sort()
          // Counters, this instance's heartbeat, the feed's stream (which keeps its last id, so streams resume after it)
          // and the attempt's minute tally (which expires by itself).
          expect(left.filter((k) => !k.startsWith("hb:"))).toEqual(["am:0", "consumers", "feed", "seq", "useq"])
        })
      )
    })
  })

  test("property: whatever instances accept, record, requeue, die and take over, the holder indexes stay consistent and split the queue", async () => {
    type Op =
      | { readonly _tag: "accept"; readonly by: number; readonly tenant: number; readonly room: number }
      | { readonly _tag: "record"; readonly by: number; readonly pick: number; readonly outcome: "retry" | "delivered" | "failed" }
      | { readonly _tag: "requeue"; readonly by: number; readonly pick: number }
      | { readonly _tag: "requeueFailed"; readonly by: number; readonly tenant: number }
      | { readonly _tag: "die"; readonly by: number }
      | { readonly _tag: "claim"; readonly by: number }
    const by = fc.integer({ min: 0, max: 2 })
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ _tag: fc.constant("accept" as const), by, tenant: fc.integer({ min: 0, max: 1 }), room: fc.integer({ min: 0, max: 2 }) }) },
      { weight: 3, arbitrary: fc.record({ _tag: fc.constant("record" as const), by, pick: fc.nat(), outcome: fc.constantFrom("retry" as const, "delivered" as const, "failed" as const) }) },
      { weight: 1, arbitrary: fc.record({ _tag: fc.constant("requeue" as const), by, pick: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ _tag: fc.constant("requeueFailed" as const), by, tenant: fc.integer({ min: 0, max: 1 }) }) },
      { weight: 1, arbitrary: fc.record({ _tag: fc.constant("die" as const), by }) },
      { weight: 1, arbitrary: fc.record({ _tag: fc.constant("claim" as const), by }) }
    )
    const tenants = ["t0.example", "t1.example"]
    const rooms = ["room-a", "room-b", null]
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), (ops) =>
        instances(3, 60_000, (stores, prefix) =>
          Effect.gen(function* () {
            const known: Array<number> = []
            const names = new Map<number, string>()
            let clock = 1_000
            for (const o of ops) {
              const store = stores[o.by]!
              clock += 10
              switch (o._tag) {
                case "accept": {
                  const d = yield* on(store, deliver(clock, { tenant: tenants[o.tenant]!, room: rooms[o.room]! }))
                  known.push(d.id)
                  names.set(o.by, (yield* Effect.promise(() => ownerOf(prefix, d.id)))!)
                  break
                }
                case "record": {
                  if (known.length === 0) break
                  const id = known[o.pick % known.length]!
                  const record = o.outcome === "retry" ? attemptAt(clock) : o.outcome === "delivered" ? delivered(clock) : failed(clock)
                  yield* store.recordAttempts([{ id, record }])
                  break
                }
                case "requeue":
                  if (known.length > 0) yield* store.requeue(known[o.pick % known.length]!, clock)
                  break
                case "requeueFailed":
                  yield* store.requeueFailed(tenants[o.tenant]!, 0, clock)
                  break
                case "die": {
                  // As after kill -9 once the lease and the grace ran out: its heartbeat is gone, long suspected.
                  const name = names.get(o.by)
                  if (name) {
                    yield* Effect.promise(() => raw.send("DEL", [`${prefix}hb:${name}`]))
                    yield* Effect.promise(() => raw.send("HSET", [`${prefix}suspects`, name, "0"]))
                  }
                  break
                }
                case "claim":
                  yield* store.claimStale
                  break
              }
            }
            yield* Effect.promise(() => checkIndexes(prefix))
            // The instances' queue reads split the pending deliveries between them: each exactly once.
            const pending = (yield* stores[0]!.deliveries({ status: "pending", tenant: undefined, limit: 1_000, before: undefined })).map((d) => d.id)
            const held = (yield* Effect.forEach(stores, heldBy)).flat()
            expect(held.sort((x, y) => x - y)).toEqual(pending.sort((x, y) => x - y))
            expect((yield* stores[1]!.queueStats).depth).toBe(pending.length)
          })
        )
      ),
      { numRuns: 40 }
    )
  })

  test("an API change on one instance reaches the other's change stream", () =>
    twoInstances(10_000, (a, b) =>
      Effect.gen(function* () {
        const seen = yield* Effect.fork(b.apiChanges.pipe(Stream.take(2), Stream.runDrain))
        yield* Effect.sleep("100 millis")
        yield* a.putApiNumber({ number: "+15550001111", host: "calls.example.com" } as NumberMapping)
        yield* Fiber.join(seen)
        expect(yield* b.apiNumbers).toEqual([{ number: "+15550001111", host: "calls.example.com" } as NumberMapping])
      }).pipe(Effect.timeout("3 seconds"))
    ))

  describe("attempt tallies", () => {
    const minuteAt = (at: number) => Math.floor(at / MINUTE_MS)
    const AT = 29_000_000 * MINUTE_MS + 5_000

    test("a batch's attempts add to their minute's hash in the attempts' own script call, one HINCRBY per count it changes, and the hash expires", async () => {
      const prefix = `tally-${run}:`
      await runOn(layer({ prefix }))(
        Effect.gen(function* () {
          const store = yield* Store
          const ds = yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i) => deliver(AT - 1_000 + i))
          // Load the script first, so no NOSCRIPT retry is counted.
          yield* store.recordAttempts([{ id: ds[0]!.id, record: attemptAt(AT, { latencyMs: 5 }) }])
          const calls = yield* Effect.promise(() =>
            callsDuring(() =>
              Effect.runPromise(store.recordAttempts(ds.slice(1).map((d, i) => ({ id: d.id, record: i % 2 === 0 ? delivered(AT + i) : attemptAt(AT + i, { latencyMs: 300 }) }))))
            )
          )
          expect(scriptCalls(calls)).toBe(1)
          // succeeded, failed, and the two latency buckets used; one expiry.
          expect(calls.get("hincrby")).toBe(4)
          expect(calls.get("pexpire")).toBe(1)
          const ttl = Number(yield* Effect.promise(() => raw.send("PTTL", [`${prefix}am:${minuteAt(AT)}`])))
          expect(ttl).toBeGreaterThan((MINUTE_TALLY_KEPT - 1) * MINUTE_MS)
          expect(ttl).toBeLessThanOrEqual(MINUTE_TALLY_KEPT * MINUTE_MS)
          const [t] = yield* store.attemptMinutes(minuteAt(AT), minuteAt(AT))
          expect([t!.succeeded, t!.failed]).toEqual([15, 15])
        })
      )
    })

    test("a tally that cannot be written fails the write as StoreUnavailable, and the attempt is not recorded either", async () => {
      const prefix = `tally-broken-${run}:`
      await runOn(layer({ prefix }))(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(AT - 1_000)
          yield* Effect.promise(() => raw.send("SET", [`${prefix}am:${minuteAt(AT)}`, "not a hash"]))
          const written = yield* Effect.either(store.recordAttempts([{ id: d.id, record: delivered(AT) }]))
          expect(written._tag === "Left" && written.left._tag).toBe("StoreUnavailable")
          expect(Option.getOrThrow(yield* store.delivery(d.id))).toMatchObject({ status: "pending", history: [] })
        })
      )
    })
  })

  test("Redis down: every call fails fast with StoreUnavailable; back up: the same store works again, data intact", async () => {
    const own = await startRedis()
    try {
      await runOn(StoreLive.redis({ url: own.url(2), prefix: "outage:", leaseMs: 10_000, dedupeMs: DAY, pinsMs: DAY }))(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          yield* Effect.promise(() => own.stopServer("SIGKILL"))
          const started = Date.now()
          const down = yield* Effect.either(acceptOne(store, acceptance({ eventId: "while-down", receivedAt: 2_000, delivery: newDelivery() })))
          expect(down._tag === "Left" && down.left._tag).toBe("StoreUnavailable")
          expect((yield* Effect.either(store.ping))._tag).toBe("Left")
          expect((yield* Effect.either(store.recordAttempts([{ id: d.id, record: attemptAt(2_000) }])))._tag).toBe("Left")
          expect(Date.now() - started).toBeLessThan(2_500)
          yield* Effect.promise(() => own.startServer())
          yield* store.ping
          expect(Option.getOrThrow(yield* store.delivery(d.id)).status).toBe("pending")
          expect(yield* heldBy(store)).toEqual([d.id])
          expect((yield* acceptOne(store, acceptance({ eventId: d.eventId, receivedAt: 3_000 })))._tag).toBe("Duplicate")
          expect((yield* deliver(4_000)).id).toBeGreaterThan(d.id)
        })
      )
    } finally {
      await own.stop()
    }
  })
})
