import { Clock, Duration, Effect, Either, FiberSet, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { AppConfig } from "./AppConfig.ts"
import type { Delivery } from "./Domain/Delivery.ts"
import { Conflict, NotFound, type DeliveryError, type StoreUnavailable } from "./Domain/Errors.ts"
import { ownOrDefault, signingSecrets } from "./Domain/Hook.ts"
import { entryFor, HookTable } from "./HookTable.ts"
import { logWith } from "./Logging.ts"
import * as Metrics from "./Metrics.ts"
import { parseRateLimit, type RateLimit } from "./RateLimit.ts"
import { isTenantFailure, retrySchedule } from "./Retry.ts"
import { Store } from "./Store.ts"
import { TenantGate } from "./TenantGate.ts"
import { describeFailure, WebhookSender } from "./WebhookSender.ts"

/** A call's deliveries to one tenant: sent one at a time, in arrival order. */
interface Lane {
  readonly key: string
  readonly tenant: string
  readonly deliveries: Array<Delivery>
}

/** Lanes of one tenant with a delivery due, taken in turn by at most `concurrencyPerTenant` workers. */
interface TenantQueue {
  readonly ready: Array<Lane>
  workers: number
}

/** The retry schedule of the delivery at the head of a lane, built at its first failure. */
interface Progress {
  attempts: number
  readonly attemptsAtStart: number
  retry: { readonly schedule: ReturnType<typeof retrySchedule>; state: unknown } | undefined
}

/** What a lane does after an attempt at its head. */
type Next = { readonly _tag: "Finished" } | { readonly _tag: "RetryAt"; readonly at: number }

const FINISHED: Next = { _tag: "Finished" }

const laneKey = (delivery: Delivery) => (delivery.room === null ? `#${delivery.id}` : `${delivery.tenant}\n${delivery.room}`)

/**
 * Delivers accepted events to tenants in the background, durably: every
 * attempt is recorded before the next decision, so a restart resumes exactly
 * where the last run stopped. Each call (room) has its own lane, so a retrying
 * event holds back only later events of the same call. Each tenant has its own
 * queue of lanes, worked by at most `concurrencyPerTenant` fibers, and its own
 * gate (circuit breaker, rate limit), so a slow tenant never delays another. A
 * lane waiting for a retry holds no worker. Retries follow an exponential
 * `Schedule` with jitter.
 */
export class Forwarder extends Effect.Service<Forwarder>()("Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* Store
    const hooks = yield* HookTable
    const gate = yield* TenantGate
    const sender = yield* WebhookSender
    const lanes = new Map<string, Lane>()
    const queues = new Map<string, TenantQueue>()
    /** Ids of the deliveries queued here, so a delivery handed over twice (a restart, a claim) runs once. */
    const held = new Set<number>()
    const progress = new Map<number, Progress>()
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
    const tenantSettings = (delivery: Delivery, now: number) => {
      const hook = entryFor(hooks.inForce(), delivery.tenant)
      return hook?.url !== delivery.url
        ? { secrets: ownOrDefault(delivery.secret, config.signing.secret), rateLimit: undefined }
        : {
            secrets: signingSecrets(hook, config.signing.secret, now),
            rateLimit: hook.rateLimit === undefined ? undefined : rateLimitOf(hook.rateLimit)
          }
    }

    const progressOf = (delivery: Delivery) => {
      let entry = progress.get(delivery.id)
      if (!entry) progress.set(delivery.id, (entry = { attempts: delivery.attempts, attemptsAtStart: delivery.attempts, retry: undefined }))
      return entry
    }

    /** Steps the delivery's retry schedule with this failure: when to try again, or undefined when it is spent. */
    const retryAfter = (entry: Progress, error: DeliveryError, now: number) =>
      Effect.gen(function* () {
        const retry = (entry.retry ??= (() => {
          const schedule = retrySchedule(config.delivery, entry.attemptsAtStart)
          return { schedule, state: schedule.initial }
        })())
        const [state, , decision] = yield* retry.schedule.step(now, error, retry.state)
        retry.state = state
        return ScheduleDecision.isContinue(decision) ? ScheduleIntervals.start(decision.intervals) : undefined
      })

    /**
     * Records one attempt's outcome, counts it and logs it. A retry time, when
     * there is one, is persisted before the lane waits for it.
     */
    const record = (delivery: Delivery, number: number, startedAt: number, outcome: Either.Either<number, DeliveryError>, entry: Progress) =>
      Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        const latencyMs = at - startedAt
        const retryAt = Either.isLeft(outcome) ? yield* retryAfter(entry, outcome.left, at) : undefined
        const final = Either.isRight(outcome) ? "delivered" : retryAt === undefined ? "failed" : undefined
        const seen = Either.isRight(outcome) ? { status: outcome.right, error: null, result: String(outcome.right) } : describeFailure(outcome.left)
        yield* store
          .recordAttempt(delivery.id, { attempt: number, at, status: seen.status, error: seen.error, latencyMs, final, nextAttemptAt: at })
          .pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logError("delivery attempt not recorded", e.cause)))
        if (retryAt !== undefined) {
          yield* store
            .scheduleRetry(delivery.id, retryAt)
            .pipe(Effect.catchTag("StoreUnavailable", () => Effect.logWarning("could not record a retry time")))
        }
        yield* Metrics.recordAttempt({
          tenant: delivery.tenant,
          result: seen.result,
          seconds: latencyMs / 1000,
          final,
          retried: retryAt !== undefined,
          endToEndSeconds: final === "delivered" && delivery.eventCreatedAt !== null ? Math.max(0, at - delivery.eventCreatedAt) / 1000 : undefined
        })
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
        return retryAt === undefined ? FINISHED : ({ _tag: "RetryAt", at: retryAt } satisfies Next)
      })

    /**
     * One attempt at a delivery, through its tenant's gate. Once the tenant has
     * answered, the outcome is recorded even if shutdown interrupts: an answer is never forgotten.
     */
    const attempt = (delivery: Delivery): Effect.Effect<Next> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const { secrets, rateLimit } = tenantSettings(delivery, now)
        const entry = progressOf(delivery)
        let next: Next = FINISHED
        const send = Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(Clock.currentTimeMillis, (startedAt) =>
            Effect.flatMap(restore(Effect.either(sender.send({ url: delivery.url, eventId: delivery.eventId, body: delivery.body, secrets }))), (outcome) =>
              Effect.flatMap(record(delivery, ++entry.attempts, startedAt, outcome, entry), (decided) => {
                next = decided
                return outcome
              })
            )
          )
        )
        // The gate sees the outcome, for the tenant's breaker; the lane's next step comes from the record.
        return Effect.map(Effect.ignore(gate.through(delivery.tenant, rateLimit, send, isTenantFailure)), () => next)
      })

    /** Puts a lane in its tenant's queue, starting a worker if the tenant has fewer than its cap. */
    const ready = (lane: Lane): Effect.Effect<void> =>
      Effect.suspend(() => {
        let queue = queues.get(lane.tenant)
        if (!queue) queues.set(lane.tenant, (queue = { ready: [], workers: 0 }))
        queue.ready.push(lane)
        if (queue.workers >= config.delivery.concurrencyPerTenant) return Effect.void
        queue.workers++
        // Enqueue runs inside the webhook's uninterruptible store-and-enqueue step; workers must stay interruptible for shutdown.
        return Effect.asVoid(FiberSet.run(running, Effect.interruptible(work(queue))))
      })

    /** A lane waiting for its head's next attempt holds no worker: a timer puts it back. */
    const park = (lane: Lane, at: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        at <= now ? ready(lane) : Effect.asVoid(FiberSet.run(running, Effect.zipRight(Effect.sleep(Duration.millis(at - now)), ready(lane))))
      )

    const advance = (lane: Lane, next: Next): Effect.Effect<void> => {
      if (next._tag === "RetryAt") return park(lane, next.at)
      const done = lane.deliveries.shift()!
      held.delete(done.id)
      progress.delete(done.id)
      if (lane.deliveries.length > 0) return ready(lane)
      lanes.delete(lane.key)
      return Effect.void
    }

    /** A tenant's worker: attempts the head of one lane at a time, taking lanes in turn, until none is due. */
    const work = (queue: TenantQueue): Effect.Effect<void> =>
      Effect.suspend(() => {
        const lane = queue.ready.shift()
        if (!lane) {
          queue.workers--
          return Effect.void
        }
        // A lane back in the queue goes behind the others, so one busy call cannot starve the tenant's other calls.
        return Effect.zipRight(Effect.flatMap(attempt(lane.deliveries[0]!), (next) => advance(lane, next)), work(queue))
      })

    const enqueue = (delivery: Delivery) =>
      Effect.suspend(() => {
        if (held.has(delivery.id)) return Effect.void
        held.add(delivery.id)
        const key = laneKey(delivery)
        const existing = lanes.get(key)
        if (existing) {
          existing.deliveries.push(delivery)
          return Effect.void
        }
        const lane: Lane = { key, tenant: delivery.tenant, deliveries: [delivery] }
        lanes.set(key, lane)
        // A delivery resumed after a restart keeps its backoff.
        return park(lane, delivery.nextAttemptAt)
      })

    const publishQueueGauges = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      let oldest = now
      for (const lane of lanes.values()) for (const d of lane.deliveries) oldest = Math.min(oldest, d.queuedAt)
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
