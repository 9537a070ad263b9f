import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Clock, Duration, Effect, Either, Fiber, TestClock, TestContext } from "effect"
import fc from "fast-check"
import type { RouterConfig } from "../src/domain/Config.ts"
import { TenantRejected, TenantTimeout, TenantUnreachable, type DeliveryError } from "../src/domain/Errors.ts"
import { isRetryable, parseRetryAfter, retrySchedule } from "../src/delivery/Retry.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const NOW = Date.parse("2030-01-01T00:00:00Z")

describe("parseRetryAfter", () => {
  test("absent or empty is undefined", () => {
    expect(parseRetryAfter(null, NOW)).toBeUndefined()
    expect(parseRetryAfter("", NOW)).toBeUndefined()
    expect(parseRetryAfter("   ", NOW)).toBeUndefined()
  })

  test("delay-seconds: any run of digits is that many seconds, whitespace ignored", () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000_000 }), fc.constantFrom("", " ", "\t", "  "), (seconds, pad) => {
        expect(parseRetryAfter(`${pad}${seconds}${pad}`, NOW)).toBe(seconds * 1000)
      })
    )
    expect(parseRetryAfter("0", NOW)).toBe(0)
    expect(parseRetryAfter("007", NOW)).toBe(7000)
  })

  test("HTTP-date: milliseconds from now until that date, never negative", () => {
    fc.assert(
      fc.property(fc.integer({ min: -86_400, max: 86_400 }), (offsetSeconds) => {
        const date = new Date(NOW + offsetSeconds * 1000)
        expect(parseRetryAfter(date.toUTCString(), NOW)).toBe(Math.max(0, offsetSeconds * 1000))
      })
    )
    expect(parseRetryAfter("Wed, 01 Jan 2030 00:00:30 GMT", NOW)).toBe(30_000)
    // The date is truncated to whole seconds; the wait is measured from `now` exactly.
    expect(parseRetryAfter("Wed, 01 Jan 2030 00:00:30 GMT", NOW + 250)).toBe(29_750)
  })

  test("values that are neither delay-seconds nor an HTTP-date are ignored", () => {
    for (const value of ["soon", "5s", "1e3", "0x10", "12abc", "-5", "+5", "1.5", "1 2", " 7 8 "]) {
      expect([value, parseRetryAfter(value, NOW)]).toEqual([value, undefined])
    }
  })
})

describe("isRetryable", () => {
  test("network errors and timeouts are retried", () => {
    expect(isRetryable(new TenantUnreachable({ message: "connection refused" }))).toBe(true)
    expect(isRetryable(new TenantTimeout({ afterMs: 1000 }))).toBe(true)
  })

  test("of the statuses, exactly 408, 429 and 5xx are retried", () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.option(fc.nat(), { nil: undefined }), (status, retryAfterMs) => {
        const expected = status === 408 || status === 429 || status >= 500
        expect(isRetryable(new TenantRejected({ status, retryAfterMs }))).toBe(expected)
      })
    )
    for (const status of [300, 301, 302, 307, 308, 400, 401, 403, 404, 409, 410, 422]) {
      expect([status, isRetryable(new TenantRejected({ status, retryAfterMs: undefined }))]).toEqual([status, false])
    }
  })
})

type DeliveryConfig = RouterConfig["delivery"]

const config = (c: { maxAttempts: number; initialMs: number; maxMs: number }): DeliveryConfig => ({
  timeout: Duration.seconds(1),
  maxAttempts: c.maxAttempts,
  initialBackoff: Duration.millis(c.initialMs),
  maxBackoff: Duration.millis(c.maxMs),
  concurrencyPerTenant: 4,
  circuitBreaker: { failureThreshold: 5, cooldown: Duration.seconds(30) },
  window: { lanes: 64, perLane: 4 },
  disableAfter: Duration.days(5)
})

/**
 * Runs a failing attempt under `Effect.retry(…, retrySchedule(…))` on the TestClock,
 * the way the Forwarder does, and reports when each attempt started (test-clock ms)
 * and how the retry ended. The n-th attempt fails with `errors[n]` (the last repeats).
 */
const runRetries = (delivery: DeliveryConfig, errors: ReadonlyArray<DeliveryError>, attemptsDone = 0) =>
  Effect.gen(function* () {
    const starts: number[] = []
    const attempt = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      starts.push(now)
      return Effect.fail(errors[Math.min(starts.length - 1, errors.length - 1)]!)
    })
    const fiber = yield* Effect.fork(Effect.either(Effect.retry(attempt, retrySchedule(delivery, attemptsDone))))
    // Far past any schedule under test: max 12 attempts × max 60 s backoff.
    yield* TestClock.adjust(Duration.hours(1))
    const result = yield* Fiber.join(fiber)
    const delays = starts.slice(1).map((start, i) => start - starts[i]!)
    return { attempts: starts.length, delays, result }
  }).pipe(Effect.provide(TestContext.TestContext))

const run = (delivery: DeliveryConfig, errors: ReadonlyArray<DeliveryError>, attemptsDone = 0) =>
  Effect.runPromise(runRetries(delivery, errors, attemptsDone))

const arbConfig = fc
  .record({
    maxAttempts: fc.integer({ min: 1, max: 12 }),
    initialMs: fc.integer({ min: 1, max: 2_000 }),
    extraMs: fc.integer({ min: 0, max: 58_000 })
  })
  .map(({ maxAttempts, initialMs, extraMs }) => ({ maxAttempts, initialMs, maxMs: initialMs + extraMs }))

const arbRetryable: fc.Arbitrary<DeliveryError> = fc.oneof(
  fc.constant(new TenantTimeout({ afterMs: 1000 })),
  fc.constant(new TenantUnreachable({ message: "connection refused" })),
  fc.constantFrom(408, 429, 500, 502, 503, 504, 599).map((status) => new TenantRejected({ status, retryAfterMs: undefined }))
)

const arbFinal: fc.Arbitrary<DeliveryError> = fc
  .oneof(fc.integer({ min: 300, max: 407 }), fc.integer({ min: 409, max: 428 }), fc.integer({ min: 430, max: 499 }))
  .map((status) => new TenantRejected({ status, retryAfterMs: undefined }))

const TOLERANCE_MS = 1

describe("retrySchedule under the TestClock", () => {
  test("retryable errors get maxAttempts - 1 retries, then the last error stands", async () => {
    await fc.assert(
      fc.asyncProperty(arbConfig, fc.array(arbRetryable, { minLength: 1, maxLength: 25 }), async (c, errors) => {
        const { attempts, result } = await run(config(c), errors)
        expect(attempts).toBe(c.maxAttempts)
        // The same error instance the last attempt failed with.
        expect(result).toEqual(Either.left(errors[Math.min(c.maxAttempts, errors.length) - 1]!))
      }),
      { numRuns: 30 }
    )
  })

  test("a final status is not retried at all", async () => {
    await fc.assert(
      fc.asyncProperty(arbConfig, arbFinal, async (c, error) => {
        const { attempts, delays } = await run(config(c), [error])
        expect(attempts).toBe(1)
        expect(delays).toEqual([])
      }),
      { numRuns: 30 }
    )
    const { attempts } = await run(config({ maxAttempts: 5, initialMs: 10, maxMs: 100 }), [
      new TenantRejected({ status: 404, retryAfterMs: undefined })
    ])
    expect(attempts).toBe(1)
  })

  test("retries stop at the first final status", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbRetryable, { minLength: 0, maxLength: 5 }), arbFinal, async (before, final) => {
        const { attempts, result } = await run(config({ maxAttempts: 10, initialMs: 5, maxMs: 50 }), [...before, final])
        expect(attempts).toBe(before.length + 1)
        expect(result).toEqual(Either.left(final))
      }),
      { numRuns: 25 }
    )
  })

  test("delays double within the 0.8–1.2 jitter band, are capped at maxBackoff and never shrink", async () => {
    await fc.assert(
      fc.asyncProperty(arbConfig, arbRetryable, async (c, error) => {
        const { delays } = await run(config(c), [error])
        expect(delays.length).toBe(c.maxAttempts - 1)
        delays.forEach((delay, k) => {
          const base = c.initialMs * 2 ** k
          expect(delay).toBeLessThanOrEqual(c.maxMs + TOLERANCE_MS)
          if (0.8 * base >= c.maxMs) expect(delay).toBeCloseTo(c.maxMs, 0)
          else if (delay < c.maxMs - TOLERANCE_MS) {
            expect(delay).toBeGreaterThanOrEqual(0.8 * base - TOLERANCE_MS)
            expect(delay).toBeLessThanOrEqual(1.2 * base + TOLERANCE_MS)
          }
          if (k > 0) expect(delay).toBeGreaterThanOrEqual(delays[k - 1]! - TOLERANCE_MS)
        })
      }),
      { numRuns: 30 }
    )
  })

  test("below the cap, each delay is longer than the one before", async () => {
    const { delays } = await run(config({ maxAttempts: 8, initialMs: 100, maxMs: 60_000 }), [new TenantTimeout({ afterMs: 1 })])
    expect(delays.length).toBe(7)
    for (let k = 1; k < delays.length; k++) expect(delays[k]!).toBeGreaterThan(delays[k - 1]!)
    expect(delays[0]!).toBeGreaterThanOrEqual(80 - TOLERANCE_MS)
    expect(delays[0]!).toBeLessThanOrEqual(120 + TOLERANCE_MS)
  })

  test("a Retry-After replaces the backoff, clamped to maxBackoff", async () => {
    await fc.assert(
      fc.asyncProperty(
        arbConfig,
        fc.constantFrom(429, 503, 500),
        fc.nat({ max: 120_000 }),
        async (c, status, retryAfterMs) => {
          const { delays } = await run(config(c), [new TenantRejected({ status, retryAfterMs })])
          expect(delays.length).toBe(c.maxAttempts - 1)
          for (const delay of delays) expect(delay).toBeCloseTo(Math.min(retryAfterMs, c.maxMs), 0)
        }
      ),
      { numRuns: 30 }
    )
  })

  test("a resumed delivery gets only the attempts it has left, further along the curve", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 12 }),
        async (maxAttempts, attemptsDone) => {
          const c = { maxAttempts, initialMs: 10, maxMs: 1_000_000 }
          const { attempts, delays } = await run(config(c), [new TenantTimeout({ afterMs: 1 })], attemptsDone)
          expect(attempts).toBe(Math.max(1, maxAttempts - attemptsDone))
          if (delays.length > 0) {
            const base = 10 * 2 ** attemptsDone
            expect(delays[0]!).toBeGreaterThanOrEqual(0.8 * base - TOLERANCE_MS)
            expect(delays[0]!).toBeLessThanOrEqual(1.2 * base + TOLERANCE_MS)
          }
        }
      ),
      { numRuns: 30 }
    )
  })
})
