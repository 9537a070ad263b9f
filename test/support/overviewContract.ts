import { describe, expect, test } from "bun:test"
import { Effect, type Layer } from "effect"
import { LATENCY_BUCKETS, MINUTE_MS, summarize, type MinuteTally } from "../../src/domain/AttemptMinutes.ts"
import type { AttemptRecord } from "../../src/domain/Delivery.ts"
import type { StoreUnavailable } from "../../src/domain/Errors.ts"
import { HEALTHY } from "../../src/domain/TenantHealth.ts"
import type { StoreServices } from "../../src/store/StoreLive.ts"
import { Store } from "./store.ts"
import { attempt, deliver, expiry, runOn } from "./storeFixtures.ts"

/**
 * What the admin API's overview reads from every store (the SQLite reference and Redis both run
 * these cases): the per-minute tallies the attempts' write keeps, and every tenant's recorded health.
 */

/** Minute 29,000,000 since the epoch (in 2025), and a time `seconds` into a minute after it. */
const M = 29_000_000
const inMinute = (minute: number, seconds = 5) => (M + minute) * MINUTE_MS + seconds * 1_000

const delivered = (at: number, latencyMs: number): AttemptRecord => attempt({ at, latencyMs, status: 200, error: null, final: "delivered", nextAttemptAt: at })
const retried = (at: number, latencyMs: number): AttemptRecord => attempt({ at, latencyMs })
const failedFinally = (at: number, latencyMs: number): AttemptRecord => attempt({ at, latencyMs, status: null, error: "timeout", final: "failed", nextAttemptAt: at })
const disabledEntry = (at: number): AttemptRecord => ({ attempt: 2, at, status: null, error: "disabled", latencyMs: 0, final: "failed", nextAttemptAt: at })

/** A tally with the latency counts given by bucket (the rest 0). */
const tally = (minute: number, succeeded: number, failed: number, buckets: Record<number, number>): MinuteTally => ({
  minute: M + minute,
  succeeded,
  failed,
  latency: Array.from({ length: LATENCY_BUCKETS }, (_, i) => buckets[i] ?? 0)
})

const byMinute = (tallies: ReadonlyArray<MinuteTally>) => [...tallies].sort((a, b) => a.minute - b.minute)

/** Records each attempt on a delivery of its own, all in one write. */
const recordAll = (records: ReadonlyArray<AttemptRecord>) =>
  Effect.gen(function* () {
    const store = yield* Store
    const deliveries = yield* Effect.forEach(records, (r) => deliver(r.at - 1_000))
    yield* store.recordAttempts(records.map((record, i) => ({ id: deliveries[i]!.id, record })))
  })

export const overviewContract = (fresh: () => Layer.Layer<StoreServices, StoreUnavailable>) => {
  const run = <A>(program: Effect.Effect<A, StoreUnavailable, StoreServices>) => runOn(fresh())(program)

  describe("attemptMinutes", () => {
    test("each attempt counts in the minute it ended in, by outcome and latency bucket; expiries and disables are no attempts", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* recordAll([
            delivered(inMinute(0, 0), 8),
            retried(inMinute(0, 59.999), 10),
            retried(inMinute(0, 30), 11),
            expiry(1, inMinute(0, 40)),
            disabledEntry(inMinute(0, 41)),
            failedFinally(inMinute(1, 0), 12_000),
            delivered(inMinute(3), 31_000)
          ])
          // A later write of the same minute adds to its tally.
          yield* recordAll([delivered(inMinute(1, 30), 250)])
          expect(byMinute(yield* store.attemptMinutes(M - 1, M + 5))).toEqual([
            tally(0, 1, 2, { 0: 2, 1: 1 }),
            tally(1, 1, 1, { 4: 1, 10: 1 }),
            tally(3, 1, 0, { 11: 1 })
          ])
        })
      ))

    test("reads only the minutes asked for: older ones drop out of the hour", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          yield* recordAll([delivered(inMinute(0), 20), delivered(inMinute(59), 20), delivered(inMinute(60), 20)])
          expect(byMinute(yield* store.attemptMinutes(M + 1, M + 60)).map((t) => t.minute)).toEqual([M + 59, M + 60])
          expect(yield* store.attemptMinutes(M + 61, M + 120)).toEqual([])
        })
      ))

    test("the hour's p99 is the bound of the bucket its 99th percentile is in, from the stored tallies", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          // 98 quick attempts and 2 slow ones: the 99th of 100 is slow.
          yield* recordAll([...Array.from({ length: 98 }, (_, i) => delivered(inMinute(i % 3), 40)), retried(inMinute(1), 3_000), retried(inMinute(2), 2_600)])
          const hour = summarize(yield* store.attemptMinutes(M - 57, M + 2), M - 57, M + 2)
          expect(hour.p99Ms).toBe(5_000)
          expect(hour.successRate).toBe(0.98)
          expect(hour.minutes.slice(-3).map((m) => [m.succeeded, m.failed])).toEqual([[33, 0], [33, 1], [32, 1]])
          // A hundred more quick ones: of 200, the 2 slow ones are the last 1%.
          yield* recordAll(Array.from({ length: 100 }, () => delivered(inMinute(2), 45)))
          expect(summarize(yield* store.attemptMinutes(M - 57, M + 2), M - 57, M + 2).p99Ms).toBe(50)
        })
      ))
  })

  describe("recordedHealth", () => {
    test("every tenant whose health was recorded, in one read, and nothing else from the cache", () =>
      run(
        Effect.gen(function* () {
          const store = yield* Store
          expect(yield* store.recordedHealth).toEqual([])
          yield* store.cache("tenant-health", "not a tenant's")
          yield* store.cache("http-hooks", "{}")
          yield* store.setTenantHealth("down.example.com", { failingSince: 1_000, failingAlerted: true, disabledAt: null })
          yield* store.setTenantHealth("*.wild.example.com", { failingSince: 2_000, failingAlerted: false, disabledAt: 9_000 })
          yield* store.setTenantHealth("fine.example.com", HEALTHY)
          const recorded = [...(yield* store.recordedHealth)].sort(([a], [b]) => a.localeCompare(b))
          expect(recorded).toEqual([
            ["*.wild.example.com", { failingSince: 2_000, failingAlerted: false, disabledAt: 9_000 }],
            ["down.example.com", { failingSince: 1_000, failingAlerted: true, disabledAt: null }],
            ["fine.example.com", HEALTHY]
          ])
        })
      ))
  })
}
