import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { fullBucket, parseRateLimit, takeToken, type Bucket, type RateLimit } from "../src/domain/RateLimit.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const PER_MS = { s: 1_000, m: 60_000, h: 3_600_000 } as const
type Unit = keyof typeof PER_MS
const unitArb = fc.constantFrom<Unit>("s", "m", "h")
const T0 = 1_700_000_000_000

describe("parseRateLimit", () => {
  test.each<[string, RateLimit]>([
    ["50/s", { count: 50, perMs: 1_000 }],
    ["600/m", { count: 600, perMs: 60_000 }],
    ["1000/h", { count: 1_000, perMs: 3_600_000 }],
    ["1/s", { count: 1, perMs: 1_000 }],
    [" 50 / s ", { count: 50, perMs: 1_000 }],
    ["\t600/m\n", { count: 600, perMs: 60_000 }],
    ["1000 /h", { count: 1_000, perMs: 3_600_000 }],
    ["007/s", { count: 7, perMs: 1_000 }],
    [`${Number.MAX_SAFE_INTEGER}/h`, { count: Number.MAX_SAFE_INTEGER, perMs: 3_600_000 }]
  ])("accepts %p", (text, expected) => {
    expect(parseRateLimit(text)).toEqual(expected)
  })

  test.each([
    "0/s",
    "000/m",
    "-1/s",
    "1.5/s",
    "1.0/s",
    "50/d",
    "50",
    "/s",
    "",
    "   ",
    "50/",
    "s/50",
    "+5/s",
    "1e3/s",
    "0x10/s",
    "5 0/s",
    "50//s",
    "50/s/m",
    "50/ss",
    // Beyond Number.MAX_SAFE_INTEGER the count can no longer be represented exactly.
    "9007199254740992/s",
    "99999999999999999999/m",
    "1" + "0".repeat(400) + "/h"
  ])("refuses %p", (text) => {
    expect(parseRateLimit(text)).toBeUndefined()
  })

  test("any positive safe integer with any unit, in any spacing, round-trips", () => {
    const space = fc.constantFrom("", " ", "  ", "\t")
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
        unitArb,
        fc.tuple(space, space, space, space),
        (n, unit, [a, b, c, d]) => {
          expect(parseRateLimit(`${a}${n}${b}/${c}${unit}${d}`)).toEqual({ count: n, perMs: PER_MS[unit] })
        }
      ),
      { numRuns: 500 }
    )
  })

  test("any count past the safe integers is refused", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: BigInt(Number.MAX_SAFE_INTEGER) + 1n, max: 10n ** 30n }), unitArb, (n, unit) => {
        expect(parseRateLimit(`${n}/${unit}`)).toBeUndefined()
      })
    )
  })
})

// ---------------------------------------------------------------------------
// takeToken
// ---------------------------------------------------------------------------

const limitArb = (maxCount: number): fc.Arbitrary<RateLimit> =>
  fc.record({ count: fc.integer({ min: 1, max: maxCount }), perMs: unitArb.map((u) => PER_MS[u]) })

/** Takes from `bucket` until it says wait; returns how many were granted. */
const drain = (limit: RateLimit, bucket: Bucket, now: number) => {
  let b = bucket
  let granted = 0
  for (;;) {
    const r = takeToken(limit, b, now)
    b = r.bucket
    if (r.waitMs > 0) return { granted, bucket: b, waitMs: r.waitMs }
    granted++
    if (granted > limit.count + 1) throw new Error("bucket never ran dry")
  }
}

/**
 * A client that always wants more: it takes again at once after a grant and
 * retries at exactly now + waitMs after a refusal. Returns the grant times in [from, until).
 */
const greedy = (limit: RateLimit, from: number, until: number): number[] => {
  const grants: number[] = []
  let bucket = fullBucket(limit, from)
  let now = from
  while (now < until) {
    const r = takeToken(limit, bucket, now)
    bucket = r.bucket
    if (r.waitMs === 0) grants.push(now)
    else now += r.waitMs
  }
  return grants
}

/**
 * Requests arrive at the given (integer ms) times; one told to wait comes back at
 * now + waitMs. Requests are served in time order, like fibers sleeping on a clock.
 */
const serve = (limit: RateLimit, arrivals: ReadonlyArray<number>) => {
  const queue = [...arrivals].sort((a, b) => a - b)
  const grants: number[] = []
  let bucket = fullBucket(limit, queue[0] ?? T0)
  while (queue.length > 0) {
    const now = queue.shift()!
    const r = takeToken(limit, bucket, now)
    bucket = r.bucket
    if (r.waitMs === 0) {
      grants.push(now)
      continue
    }
    expect(Number.isInteger(r.waitMs) && r.waitMs > 0).toBe(true)
    const at = now + r.waitMs
    // Insert keeping time order; the retry goes after others due at the same time.
    let i = queue.length
    while (i > 0 && queue[i - 1]! > at) i--
    queue.splice(i, 0, at)
  }
  return grants
}

/** The most grants seen in any half-open window [t, t + perMs); the worst windows start at a grant. */
const maxInWindow = (grants: ReadonlyArray<number>, perMs: number) => {
  let max = 0
  let j = 0
  for (let i = 0; i < grants.length; i++) {
    if (j < i) j = i
    while (j < grants.length && grants[j]! < grants[i]! + perMs) j++
    max = Math.max(max, j - i)
  }
  return max
}

/**
 * The tightest true bound for [t, t + P) with integer request times. Grants in
 * the window happen at times t ≤ g ≤ t + P − 1. The bucket holds at most C
 * tokens at the first of them and refills at C/P per ms for at most P − 1 ms
 * before the last, so grants ≤ C + C(P − 1)/P, i.e. (being whole) 2C − ⌈C/P⌉.
 * A greedy client starting on a full bucket reaches it exactly (tested below),
 * so the plain "burst plus refill" 2C is never reached.
 */
const windowBound = ({ count, perMs }: RateLimit) => 2 * count - Math.ceil(count / perMs)

describe("takeToken", () => {
  test("a full bucket grants `count` takes at once, then asks to wait for one token's worth", () => {
    fc.assert(
      fc.property(limitArb(5_000), ({ count, perMs }) => {
        const limit = { count, perMs }
        const { granted, waitMs } = drain(limit, fullBucket(limit, T0), T0)
        expect(granted).toBe(count)
        expect(waitMs).toBe(Math.ceil(perMs / count))
      })
    )
  })

  test("examples: 2/s drains, then needs 500 ms; 3/s needs 334 ms (333.3 rounded up)", () => {
    const two = { count: 2, perMs: 1_000 }
    const drained = drain(two, fullBucket(two, T0), T0)
    expect(drained.granted).toBe(2)
    expect(drained.waitMs).toBe(500)
    expect(takeToken(two, drained.bucket, T0 + 499).waitMs).toBeGreaterThan(0)
    expect(takeToken(two, drained.bucket, T0 + 500).waitMs).toBe(0)

    const three = { count: 3, perMs: 1_000 }
    const d3 = drain(three, fullBucket(three, T0), T0)
    expect(d3.waitMs).toBe(334)
    expect(takeToken(three, d3.bucket, T0 + 333).waitMs).toBeGreaterThan(0)
    expect(takeToken(three, d3.bucket, T0 + 334).waitMs).toBe(0)
  })

  // The two cases below are the smallest the "exactly enough" property finds. Both come
  // from fractional tokens kept as floats: 1 − 0.059 is 0.9410000000000001, and a refill
  // stored on a refusal (0.282 + 0.030) is re-added later to 0.9999999999999999.
  test("1/s, last token taken at 0, asked at 59: the wait is 941 ms (a token is due at 1000), not more", () => {
    const limit = { count: 1, perMs: 1_000 }
    const empty = takeToken(limit, fullBucket(limit, T0), T0).bucket
    const r = takeToken(limit, empty, T0 + 59)
    expect(takeToken(limit, r.bucket, T0 + 1_000).waitMs).toBe(0)
    expect(r.waitMs).toBe(941)
  })

  test("1/s, last token taken at 0, refused at 282 and 312: the retry it is told to make (at 1000) is granted", () => {
    const limit = { count: 1, perMs: 1_000 }
    const empty = takeToken(limit, fullBucket(limit, T0), T0).bucket
    const first = takeToken(limit, empty, T0 + 282)
    const second = takeToken(limit, first.bucket, T0 + 312)
    expect(second.waitMs).toBe(688)
    expect(takeToken(limit, second.bucket, T0 + 312 + second.waitMs).waitMs).toBe(0)
  })

  test("a refusal takes nothing: asking again at the same instant gives the same answer", () => {
    const limit = { count: 4, perMs: 1_000 }
    const { bucket, waitMs } = drain(limit, fullBucket(limit, T0), T0)
    const again = takeToken(limit, bucket, T0)
    expect(again.waitMs).toBe(waitMs)
    expect(again.bucket).toEqual(bucket)
  })

  test("the bucket never holds more than `count`, however long it rests", () => {
    fc.assert(
      fc.property(limitArb(1_000), fc.integer({ min: 0, max: 10 * 3_600_000 }), (limit, rest) => {
        const { bucket } = drain(limit, fullBucket(limit, T0), T0)
        expect(drain(limit, bucket, T0 + rest).granted).toBeLessThanOrEqual(limit.count)
      })
    )
  })

  test("the wait it returns is exactly enough: granted at now + waitMs, refused at now + waitMs − 1", () => {
    fc.assert(
      fc.property(
        limitArb(2_000),
        // Mostly short gaps, so the bucket is often nearly empty and holds fractional tokens.
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 5_000 })), {
          minLength: 1,
          maxLength: 300
        }),
        (limit, gaps) => {
          let bucket = fullBucket(limit, T0)
          let now = T0
          for (const gap of gaps) {
            now += gap
            const r = takeToken(limit, bucket, now)
            if (r.waitMs > 0) {
              expect(Number.isInteger(r.waitMs)).toBe(true)
              // Both the bucket it returned and the one it was given must agree.
              for (const b of [r.bucket, bucket]) {
                expect(takeToken(limit, b, now + r.waitMs).waitMs).toBe(0)
                if (r.waitMs > 1) expect(takeToken(limit, b, now + r.waitMs - 1).waitMs).toBeGreaterThan(0)
              }
            }
            bucket = r.bucket
          }
        }
      ),
      { numRuns: 1_500 }
    )
  })

  test("a greedy client reaches the window bound 2C − ⌈C/P⌉ exactly in its first window", () => {
    fc.assert(
      fc.property(limitArb(5_000), (limit) => {
        const grants = greedy(limit, T0, T0 + limit.perMs)
        expect(grants.length).toBe(windowBound(limit))
      })
    )
    // 1/s: one at once, the next only at T0 + 1000, outside [T0, T0 + 1000).
    expect(greedy({ count: 1, perMs: 1_000 }, T0, T0 + 1_000)).toEqual([T0])
    expect(windowBound({ count: 10, perMs: 1_000 })).toBe(19)
  })

  test("random arrivals, retried at now + waitMs: no window [t, t + perMs) ever gets more than 2C − ⌈C/P⌉", () => {
    fc.assert(
      fc.property(
        limitArb(40).chain((limit) =>
          fc.tuple(
            fc.constant(limit),
            // Arrivals spread over a few periods, with clumps at the same instant.
            fc.array(fc.integer({ min: 0, max: 4 * limit.perMs }), { minLength: 1, maxLength: 150 }),
            fc.array(fc.integer({ min: 0, max: 4 * limit.perMs }), { maxLength: 4 })
          )
        ),
        ([limit, offsets, clumps]) => {
          const arrivals = [...offsets, ...clumps.flatMap((c) => Array.from({ length: limit.count * 2 }, () => c))].map((o) => T0 + o)
          const grants = serve(limit, arrivals)
          // Every request is eventually granted, each exactly once.
          expect(grants.length).toBe(arrivals.length)
          expect(maxInWindow(grants, limit.perMs)).toBeLessThanOrEqual(windowBound(limit))
        }
      ),
      { numRuns: 150 }
    )
  })

  test("the long-run rate of a greedy client is within 1% of count/perMs", () => {
    fc.assert(
      fc.property(limitArb(200), (limit) => {
        const periods = 100
        const grants = greedy(limit, T0, T0 + (periods + 1) * limit.perMs)
        // Skip the first period's burst: measure the refill rate alone.
        const from = T0 + limit.perMs
        const steady = grants.filter((g) => g >= from).length
        const rate = steady / (periods * limit.perMs)
        const expected = limit.count / limit.perMs
        expect(Math.abs(rate - expected) / expected).toBeLessThanOrEqual(0.01)
      }),
      { numRuns: 60 }
    )
  })
})
