import { Cause, Clock, Deferred, Duration, Effect, Exit, FiberId, Option } from "effect"
import { AppConfig } from "./AppConfig.ts"
import * as Breaker from "./CircuitBreaker.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Metrics from "./Metrics.ts"
import { fullBucket, takeToken, type Bucket, type RateLimit } from "./RateLimit.ts"

interface TenantState {
  breaker: Breaker.Breaker
  bucket: Bucket | undefined
  /** Completed (and replaced) whenever the breaker changes, to wake deliveries waiting on it. */
  changed: Deferred.Deferred<void>
}

/**
 * What stands between a delivery and its tenant: the tenant's circuit breaker,
 * then its rate limit (the Forwarder's workers cap its concurrency). Each
 * tenant has its own, so one tenant's trouble never delays another's
 * deliveries. Waiting here costs no attempt. While the router drains, nothing
 * new passes.
 */
export class TenantGate extends Effect.Service<TenantGate>()("TenantGate", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const policy: Breaker.BreakerPolicy = {
      failureThreshold: config.delivery.circuitBreaker.failureThreshold,
      cooldownMs: Duration.toMillis(config.delivery.circuitBreaker.cooldown),
      // A cooldown configured above maxBackoff is taken as meant, not shortened.
      maxCooldownMs: Math.max(Duration.toMillis(config.delivery.maxBackoff), Duration.toMillis(config.delivery.circuitBreaker.cooldown))
    }
    const tenants = new Map<string, TenantState>()
    let inFlight = 0
    /** Completed when the last attempt in flight ends, for a drain that is waiting. */
    let idle: Deferred.Deferred<void> | undefined

    const stateOf = (tenant: string): TenantState => {
      let state = tenants.get(tenant)
      if (!state) {
        state = {
          breaker: Breaker.closed,
          bucket: undefined,
          changed: Deferred.unsafeMake<void>(FiberId.none)
        }
        tenants.set(tenant, state)
      }
      return state
    }

    const setBreaker = (tenant: string, state: TenantState, next: Breaker.Breaker) =>
      Effect.suspend(() => {
        if (next === state.breaker) return Effect.void
        const wasOpen = Breaker.isOpen(state.breaker)
        state.breaker = next
        const wake = state.changed
        state.changed = Deferred.unsafeMake<void>(FiberId.none)
        const gauge = wasOpen === Breaker.isOpen(next) ? Effect.void : Metrics.setGauge(Metrics.circuitOpen, Breaker.isOpen(next) ? 1 : 0, { tenant })
        return Effect.zipRight(Deferred.succeed(wake, undefined), gauge)
      })

    /** While draining, wait to be interrupted: the delivery stays pending for the next start. */
    const unlessDraining = Effect.suspend(() => (lifecycle.draining() ? Effect.never : Effect.void))

    /** Waits until the circuit lets this delivery through; says whether it goes as the probe. */
    const admitted = (tenant: string, state: TenantState): Effect.Effect<boolean> =>
      Effect.gen(function* () {
        yield* unlessDraining
        const { admission, breaker } = Breaker.admit(state.breaker, yield* Clock.currentTimeMillis)
        yield* setBreaker(tenant, state, breaker)
        if (admission._tag !== "Wait") return admission._tag === "Probe"
        const changed = Deferred.await(state.changed)
        yield* admission.waitMs === undefined ? changed : Effect.race(changed, Effect.sleep(Duration.millis(admission.waitMs)))
        return yield* admitted(tenant, state)
      })

    const throttled = (state: TenantState, limit: RateLimit | undefined): Effect.Effect<void> =>
      limit === undefined
        ? Effect.void
        : Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const taken = takeToken(limit, state.bucket ?? fullBucket(limit, now), now)
            state.bucket = taken.bucket
            if (taken.waitMs === 0) return
            yield* Effect.sleep(Duration.millis(taken.waitMs))
            yield* unlessDraining
            yield* throttled(state, limit)
          })

    const finished = Effect.suspend(() => {
      if (--inFlight > 0 || !idle) return Effect.void
      const waiting = idle
      idle = undefined
      return Deferred.succeed(waiting, undefined)
    })
    const counted = <A, E, R>(attempt: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          inFlight++
          return Effect.ensuring(restore(attempt), finished)
        })
      )

    /** Feeds an attempt's outcome to the tenant's breaker: `isFailure` says which errors mean the tenant is struggling. */
    const settle =
      <A, E>(tenant: string, state: TenantState, probe: boolean, isFailure: (error: E) => boolean) =>
      (exit: Exit.Exit<A, E>) => {
        if (Exit.isSuccess(exit)) return setBreaker(tenant, state, Breaker.onSuccess(state.breaker))
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure)) {
            const next = isFailure(failure.value) ? Breaker.onFailure(state.breaker, now, policy) : Breaker.onSuccess(state.breaker)
            return setBreaker(tenant, state, next)
          }
          return probe ? setBreaker(tenant, state, Breaker.onProbeAbandoned(state.breaker, now)) : Effect.void
        })
      }

    /** Runs one attempt once the tenant's gate opens, and feeds its outcome to the tenant's breaker. */
    const through = <A, E, R>(
      tenant: string,
      limit: RateLimit | undefined,
      attempt: Effect.Effect<A, E, R>,
      isFailure: (error: E) => boolean
    ): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        const state = stateOf(tenant)
        // A closed circuit without a rate limit admits at once: most attempts never need the clock.
        if (state.breaker._tag === "Closed" && limit === undefined && !lifecycle.draining()) {
          return Effect.onExit(counted(attempt), settle(tenant, state, false, isFailure))
        }
        return Effect.flatMap(admitted(tenant, state), (probe) =>
          Effect.onExit(Effect.zipRight(throttled(state, limit), Effect.zipRight(unlessDraining, counted(attempt))), settle(tenant, state, probe, isFailure))
        )
      })

    return {
      through,
      /** Completes when no attempt is in flight: what a graceful shutdown waits for. */
      awaitIdle: Effect.suspend(() => (inFlight === 0 ? Effect.void : Deferred.await((idle ??= Deferred.unsafeMake<void>(FiberId.none)))))
    }
  })
}) {}
