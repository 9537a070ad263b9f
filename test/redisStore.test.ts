import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Fiber, Option, Stream } from "effect"
import type { NumberMapping } from "../src/Domain/Hook.ts"
import { Store } from "../src/Store.ts"
import { redisAvailable, startRedis, type TestRedis } from "./support/redis.ts"
import { acceptance, deliver, newDelivery, runOn, storeContract } from "./support/storeContract.ts"

const DAY = 86_400_000
// The server CI started (REDIS_URL), or one of our own; the outage test always starts its own.
let redis: TestRedis | undefined
let url = process.env.REDIS_URL ?? ""
const run = crypto.randomUUID().slice(0, 8)
let seq = 0
/** A fresh key prefix per store, so cases share one server but no data. */
const layer = (options: { prefix?: string; leaseMs?: number } = {}) =>
  Store.redis({ url, prefix: options.prefix ?? `t${run}-${++seq}:`, leaseMs: options.leaseMs ?? 10_000, dedupeMs: 2 * DAY, pinsMs: DAY })

describe.skipIf(!redisAvailable())("the Redis store", () => {
  beforeAll(async () => {
    if (url !== "") return
    redis = await startRedis()
    url = redis.url()
  })
  afterAll(() => redis?.stop())

  storeContract(() => layer())

  /** Two instances on one prefix: each its own connection and consumer, as two processes would have. */
  const twoInstances = <A>(leaseMs: number, program: (a: Store["Type"], b: Store["Type"]) => Effect.Effect<A, unknown>) => {
    const prefix = `pair${run}-${++seq}:`
    const one = Effect.provide(Store, layer({ prefix, leaseMs }))
    return Effect.runPromise(Effect.scoped(Effect.flatMap(Effect.all([one, one]), ([a, b]) => program(a, b))))
  }

  test("a delivery whose holder stops renewing is taken over after the lease, with its attempt count; a renewed one is not", () =>
    twoInstances(300, (a, b) =>
      Effect.gen(function* () {
        const kept = yield* Effect.provideService(deliver(1_000), Store, a)
        const orphan = yield* Effect.provideService(deliver(1_000), Store, b)
        yield* b.recordAttempt(orphan.id, { attempt: 2, at: 1_500, status: 503, error: "HTTP 503", latencyMs: 5, final: undefined, nextAttemptAt: 9_000 })
        expect(yield* a.claimStale).toEqual([])
        // a keeps renewing; b has "died" (it never renews).
        for (let i = 0; i < 5; i++) {
          yield* a.renewLeases
          yield* Effect.sleep("100 millis")
        }
        const claimed = yield* a.claimStale
        expect(claimed.map((d) => [d.id, d.attempts, d.nextAttemptAt])).toEqual([[orphan.id, 2, 9_000]])
        // Taken over means held: now a renews it, and b cannot take it back.
        yield* a.renewLeases
        expect(yield* b.claimStale).toEqual([])
        expect((yield* a.pending).map((d) => d.id)).toEqual([kept.id, orphan.id])
      })
    ))

  test("a finished delivery is never taken over; a new instance resumes nothing that is held", () =>
    twoInstances(200, (a, b) =>
      Effect.gen(function* () {
        const d = yield* Effect.provideService(deliver(1_000), Store, a)
        yield* a.recordAttempt(d.id, { attempt: 1, at: 1_100, status: 200, error: null, latencyMs: 5, final: "delivered", nextAttemptAt: 1_100 })
        yield* Effect.sleep("300 millis")
        expect(yield* b.claimStale).toEqual([])
        expect(yield* b.pending).toEqual([])
      })
    ))

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

  test("Redis down: every call fails fast with StoreUnavailable; back up: the same store works again, data intact", async () => {
    const own = await startRedis()
    try {
      await runOn(Store.redis({ url: own.url(2), prefix: "outage:", leaseMs: 10_000, dedupeMs: DAY, pinsMs: DAY }))(
        Effect.gen(function* () {
          const store = yield* Store
          const d = yield* deliver(1_000)
          yield* Effect.promise(() => own.stopServer("SIGKILL"))
          const started = Date.now()
          const down = yield* Effect.either(store.accept(acceptance({ eventId: "while-down", receivedAt: 2_000, delivery: newDelivery() })))
          expect(down._tag === "Left" && down.left._tag).toBe("StoreUnavailable")
          expect((yield* Effect.either(store.ping))._tag).toBe("Left")
          expect(Date.now() - started).toBeLessThan(2_500)
          yield* Effect.promise(() => own.startServer())
          yield* store.ping
          expect(Option.getOrThrow(yield* store.delivery(d.id)).status).toBe("pending")
          expect((yield* store.accept(acceptance({ eventId: d.eventId, receivedAt: 3_000 })))._tag).toBe("Duplicate")
          expect((yield* deliver(4_000)).id).toBeGreaterThan(d.id)
        })
      )
    } finally {
      await own.stop()
    }
  })
})
