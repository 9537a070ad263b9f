import { Effect, Either, Option, Runtime, ScheduleDecision, ScheduleIntervals } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { DeliveryError } from "../domain/Errors.ts"
import { deliverySecrets } from "../domain/Hook.ts"
import { authorizationOf } from "../domain/HookHeaders.ts"
import type { RateLimit } from "../domain/RateLimit.ts"
import { entryFor, HookTable } from "../hooks/HookTable.ts"
import { Tracing } from "../telemetry/Tracing.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import type { QueuedDelivery } from "../store/Store.ts"
import { AttemptRecorder } from "./AttemptRecorder.ts"
import { EngineClock, toWall, type Timer } from "./EngineClock.ts"
import { BACKOFF_MS, FINISHED, LaneWindow, type Held, type Next } from "./LaneWindow.ts"
import { isTenantFailure, retrySchedule } from "./Retry.ts"
import { TenantGate, type Admitted } from "./TenantGate.ts"
import { TenantHealthTracker } from "./TenantHealthTracker.ts"
import { describeFailure, WebhookSender } from "./WebhookSender.ts"

/**
 * One attempt at the delivery at the head of a lane: it expires unsent if its
 * event outgrew the hook's `maxAge`, ends unsent if its tenant is disabled,
 * else passes the tenant's gate (circuit breaker, rate limit), is signed and
 * sent, and its outcome moves the tenant's health and is recorded before the
 * lane moves on. A failure is retried on the delivery's own exponential
 * `Schedule`, stepped on the engine's monotonic clock.
 */
export class DeliveryAttempt extends Effect.Service<DeliveryAttempt>()("DeliveryAttempt", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* DeliveryQueue
    const hooks = yield* HookTable
    const gate = yield* TenantGate
    const sender = yield* WebhookSender
    const tracing = yield* Tracing
    const health = yield* TenantHealthTracker
    const recorder = yield* AttemptRecorder
    const window = yield* LaneWindow
    const clock = yield* EngineClock
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runPromise(runtime)
    const runSync = Runtime.runSync(runtime)
    /** Aborts the attempts still in flight when the service stops (after the drain). */
    const stopping = new AbortController()
    const timers = new Set<Timer>()

    /**
     * While the hook still points where the delivery goes, its current secrets,
     * rate limit, headers and auth apply, so a call follows the tenant's rotations.
     * If the hook was removed or moved, the call's pinned destination is signed
     * as it was, without the hook's headers or auth (they were for its url).
     */
    const tenantSettings = (delivery: QueuedDelivery) => {
      const hook = entryFor(hooks.inForce(), delivery.tenant)
      const secrets = deliverySecrets(hook, delivery, hooks.inForce().signing, clock.wallMs())
      return hook?.url !== delivery.url
        ? { secrets, rateLimit: undefined, headers: undefined, authorization: undefined }
        : {
            secrets,
            headers: hook.headers,
            authorization: authorizationOf(hook.auth),
            rateLimit: hook.rateLimit
          }
    }

    /** The hook's maxAge, if it has one; like the secrets, only while the hook still points where the delivery goes. */
    const maxAgeFor = (delivery: QueuedDelivery): number | undefined => {
      const hook = entryFor(hooks.inForce(), delivery.tenant)
      return hook?.url !== delivery.url || hook.maxAge === undefined ? undefined : hook.maxAge.ms
    }
    /** When the event outgrows the hook's maxAge (monotonic), if it has one. */
    const expiresAt = (held: Held): number | undefined => {
      const maxAgeMs = maxAgeFor(held.delivery)
      return maxAgeMs === undefined ? undefined : held.bornAt + maxAgeMs + 1
    }
    /** The hook's maxAge when the event is older than it now, else undefined. */
    const staleBy = (held: Held): number | undefined => {
      const maxAgeMs = maxAgeFor(held.delivery)
      return maxAgeMs !== undefined && clock.monoMs() - held.bornAt > maxAgeMs ? maxAgeMs : undefined
    }

    /**
     * The gate's admission, or "stale" once the event outgrows its maxAge while
     * waiting there (an open circuit waits out its cooldown): it expires on time,
     * not when the circuit lets it through. An admission that comes after that is
     * handed back unused.
     */
    const admitFresh = (held: Held, rateLimit: RateLimit | undefined): Promise<Admitted | undefined | "stale"> => {
      const tenant = held.delivery.tenant
      const admission = gate.admit(tenant, rateLimit)
      const staleFrom = expiresAt(held)
      if (staleFrom === undefined) return admission
      return new Promise((resolve) => {
        let settled = false
        const timer = clock.after(Math.max(0, staleFrom - clock.monoMs()), () => {
          timers.delete(timer)
          settled = true
          // After shutdown began, the delivery stays pending for the next start (which expires it then).
          resolve(stopping.signal.aborted ? undefined : "stale")
          void admission.then((admitted) => admitted && gate.settle(tenant, admitted, undefined))
        })
        timers.add(timer)
        void admission.then((admitted) => {
          if (settled) return
          settled = true
          timers.delete(timer)
          timer.cancel()
          resolve(admitted)
        })
      })
    }

    /** The delivery's retry schedule, built at its first failure here; a resumed delivery continues its curve. */
    const retryOf = (held: Held) =>
      (held.retry ??= (() => {
        const schedule = retrySchedule(config.delivery, held.attemptsAtStart)
        let state = schedule.initial
        return (now: number, failure: DeliveryError) => {
          const [next, , decision] = runSync(schedule.step(now, failure, state))
          state = next
          // Whole milliseconds: the due time is recorded, and jitter makes fractions.
          return ScheduleDecision.isContinue(decision) ? Math.ceil(ScheduleIntervals.start(decision.intervals)) : undefined
        }
      })())

    /** Ends the delivery unsent, recorded with the turn's attempts; the lane moves on to the call's next event. */
    const expire = async (held: Held): Promise<Next | undefined> => {
      if (stopping.signal.aborted) return undefined
      const { delivery } = held
      const maxAgeMs = staleBy(held) ?? 0
      await recorder.recorded({ _tag: "Expired", delivery, attempts: held.attempts, at: clock.wallMs(), ageMs: clock.monoMs() - held.bornAt, maxAgeMs })
      return FINISHED
    }

    const endDisabled = async (held: Held): Promise<Next | undefined> => {
      if (stopping.signal.aborted) return undefined
      await recorder.recorded({ _tag: "Disabled", delivery: held.delivery, attempts: held.attempts, at: clock.wallMs() })
      return FINISHED
    }

    /** The body, from the window if the delivery arrived with it, else read now that its attempt is due; undefined: unreadable now. */
    const bodyOf = (delivery: QueuedDelivery): Promise<string | null | undefined> =>
      delivery.body !== undefined
        ? Promise.resolve(delivery.body)
        : run(
            store.bodyOf(delivery.id).pipe(
              Effect.map(Option.getOrNull),
              Effect.catchTag("StoreUnavailable", (e) => Effect.as(Effect.logWarning("could not read the delivery queue; will retry", e.cause), undefined))
            )
          )

    /** Sends the head through its tenant's gate and records the outcome; undefined when shutdown stopped it. */
    const send = async (held: Held, body: string): Promise<Next | undefined> => {
      const head = held.delivery
      const { secrets, rateLimit, headers, authorization } = tenantSettings(head)
      const admitted = await admitFresh(held, rateLimit)
      if (admitted === "stale") return expire(held)
      if (admitted === undefined || stopping.signal.aborted) return undefined
      // Disabled while it waited at the gate (another attempt's failure ended the streak's grace).
      if (health.isDisabled(head.tenant)) {
        gate.settle(head.tenant, admitted, undefined)
        return endDisabled(held)
      }
      // Waiting at the gate (an open circuit, the rate limit) may have made it too old.
      if (staleBy(held) !== undefined) {
        gate.settle(head.tenant, admitted, undefined)
        return expire(held)
      }
      const startedAt = clock.monoMs()
      const span = tracing.attempt({ eventId: head.eventId, eventType: head.eventType, tenant: head.tenant, url: head.url, attempt: held.attempts + 1, parent: head.trace })
      const outcome = await sender.attempt({ url: head.url, eventId: head.eventId, body, secrets, headers, authorization }, span, stopping.signal)
      if (stopping.signal.aborted) {
        gate.settle(head.tenant, admitted, undefined)
        return undefined
      }
      const now = clock.monoMs()
      const at = clock.wallMs()
      if (admitted.probe && Either.isLeft(outcome) && isTenantFailure(outcome.left)) {
        if (health.noteOutcome(head.tenant, false, at)) window.wake(head.tenant)
        await recorder.recorded({ _tag: "ProbeFailed", delivery: head, attempts: held.attempts, latencyMs: now - startedAt, failure: outcome.left, span })
        gate.settle(head.tenant, admitted, true)
        // Back to the gate, which holds it until the next probe: an outage pauses the call's lane instead of spending it.
        return { _tag: "RetryAt", at: now }
      }
      const retryAt = Either.isLeft(outcome) ? retryOf(held)(now, outcome.left) : undefined
      if (health.noteOutcome(head.tenant, Either.isRight(outcome), at)) window.wake(head.tenant)
      await recorder.recorded({
        _tag: "Attempt",
        delivery: head,
        attempt: ++held.attempts,
        at,
        latencyMs: now - startedAt,
        outcome,
        retryAt: retryAt === undefined ? undefined : toWall(clock, retryAt),
        span
      })
      // The gate settles once the outcome is on record, so a drain that waits for it waits for the record too.
      if (gate.settle(head.tenant, admitted, Either.isLeft(outcome) && isTenantFailure(outcome.left))) {
        health.circuitOpened(head.tenant, Either.isLeft(outcome) ? describeFailure(outcome.left) : { status: null, error: null }, at)
      }
      if (retryAt === undefined) return FINISHED
      // A retry due after the event goes stale: the lane wakes when it does, so the delivery expires on time.
      const staleFrom = expiresAt(held)
      held.retryDueAt = staleFrom !== undefined && staleFrom < retryAt ? retryAt : undefined
      return { _tag: "RetryAt", at: Math.min(retryAt, staleFrom ?? retryAt) }
    }

    /**
     * One attempt at the head of a lane, through its tenant's gate, recorded
     * before the lane moves on. Undefined when shutdown stopped it: the
     * delivery stays pending in the store for the next start.
     */
    const attemptHead = async (held: Held): Promise<Next | undefined> => {
      // Too old to send: it expires before its body is even read.
      if (staleBy(held) !== undefined) return expire(held)
      // A disabled tenant is sent nothing: the delivery ends failed, for recover to replay once it is enabled.
      if ((await health.healthOf(held.delivery.tenant)).disabledAt !== null) return endDisabled(held)
      // Woken to expire it, but the hook's maxAge changed meanwhile: back to waiting for its retry.
      if (held.retryDueAt !== undefined && held.retryDueAt > clock.monoMs()) return { _tag: "RetryAt", at: held.retryDueAt }
      const body = await bodyOf(held.delivery)
      // The store could not be read: try again shortly, without spending an attempt.
      if (body === undefined) return { _tag: "RetryAt", at: clock.monoMs() + BACKOFF_MS }
      if (body === null) {
        await run(Effect.logWarning("pending delivery vanished from the store").pipe(Effect.annotateLogs({ id: held.delivery.id })))
        return FINISHED
      }
      return send(held, body)
    }

    return {
      attemptHead,
      /** Cuts off the attempts in flight (their deliveries stay pending) and starts no more. */
      stop: () => {
        stopping.abort()
        for (const timer of timers) timer.cancel()
      }
    }
  })
}) {}
