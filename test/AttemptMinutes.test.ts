import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import {
  LATENCY_BOUNDS_MS,
  LATENCY_BUCKETS,
  latencyBucket,
  MINUTE_MS,
  p99Bound,
  summarize,
  tallyAttempts,
  tallyCounts,
  tallyOfCounts,
  type MinuteTally
} from "../src/domain/AttemptMinutes.ts"
import type { AttemptRecord } from "../src/domain/Delivery.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const LAST_BOUND = LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!

/** The exact 99th percentile (nearest rank) of some durations. */
const exactP99 = (latencies: ReadonlyArray<number>) => [...latencies].sort((a, b) => a - b)[Math.ceil(latencies.length * 0.99) - 1]!

const histogramOf = (latencies: ReadonlyArray<number>) => {
  const counts = Array<number>(LATENCY_BUCKETS).fill(0)
  for (const ms of latencies) counts[latencyBucket(ms)]!++
  return counts
}

// Durations around the bounds, where an off-by-one would show, and anywhere else.
const latency = fc.oneof(fc.constantFrom(...LATENCY_BOUNDS_MS.flatMap((b) => [b - 1, b, b + 1])), fc.integer({ min: 0, max: 60_000 }))

describe("the latency buckets", () => {
  test("a bound is in its own bucket; one more is in the next; past the last bound is the overflow bucket", () => {
    expect(latencyBucket(0)).toBe(0)
    expect(latencyBucket(10)).toBe(0)
    expect(latencyBucket(11)).toBe(1)
    expect(latencyBucket(LAST_BOUND)).toBe(LATENCY_BOUNDS_MS.length - 1)
    expect(latencyBucket(LAST_BOUND + 1)).toBe(LATENCY_BUCKETS - 1)
  })

  test("property: p99 is the smallest bound at or above the exact 99th percentile (the last bound past it), null for none", () => {
    expect(p99Bound(histogramOf([]))).toBeNull()
    fc.assert(
      fc.property(fc.array(latency, { minLength: 1, maxLength: 500 }), (latencies) => {
        const exact = exactP99(latencies)
        const expected = LATENCY_BOUNDS_MS.find((bound) => exact <= bound) ?? LAST_BOUND
        expect(p99Bound(histogramOf(latencies))).toBe(expected)
      })
    )
  })
})

describe("tallies", () => {
  const record = (at: number, latencyMs: number, outcome: "delivered" | "retry" | "failed" | "expired" | "disabled"): AttemptRecord => ({
    attempt: 1,
    at,
    status: outcome === "delivered" ? 200 : outcome === "expired" || outcome === "disabled" ? null : 500,
    error: outcome === "delivered" ? null : outcome === "expired" ? "expired" : outcome === "disabled" ? "disabled" : "HTTP 500",
    latencyMs,
    final: outcome === "retry" ? undefined : outcome === "disabled" ? "failed" : outcome,
    nextAttemptAt: at
  })
  const outcome = fc.constantFrom("delivered" as const, "retry" as const, "failed" as const, "expired" as const, "disabled" as const)
  const records = fc.array(fc.tuple(fc.integer({ min: 0, max: 10 * MINUTE_MS }), latency, outcome).map(([at, ms, o]) => record(at, ms, o)), { maxLength: 200 })

  test("property: however a batch is split into writes, the summed tallies are the same, and count each sent attempt once", () => {
    fc.assert(
      fc.property(records, fc.nat(), (all, cut) => {
        const at = all.length === 0 ? 0 : cut % (all.length + 1)
        const add = (tallies: ReadonlyArray<MinuteTally>) => summarize(tallies, 0, 10)
        // Two writes' tallies of one minute are kept as their sum, as the stores add them.
        const split = [...tallyAttempts(all.slice(0, at)), ...tallyAttempts(all.slice(at))]
        const merged = new Map<number, Array<number>>()
        for (const t of split) merged.set(t.minute, (merged.get(t.minute) ?? Array(2 + LATENCY_BUCKETS).fill(0)).map((n, i) => n + tallyCounts(t)[i]!))
        const whole = add(tallyAttempts(all))
        expect(add([...merged].map(([minute, counts]) => tallyOfCounts(minute, counts)))).toEqual(whole)
        const sent = all.filter((r) => r.final !== "expired" && r.error !== "disabled")
        expect(whole.minutes.reduce((n, m) => n + m.succeeded + m.failed, 0)).toBe(sent.length)
        expect(whole.minutes.reduce((n, m) => n + m.succeeded, 0)).toBe(sent.filter((r) => r.final === "delivered").length)
        for (const m of whole.minutes) {
          expect(m.succeeded + m.failed).toBe(sent.filter((r) => Math.floor(r.at / MINUTE_MS) === m.minute).length)
        }
        expect(whole.p99Ms).toBe(sent.length === 0 ? null : p99Bound(histogramOf(sent.map((r) => r.latencyMs))))
      })
    )
  })

  test("an hour is every minute oldest first, those without attempts at zero; the success rate is over all of them", () => {
    const hour = summarize(tallyAttempts([record(5 * MINUTE_MS, 20, "delivered"), record(7 * MINUTE_MS + 59_999, 20, "retry")]), 4, 7)
    expect(hour.minutes.map((m) => [m.minute, m.succeeded, m.failed])).toEqual([
      [4, 0, 0],
      [5, 1, 0],
      [6, 0, 0],
      [7, 0, 1]
    ])
    expect(hour.successRate).toBe(0.5)
    expect(summarize([], 4, 7).successRate).toBeNull()
  })
})
