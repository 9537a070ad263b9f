import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import {
  admit,
  closed,
  isOpen,
  onFailure,
  onProbeAbandoned,
  onSuccess,
  type Breaker,
  type BreakerPolicy
} from "../src/delivery/CircuitBreaker.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const POLICY: BreakerPolicy = { failureThreshold: 3, cooldownMs: 1_000, maxCooldownMs: 5_000 }
const T0 = 1_000_000

/** Feeds `n` failures at `now` into the breaker. */
const failTimes = (breaker: Breaker, n: number, now: number, policy = POLICY): Breaker => {
  let b = breaker
  for (let i = 0; i < n; i++) b = onFailure(b, now, policy)
  return b
}

describe("Closed", () => {
  test("admits every delivery freely and leaves the state alone", () => {
    const state: Breaker = { _tag: "Closed", failures: 2 }
    expect(admit(state, T0)).toEqual({ admission: { _tag: "Go" }, breaker: state })
    expect(admit(closed, 0)).toEqual({ admission: { _tag: "Go" }, breaker: closed })
  })

  test.each([1, 2, 3, 5, 10])("threshold %p: opens on exactly that many consecutive failures", (failureThreshold) => {
    const policy = { ...POLICY, failureThreshold }
    const before = failTimes(closed, failureThreshold - 1, T0, policy)
    expect(before).toEqual({ _tag: "Closed", failures: failureThreshold - 1 })
    expect(onFailure(before, T0 + 7, policy)).toEqual({ _tag: "Open", until: T0 + 7 + policy.cooldownMs, cooldownMs: policy.cooldownMs })
  })

  test("a success resets the failure count, so the threshold starts over", () => {
    const almost = failTimes(closed, POLICY.failureThreshold - 1, T0)
    const reset = onSuccess(almost)
    expect(reset).toEqual({ _tag: "Closed", failures: 0 })
    // Threshold - 1 more failures are not enough after the reset.
    expect(failTimes(reset, POLICY.failureThreshold - 1, T0)).toEqual({ _tag: "Closed", failures: POLICY.failureThreshold - 1 })
    expect(isOpen(failTimes(reset, POLICY.failureThreshold, T0))).toBe(true)
  })
})

describe("Open", () => {
  const open: Breaker = { _tag: "Open", until: T0 + 1_000, cooldownMs: 1_000 }

  test.each([
    [T0, 1_000],
    [T0 + 1, 999],
    [T0 + 999, 1]
  ])("before `until`, at %p: Wait %p ms, state unchanged", (now, waitMs) => {
    expect(admit(open, now)).toEqual({ admission: { _tag: "Wait", waitMs }, breaker: open })
  })

  test.each([T0 + 1_000, T0 + 1_001, T0 + 60_000])("at or after `until` (%p): one Probe, and the circuit is HalfOpen", (now) => {
    expect(admit(open, now)).toEqual({ admission: { _tag: "Probe" }, breaker: { _tag: "HalfOpen", cooldownMs: 1_000 } })
  })

  test("a failure while Open (an attempt started before it opened) changes nothing", () => {
    expect(onFailure(open, T0 + 500, POLICY)).toBe(open)
  })

  test("onProbeAbandoned leaves an Open or Closed circuit alone", () => {
    expect(onProbeAbandoned(open, T0 + 5)).toBe(open)
    expect(onProbeAbandoned(closed, T0 + 5)).toBe(closed)
  })

  test("isOpen is true for Open and HalfOpen, false for Closed", () => {
    expect(isOpen(open)).toBe(true)
    expect(isOpen({ _tag: "HalfOpen", cooldownMs: 1 })).toBe(true)
    expect(isOpen({ _tag: "Closed", failures: 4 })).toBe(false)
  })
})

describe("HalfOpen", () => {
  const half: Breaker = { _tag: "HalfOpen", cooldownMs: 1_000 }

  test("admits nothing else while the probe runs: Wait with no deadline", () => {
    expect(admit(half, T0)).toEqual({ admission: { _tag: "Wait", waitMs: undefined }, breaker: half })
    expect(admit(half, T0 + 10_000_000)).toEqual({ admission: { _tag: "Wait", waitMs: undefined }, breaker: half })
  })

  test("a successful probe closes the circuit", () => {
    expect(onSuccess(half)).toEqual({ _tag: "Closed", failures: 0 })
  })

  test.each([
    // [cooldown before, cooldown after] with maxCooldownMs = 5000
    [1_000, 2_000],
    [2_000, 4_000],
    [3_000, 5_000],
    [4_000, 5_000],
    [5_000, 5_000]
  ])("a failed probe re-opens for twice the cooldown (%p → %p), capped at maxCooldownMs", (before, after) => {
    const now = T0 + 123
    expect(onFailure({ _tag: "HalfOpen", cooldownMs: before }, now, POLICY)).toEqual({ _tag: "Open", until: now + after, cooldownMs: after })
  })

  test("an abandoned probe re-opens with until = now, so the next admit probes at once", () => {
    const reopened = onProbeAbandoned(half, T0 + 42)
    expect(reopened).toEqual({ _tag: "Open", until: T0 + 42, cooldownMs: 1_000 })
    expect(admit(reopened, T0 + 42).admission).toEqual({ _tag: "Probe" })
  })
})

describe("a full cycle", () => {
  test("open → wait → probe fails → longer wait → probe succeeds → closed", () => {
    let b = failTimes(closed, 3, T0)
    expect(admit(b, T0 + 999).admission).toEqual({ _tag: "Wait", waitMs: 1 })
    let step = admit(b, T0 + 1_000)
    expect(step.admission._tag).toBe("Probe")
    b = onFailure(step.breaker, T0 + 1_100, POLICY)
    expect(b).toEqual({ _tag: "Open", until: T0 + 3_100, cooldownMs: 2_000 })
    expect(admit(b, T0 + 3_099).admission).toEqual({ _tag: "Wait", waitMs: 1 })
    step = admit(b, T0 + 3_100)
    expect(step.admission._tag).toBe("Probe")
    expect(onSuccess(step.breaker)).toEqual(closed)
  })

  // Config lets `circuitBreaker.cooldown` exceed `maxBackoff` (which TenantGate passes as
  // maxCooldownMs). The cap is applied only after a failed probe, so the first cooldown
  // exceeds it and a failed probe then *shortens* the wait instead of doubling it.
  test("a cooldown longer than maxCooldownMs is capped from the first opening", () => {
    const policy: BreakerPolicy = { failureThreshold: 1, cooldownMs: 10_000, maxCooldownMs: 5_000 }
    const opened = onFailure(closed, T0, policy)
    expect(opened).toEqual({ _tag: "Open", until: T0 + 5_000, cooldownMs: 5_000 })
  })
})

// ---------------------------------------------------------------------------
// Properties over random operation sequences
// ---------------------------------------------------------------------------

type Op =
  | { readonly _tag: "admit"; readonly dt: number }
  | { readonly _tag: "success" }
  | { readonly _tag: "failure"; readonly dt: number }
  | { readonly _tag: "abandon"; readonly dt: number }

// Small time steps next to cooldowns of a few hundred ms, so every state is visited.
const dt = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 100, max: 3_000 }))
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: dt.map((d) => ({ _tag: "admit" as const, dt: d })), weight: 4 },
  { arbitrary: fc.constant({ _tag: "success" as const }), weight: 1 },
  { arbitrary: dt.map((d) => ({ _tag: "failure" as const, dt: d })), weight: 3 },
  { arbitrary: dt.map((d) => ({ _tag: "abandon" as const, dt: d })), weight: 1 }
)
const policyArb: fc.Arbitrary<BreakerPolicy> = fc
  .record({
    failureThreshold: fc.integer({ min: 1, max: 6 }),
    cooldownMs: fc.integer({ min: 1, max: 1_000 }),
    extra: fc.integer({ min: 0, max: 10_000 })
  })
  .map(({ failureThreshold, cooldownMs, extra }) => ({ failureThreshold, cooldownMs, maxCooldownMs: cooldownMs + extra }))

/** Runs the ops, calling `check` after each with the bookkeeping the invariants need. */
const simulate = (
  policy: BreakerPolicy,
  ops: ReadonlyArray<Op>,
  check: (s: { breaker: Breaker; op: Op; admitted: string | undefined; probesSinceOutcome: number; failuresSinceSuccess: number; now: number }) => void
) => {
  let breaker = closed
  let now = T0
  let probesSinceOutcome = 0
  let failuresSinceSuccess = 0
  for (const op of ops) {
    let admitted: string | undefined
    switch (op._tag) {
      case "admit": {
        now += op.dt
        const before = breaker
        const step = admit(breaker, now)
        admitted = step.admission._tag
        if (step.admission._tag === "Probe") probesSinceOutcome++
        // The wait an Open circuit asks for is exactly the time left to `until`.
        if (before._tag === "Open" && step.admission._tag === "Wait") expect(step.admission.waitMs).toBe(before.until - now)
        breaker = step.breaker
        break
      }
      case "success":
        breaker = onSuccess(breaker)
        probesSinceOutcome = 0
        failuresSinceSuccess = 0
        break
      case "failure":
        now += op.dt
        breaker = onFailure(breaker, now, policy)
        probesSinceOutcome = 0
        failuresSinceSuccess++
        break
      case "abandon":
        now += op.dt
        breaker = onProbeAbandoned(breaker, now)
        probesSinceOutcome = 0
        break
    }
    check({ breaker, op, admitted, probesSinceOutcome, failuresSinceSuccess, now })
  }
}

const opsArb = fc.array(opArb, { minLength: 1, maxLength: 80 })
const runs = { numRuns: 400 }

describe("properties", () => {
  test("at most one Probe is admitted between two outcomes", () => {
    fc.assert(
      fc.property(policyArb, opsArb, (policy, ops) => {
        simulate(policy, ops, (s) => expect(s.probesSinceOutcome).toBeLessThanOrEqual(1))
      }),
      runs
    )
  })

  test("the circuit is open only after failureThreshold failures since the last success; while closed it counts them exactly", () => {
    fc.assert(
      fc.property(policyArb, opsArb, (policy, ops) => {
        simulate(policy, ops, ({ breaker, failuresSinceSuccess }) => {
          if (isOpen(breaker)) expect(failuresSinceSuccess).toBeGreaterThanOrEqual(policy.failureThreshold)
          // Only a success closes an opened circuit, so a Closed breaker has seen every failure since.
          else expect(breaker).toEqual({ _tag: "Closed", failures: failuresSinceSuccess })
        })
      }),
      runs
    )
  })

  test("the cooldown stays within [cooldownMs, maxCooldownMs] and `until` is never further than that ahead", () => {
    fc.assert(
      fc.property(policyArb, opsArb, (policy, ops) => {
        simulate(policy, ops, ({ breaker, now }) => {
          if (breaker._tag === "Closed") return
          expect(breaker.cooldownMs).toBeLessThanOrEqual(policy.maxCooldownMs)
          expect(breaker.cooldownMs).toBeGreaterThanOrEqual(policy.cooldownMs)
          if (breaker._tag === "Open") expect(breaker.until - now).toBeLessThanOrEqual(breaker.cooldownMs)
        })
      }),
      runs
    )
  })

  test("while the circuit is not Closed, no Go is admitted; a Probe only ever comes from Open", () => {
    fc.assert(
      fc.property(policyArb, opsArb, (policy, ops) => {
        let before: Breaker = closed
        simulate(policy, ops, ({ breaker, admitted }) => {
          if (admitted === "Go") expect(before._tag).toBe("Closed")
          if (admitted === "Probe") {
            expect(before._tag).toBe("Open")
            expect(breaker._tag).toBe("HalfOpen")
          }
          before = breaker
        })
      }),
      runs
    )
  })
})
