import { Clock, Duration, Effect, FiberSet, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { AppConfig } from "./AppConfig.ts"
import type { Delivery } from "./Domain/Delivery.ts"
import { Conflict, NotFound, type StoreUnavailable } from "./Domain/Errors.ts"
import { signingSecrets } from "./Domain/Hook.ts"
import { HookTable } from "./HookTable.ts"
import * as Metrics from "./Metrics.ts"
import { logWith } from "./Logging.ts"
import { parseRateLimit, type RateLimit } from "./RateLimit.ts"
import { isRetryable, isTenantFailure, retrySchedule } from "./Retry.ts"
import { Store } from "./Store.ts"
import { TenantGate } from "./TenantGate.ts"
import { describeFailure, WebhookSender } from "./WebhookSender.ts"

/** One lane per call and tenant: its deliveries go out one at a time, in arrival order. */
const laneOf = (delivery: Delivery) => (delivery.room === null ? `#${delivery.id}` : `${delivery.tenant}\n${delivery.room}`)

/**
 * Delivers accepted events to tenants in the background, durably: every
 * attempt is recorded before the next decision, so a restart resumes exactly
 * where the last run stopped. Each call (room) has its own lane, so a retrying
 * event holds back only later events of the same call; each tenant has its own
 * gate (circuit breaker, rate limit, concurrency cap), so a slow tenant never
 * delays another. Retries follow an exponential `Schedule` with jitter.
 */
export class Forwarder extends Effect.Service<Forwarder>()("Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* Store
    const hooks = yield* HookTable
    const gate = yield* TenantGate
    const sender = yield* WebhookSender
    const lanes = new Map<string, Array<Delivery>>()
    /** Ids of the deliveries queued here, so a delivery handed over twice (a restart, a claim) runs once. */
    const held = new Set<number>()
    const running = yield* FiberSet.make()
    // A hook's rate limit is text in the table; parse each distinct one once.
    const rateLimits = new Map<string, RateLimit | undefined>()
    const rateLimitOf = (text: string) => {
      if (!rateLimits.has(text)) rateLimits.set(text, parseRateLimit(text))
      return rateLimits.get(text)
    }

    /**
     * While the hook still points where the delivery goes, its current secrets
     * and rate limit apply, so a call follows the tenant's rotations. If the hook
     * was removed or moved, the call's pinned destination is signed as it was.
     */
    const tenantSettings = (delivery: Delivery) =>
      Effect.gen(function* () {
        const hook = yield* hooks.get(delivery.tenant)
        if (hook?.url !== delivery.url) return { secrets: [delivery.secret ?? config.signing.secret], rateLimit: undefined }
        return {
          secrets: signingSecrets(hook, config.signing.secret, yield* Clock.currentTimeMillis),
          rateLimit: hook.rateLimit === undefined ? undefined : rateLimitOf(hook.rateLimit)
        }
      })

    /**
     * One attempt through the tenant's gate. Once the tenant has answered, the
     * outcome is recorded even if shutdown interrupts: an answer is never forgotten.
     */
    const attempt = (delivery: Delivery, counter: { done: number }) =>
      Effect.gen(function* () {
        const { secrets, rateLimit } = yield* tenantSettings(delivery)
        const send = Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const [elapsed, outcome] = yield* restore(
              Effect.timed(Effect.either(sender.send({ url: delivery.url, eventId: delivery.eventId, body: delivery.body, secrets })))
            )
            const number = ++counter.done
            const at = yield* Clock.currentTimeMillis
            const latencyMs = Math.round(Duration.toMillis(elapsed))
            const seen = outcome._tag === "Right" ? { status: outcome.right, error: null, result: String(outcome.right) } : describeFailure(outcome.left)
            const final =
              outcome._tag === "Right"
                ? "delivered"
                : !isRetryable(outcome.left) || number >= config.delivery.maxAttempts
                  ? "failed"
                  : undefined
            yield* store
              .recordAttempt(delivery.id, { attempt: number, at, status: seen.status, error: seen.error, latencyMs, final, nextAttemptAt: at })
              .pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logError("delivery attempt not recorded", e.cause)))
            yield* Metrics.increment(Metrics.deliveryAttempts, { tenant: delivery.tenant, result: seen.result })
            yield* Metrics.observe(Metrics.deliveryDuration, latencyMs / 1000)
            if (final) yield* Metrics.increment(Metrics.deliveries, { tenant: delivery.tenant, outcome: final })
            if (final === "delivered" && delivery.eventCreatedAt !== null) {
              yield* Metrics.observe(Metrics.endToEnd, Math.max(0, at - delivery.eventCreatedAt) / 1000)
            }
            yield* logWith("delivery attempt", {
              eventId: delivery.eventId,
              type: delivery.eventType,
              domain: delivery.domain,
              tenant: delivery.tenant,
              url: delivery.url,
              status: seen.status,
              error: seen.error,
              attempt: number,
              latencyMs
            })
            return yield* outcome
          })
        )
        return yield* gate.through(delivery.tenant, rateLimit, send, isTenantFailure)
      })

    /** Attempts a delivery until it is delivered or finally failed; each retry decision is persisted. */
    const deliver = (delivery: Delivery) =>
      Effect.gen(function* () {
        const wait = delivery.nextAttemptAt - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        const schedule = retrySchedule(config.delivery, delivery.attempts).pipe(
          Schedule.onDecision((_, decision) =>
            ScheduleDecision.isContinue(decision)
              ? Effect.zipRight(
                  Metrics.increment(Metrics.retries, { tenant: delivery.tenant }),
                  store
                    .scheduleRetry(delivery.id, ScheduleIntervals.start(decision.intervals))
                    .pipe(Effect.catchTag("StoreUnavailable", () => Effect.logWarning("could not record a retry time")))
                )
              : Effect.void
          )
        )
        yield* Effect.ignore(Effect.retry(attempt(delivery, { done: delivery.attempts }), schedule))
      })

    const runLane = (key: string, lane: Array<Delivery>) =>
      Effect.gen(function* () {
        while (lane.length > 0) {
          yield* deliver(lane[0]!)
          held.delete(lane.shift()!.id)
        }
        lanes.delete(key)
      })

    const enqueue = (delivery: Delivery) =>
      Effect.suspend(() => {
        if (held.has(delivery.id)) return Effect.void
        held.add(delivery.id)
        const key = laneOf(delivery)
        const lane = lanes.get(key)
        if (lane) {
          lane.push(delivery)
          return Effect.void
        }
        const fresh = [delivery]
        lanes.set(key, fresh)
        // Enqueue runs inside the webhook's uninterruptible store-and-enqueue step; the lane must stay interruptible for shutdown.
        return FiberSet.run(running, Effect.interruptible(runLane(key, fresh))).pipe(Effect.asVoid)
      })

    const publishQueueGauges = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      let oldest = now
      for (const lane of lanes.values()) for (const d of lane) oldest = Math.min(oldest, d.queuedAt)
      yield* Metrics.setGauge(Metrics.queueDepth, held.size)
      yield* Metrics.setGauge(Metrics.oldestPending, Math.max(0, now - oldest) / 1000)
    })
    yield* publishQueueGauges.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)

    // Whatever a previous run left pending resumes now, in arrival order.
    yield* Effect.forEach(yield* store.pending, enqueue, { discard: true })

    return {
      /** Queues a delivery on its call's lane; one already held here is ignored. */
      enqueue,
      /** The deliveries this instance holds, pending: what it must keep a claim on. */
      held: Effect.sync((): ReadonlyArray<number> => [...held]),
      /** Re-queues one failed delivery with a fresh attempt budget. */
      retry: (id: number): Effect.Effect<Delivery, NotFound | Conflict | StoreUnavailable> =>
        Effect.gen(function* () {
          const result = yield* store.requeue(id, yield* Clock.currentTimeMillis)
          if (result._tag === "NotFound") return yield* new NotFound({ message: `no delivery ${id}` })
          if (result._tag === "NotFailed") return yield* new Conflict({ message: `delivery ${id} is ${result.status}, not failed` })
          yield* enqueue(result.delivery)
          return result.delivery
        }),
      /** Re-queues a tenant's failed deliveries created since `since`; returns how many. */
      recover: (tenant: string, since: number): Effect.Effect<number, StoreUnavailable> =>
        Effect.gen(function* () {
          const requeued = yield* store.requeueFailed(tenant, since, yield* Clock.currentTimeMillis)
          yield* Effect.forEach(requeued, enqueue, { discard: true })
          return requeued.length
        }),
      /** Waits, up to `timeout`, for attempts in flight to finish; pending work stays in the store. */
      // Shutdown runs this in a finalizer, where nothing is interruptible: the wait must be, or the timeout could not end it.
      drain: (timeout: Duration.Duration) => Effect.timeoutOption(Effect.interruptible(gate.awaitIdle), timeout)
    }
  })
}) {}
