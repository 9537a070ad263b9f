/**
 * A tenant's circuit breaker, as pure state transitions. After
 * `failureThreshold` consecutive failures (timeouts, network errors, 408, 5xx)
 * it opens: deliveries wait, keeping their attempts, until the cooldown ends;
 * then one delivery goes through as a probe. A probe that succeeds closes the
 * circuit; one that fails opens it again for twice as long, up to `maxCooldownMs`,
 * and costs the probed delivery no attempt (DeliveryAttempt): an outage pauses.
 * Any answer below 500 other than 408 counts as success: the tenant is up.
 */
export interface BreakerPolicy {
  readonly failureThreshold: number
  readonly cooldownMs: number
  readonly maxCooldownMs: number
}

export type Breaker =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly until: number; readonly cooldownMs: number }
  | { readonly _tag: "HalfOpen"; readonly cooldownMs: number }

export const closed: Breaker = { _tag: "Closed", failures: 0 }

/** Whether a delivery may be attempted now: freely, as the one probe, or not before `waitMs` (undefined: until the probe ends). */
export type Admission =
  | { readonly _tag: "Go" }
  | { readonly _tag: "Probe" }
  | { readonly _tag: "Wait"; readonly waitMs: number | undefined }

export const admit = (breaker: Breaker, now: number): { readonly admission: Admission; readonly breaker: Breaker } => {
  switch (breaker._tag) {
    case "Closed":
      return { admission: { _tag: "Go" }, breaker }
    case "Open":
      return now >= breaker.until
        ? { admission: { _tag: "Probe" }, breaker: { _tag: "HalfOpen", cooldownMs: breaker.cooldownMs } }
        : { admission: { _tag: "Wait", waitMs: breaker.until - now }, breaker }
    case "HalfOpen":
      return { admission: { _tag: "Wait", waitMs: undefined }, breaker }
  }
}

export const onSuccess = (_breaker: Breaker): Breaker => closed

export const onFailure = (breaker: Breaker, now: number, policy: BreakerPolicy): Breaker => {
  switch (breaker._tag) {
    case "Closed": {
      if (breaker.failures + 1 < policy.failureThreshold) return { _tag: "Closed", failures: breaker.failures + 1 }
      const cooldownMs = Math.min(policy.cooldownMs, policy.maxCooldownMs)
      return { _tag: "Open", until: now + cooldownMs, cooldownMs }
    }
    case "HalfOpen": {
      const cooldownMs = Math.min(breaker.cooldownMs * 2, policy.maxCooldownMs)
      return { _tag: "Open", until: now + cooldownMs, cooldownMs }
    }
    case "Open":
      // A failure of an attempt started before the circuit opened changes nothing.
      return breaker
  }
}

export const isOpen = (breaker: Breaker): boolean => breaker._tag !== "Closed"

/** The probe never finished (shutdown interrupted it): the next delivery probes again. */
export const onProbeAbandoned = (breaker: Breaker, now: number): Breaker =>
  breaker._tag === "HalfOpen" ? { _tag: "Open", until: now, cooldownMs: breaker.cooldownMs } : breaker
