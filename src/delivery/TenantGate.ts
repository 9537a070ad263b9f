import { Duration, Effect } from "effect"
import { AppConfig } from "../AppConfig.ts"
import * as Breaker from "./CircuitBreaker.ts"
import { Lifecycle } from "../Lifecycle.ts"
import { EngineClock } from "./EngineClock.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { fullBucket, takeToken, type Bucket, type RateLimit } from "../domain/RateLimit.ts"

interface TenantState {
  breaker: Breaker.Breaker
  bucket: Bucket | undefined
  /** Deliveries waiting for the breaker to change (a probe to end), woken when it does. */
  readonly waiting: Set<() => void>
}

/** Whether an attempt went through as the breaker's probe, which the outcome must then settle. */
export interface Admitted {
  readonly probe: boolean
}

/**
 * What stands between a delivery and its tenant: the tenant's circuit breaker,
 * then its rate limit (the Forwarder's workers cap its concurrency). Each
 * tenant has its own, so one tenant's trouble never delays another's
 * deliveries. Waiting here costs no attempt. While the router drains, nothing
 * new passes. It runs the pure breaker and bucket on the engine's monotonic clock.
 */
export class TenantGate extends Effect.Service<TenantGate>()("TenantGate", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const clock = yield* EngineClock
    const policy: Breaker.BreakerPolicy = {
      failureThreshold: config.delivery.circuitBreaker.failureThreshold,
      cooldownMs: Duration.toMillis(config.delivery.circuitBreaker.cooldown),
      // A cooldown configured above maxBackoff is taken as meant, not shortened.
      maxCooldownMs: Math.max(Duration.toMillis(config.delivery.maxBackoff), Duration.toMillis(config.delivery.circuitBreaker.cooldown))
    }
    const tenants = new Map<string, TenantState>()
    let inFlight = 0
    let idle: Array<() => void> = []

    const stateOf = (tenant: string): TenantState => {
      let state = tenants.get(tenant)
      if (!state) tenants.set(tenant, (state = { breaker: Breaker.closed, bucket: undefined, waiting: new Set() }))
      return state
    }

    const setBreaker = (tenant: string, state: TenantState, next: Breaker.Breaker) => {
      if (next === state.breaker) return
      const wasOpen = Breaker.isOpen(state.breaker)
      state.breaker = next
      if (wasOpen !== Breaker.isOpen(next)) Metrics.set(Metrics.circuitOpen, Breaker.isOpen(next) ? 1 : 0, { tenant })
      const waiting = [...state.waiting]
      state.waiting.clear()
      for (const wake of waiting) wake()
    }

    const sleep = (ms: number) => new Promise<void>((resolve) => clock.after(ms, resolve))

    /** Until the breaker changes, or `ms` passes when given. */
    const changeOf = (state: TenantState, ms: number | undefined) =>
      new Promise<void>((resolve) => {
        const timer = ms === undefined ? undefined : clock.after(ms, done)
        function done() {
          timer?.cancel()
          state.waiting.delete(done)
          resolve()
        }
        state.waiting.add(done)
      })

    /**
     * Waits until the tenant's gate lets an attempt through, then counts it in
     * flight; undefined while the router drains (the delivery stays pending).
     */
    const admit = async (tenant: string, limit: RateLimit | undefined): Promise<Admitted | undefined> => {
      const state = stateOf(tenant)
      let probe = false
      for (;;) {
        if (lifecycle.draining()) return undefined
        const { admission, breaker } = Breaker.admit(state.breaker, clock.monoMs())
        setBreaker(tenant, state, breaker)
        if (admission._tag !== "Wait") {
          probe = admission._tag === "Probe"
          break
        }
        await changeOf(state, admission.waitMs)
      }
      while (limit !== undefined) {
        const now = clock.monoMs()
        const taken = takeToken(limit, state.bucket ?? fullBucket(limit, now), now)
        state.bucket = taken.bucket
        if (taken.waitMs === 0) break
        await sleep(taken.waitMs)
        if (lifecycle.draining()) {
          if (probe) setBreaker(tenant, state, Breaker.onProbeAbandoned(state.breaker, clock.monoMs()))
          return undefined
        }
      }
      inFlight++
      return { probe }
    }

    /**
     * Ends an admitted attempt: its outcome feeds the breaker (`failed` says
     * the tenant is struggling; undefined: it never finished, shutdown cut it).
     * True when this outcome opened the circuit.
     */
    const settle = (tenant: string, admitted: Admitted, failed: boolean | undefined): boolean => {
      const state = stateOf(tenant)
      const wasOpen = Breaker.isOpen(state.breaker)
      if (failed === undefined) {
        if (admitted.probe) setBreaker(tenant, state, Breaker.onProbeAbandoned(state.breaker, clock.monoMs()))
      } else setBreaker(tenant, state, failed ? Breaker.onFailure(state.breaker, clock.monoMs(), policy) : Breaker.onSuccess(state.breaker))
      if (--inFlight === 0) {
        const waiting = idle
        idle = []
        for (const wake of waiting) wake()
      }
      return !wasOpen && Breaker.isOpen(state.breaker)
    }

    return {
      admit,
      settle,
      /** Completes when no attempt is in flight: what a graceful shutdown waits for. */
      awaitIdle: Effect.promise(() => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve))))
    }
  })
}) {}
