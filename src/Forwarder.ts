import { Clock, Duration, Effect, Either, FiberSet, Option, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { AppConfig } from "./AppConfig.ts"
import type { Delivery } from "./Domain/Delivery.ts"
import { Conflict, NotFound, type DeliveryError, type StoreUnavailable } from "./Domain/Errors.ts"
import { ownOrDefault, signingSecrets } from "./Domain/Hook.ts"
import { entryFor, HookTable } from "./HookTable.ts"
import { logWith } from "./Logging.ts"
import * as Metrics from "./Metrics.ts"
import { parseRateLimit, type RateLimit } from "./RateLimit.ts"
import { isTenantFailure, retrySchedule } from "./Retry.ts"
import { Store, type QueuedDelivery } from "./Store.ts"
import { TenantGate } from "./TenantGate.ts"
import { describeFailure, WebhookSender } from "./WebhookSender.ts"

/**
 * A call's deliveries to one tenant, sent one at a time in arrival order. The
 * lane holds the call's next few; `more` says the store may hold others
 * (they arrived while it was full, or were requeued), so it refills from there.
 */
interface Lane {
  readonly key: string
  readonly room: string | null
  readonly deliveries: Array<QueuedDelivery>
  more: boolean
  /** Bumped whenever `more` is set, so a refill that raced with an arrival does not clear it. */
  version: number
}

/**
 * A tenant's window on its queue: at most `window.lanes` lanes, the ready ones
 * taken in turn by at most `concurrencyPerTenant` workers. Everything else the
 * tenant is owed waits in the store, found by scanning its pending deliveries
 * in id order from `scannedTo`.
 */
interface TenantQueue {
  readonly tenant: string
  readonly lanes: Map<string, Lane>
  readonly ready: Array<Lane>
  workers: number
  /** Every pending delivery of this tenant with an id up to here belongs to a lane in the window. */
  scannedTo: number
  /** Whether the store may hold deliveries past `scannedTo` of calls not in the window. */
  unscanned: boolean
  /** Bumped whenever `unscanned` is set, so a scan that raced with an arrival does not clear it. */
  version: number
  scanning: boolean
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

const laneKey = (delivery: QueuedDelivery) => (delivery.room === null ? `#${delivery.id}` : delivery.room)

// Rows read per step of a scan; a scan stops early once the window is full.
const SCAN_PAGE = 256

/**
 * Delivers accepted events to tenants in the background, durably: every
 * attempt is recorded before the next decision, so a restart resumes exactly
 * where the last run stopped. The store is the queue: this holds only a
 * bounded window of it per tenant and refills from the store, so a tenant that
 * is down for days costs disk, not memory. Each call (room) has its own lane,
 * so a retrying event holds back only later events of the same call. Each
 * tenant has its own lanes, worked by at most `concurrencyPerTenant` fibers,
 * and its own gate (circuit breaker, rate limit), so a slow tenant never delays
 * another. A lane waiting for a retry holds no worker. Retries follow an
 * exponential `Schedule` with jitter.
 */
export class Forwarder extends Effect.Service<Forwarder>()("Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* Store
    const hooks = yield* HookTable
    const gate = yield* TenantGate
    const sender = yield* WebhookSender
    const { lanes: maxLanes, perLane } = config.delivery.window
    const queues = new Map<string, TenantQueue>()
    /** Ids of the deliveries in a window, so one handed over twice (an arrival racing a scan, a claim) runs once. */
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
    const tenantSettings = (delivery: QueuedDelivery, now: number) => {
      const hook = entryFor(hooks.inForce(), delivery.tenant)
      return hook?.url !== delivery.url
        ? { secrets: ownOrDefault(delivery.secret, config.signing.secret), rateLimit: undefined }
        : {
            secrets: signingSecrets(hook, config.signing.secret, now),
            rateLimit: hook.rateLimit === undefined ? undefined : rateLimitOf(hook.rateLimit)
          }
    }

    const progressOf = (delivery: QueuedDelivery) => {
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

    /** Records one attempt's outcome with the retry time it leads to, counts it and logs it. */
    const record = (delivery: QueuedDelivery, number: number, startedAt: number, outcome: Either.Either<number, DeliveryError>, entry: Progress) =>
      Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        const latencyMs = at - startedAt
        const retryAt = Either.isLeft(outcome) ? yield* retryAfter(entry, outcome.left, at) : undefined
        const final = Either.isRight(outcome) ? "delivered" : retryAt === undefined ? "failed" : undefined
        const seen = Either.isRight(outcome) ? { status: outcome.right, error: null, result: String(outcome.right) } : describeFailure(outcome.left)
        yield* store
          .recordAttempts([
            { id: delivery.id, record: { attempt: number, at, status: seen.status, error: seen.error, latencyMs, final, nextAttemptAt: retryAt ?? at } }
          ])
          .pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logError("delivery attempt not recorded", e.cause)))
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

    /** The body, from the window if the delivery arrived with it, else read now that its attempt is due. */
    const bodyOf = (delivery: QueuedDelivery) =>
      delivery.body !== undefined ? Effect.succeed(Option.some(delivery.body)) : store.bodyOf(delivery.id)

    /**
     * One attempt at a delivery, through its tenant's gate. Once the tenant has
     * answered, the outcome is recorded even if shutdown interrupts: an answer is never forgotten.
     */
    const attempt = (delivery: QueuedDelivery, body: string): Effect.Effect<Next> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const { secrets, rateLimit } = tenantSettings(delivery, now)
        const entry = progressOf(delivery)
        let next: Next = FINISHED
        const send = Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(Clock.currentTimeMillis, (startedAt) =>
            Effect.flatMap(restore(Effect.either(sender.send({ url: delivery.url, eventId: delivery.eventId, body, secrets }))), (outcome) =>
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

    /** The head of a lane, attempted; one whose body is gone (it was deleted meanwhile) is finished without a send. */
    const attemptHead = (lane: Lane): Effect.Effect<Next> => {
      const head = lane.deliveries[0]!
      return bodyOf(head).pipe(
        Effect.flatMap(
          Option.match({
            onSome: (body) => attempt(head, body),
            onNone: () => Effect.as(Effect.logWarning("pending delivery vanished from the store").pipe(Effect.annotateLogs({ id: head.id })), FINISHED)
          })
        ),
        // The store could not be read: try again shortly, without spending an attempt.
        Effect.catchTag("StoreUnavailable", (e) =>
          Effect.zipRight(Effect.logWarning("could not read a delivery body; will retry", e.cause), Effect.map(Clock.currentTimeMillis, (now): Next => ({ _tag: "RetryAt", at: now + 1_000 })))
        )
      )
    }

    const queueOf = (tenant: string): TenantQueue => {
      let queue = queues.get(tenant)
      if (!queue) {
        queue = { tenant, lanes: new Map(), ready: [], workers: 0, scannedTo: 0, unscanned: false, version: 0, scanning: false }
        queues.set(tenant, queue)
      }
      return queue
    }

    /** Puts a lane in its tenant's ready list, starting a worker if the tenant has fewer than its cap. */
    const ready = (queue: TenantQueue, lane: Lane): Effect.Effect<void> =>
      Effect.suspend(() => {
        queue.ready.push(lane)
        if (queue.workers >= config.delivery.concurrencyPerTenant) return Effect.void
        queue.workers++
        // Enqueue runs inside the webhook's uninterruptible store-and-enqueue step; workers must stay interruptible for shutdown.
        return Effect.asVoid(FiberSet.run(running, Effect.interruptible(work(queue))))
      })

    /** A lane waiting for its head's next attempt holds no worker: a timer puts it back. */
    const park = (queue: TenantQueue, lane: Lane, at: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        at <= now ? ready(queue, lane) : Effect.asVoid(FiberSet.run(running, Effect.zipRight(Effect.sleep(Duration.millis(at - now)), ready(queue, lane))))
      )

    const take = (lane: Lane, deliveries: ReadonlyArray<QueuedDelivery>) => {
      for (const delivery of deliveries) {
        if (held.has(delivery.id)) continue
        held.add(delivery.id)
        lane.deliveries.push(delivery)
      }
    }

    /** A lane opened on the first pending delivery of its call; a call with more than a lane holds reads the rest later. */
    const openLane = (queue: TenantQueue, first: QueuedDelivery) =>
      Effect.gen(function* () {
        const lane: Lane = { key: laneKey(first), room: first.room, deliveries: [], more: false, version: 0 }
        queue.lanes.set(lane.key, lane)
        if (first.room === null) take(lane, [first])
        else {
          const next = yield* store.pendingInLane(queue.tenant, first.room, perLane + 1)
          take(lane, next.slice(0, perLane))
          lane.more = next.length > perLane
        }
        if (lane.deliveries.length === 0) queue.lanes.delete(lane.key)
        else yield* park(queue, lane, lane.deliveries[0]!.nextAttemptAt)
      })

    /**
     * Fills the tenant's window from the store: its pending deliveries in id
     * order from `scannedTo`, each call not yet in the window opened on its
     * first, until the window is full or nothing is left.
     */
    const scan = (queue: TenantQueue): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (queue.scanning || !queue.unscanned || queue.lanes.size >= maxLanes) return Effect.void
        queue.scanning = true
        const version = queue.version
        return Effect.gen(function* () {
          const rows = yield* store.pendingAfter(queue.tenant, queue.scannedTo, SCAN_PAGE)
          for (const row of rows) {
            const lane = queue.lanes.get(laneKey(row))
            if (lane) {
              if (!held.has(row.id)) (lane.more = true), lane.version++
            } else if (queue.lanes.size >= maxLanes) return
            else yield* openLane(queue, row)
            queue.scannedTo = row.id
          }
          if (rows.length === SCAN_PAGE) return
          // Read to the end: unless something arrived meanwhile, the store holds nothing past the window.
          if (queue.version === version) queue.unscanned = false
        }).pipe(
          Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning("could not read the queue; will retry", e.cause)),
          Effect.ensuring(Effect.sync(() => (queue.scanning = false))),
          // More to read with room for it: next page, in a fiber of its own so the caller is not held up.
          Effect.zipRight(
            Effect.suspend(() =>
              queue.unscanned && queue.lanes.size < maxLanes ? Effect.asVoid(FiberSet.run(running, Effect.zipRight(Effect.yieldNow(), scan(queue)))) : Effect.void
            )
          )
        )
      })

    /** After the head is done: the lane's next delivery, from the lane or the store; an empty lane leaves the window. */
    const advance = (queue: TenantQueue, lane: Lane, next: Next): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (next._tag === "RetryAt") return park(queue, lane, next.at)
        const done = lane.deliveries.shift()!
        held.delete(done.id)
        progress.delete(done.id)
        if (lane.deliveries.length > 0) return ready(queue, lane)
        if (lane.more && lane.room !== null) return refill(queue, lane)
        queue.lanes.delete(lane.key)
        return scan(queue)
      })

    const refill = (queue: TenantQueue, lane: Lane): Effect.Effect<void> =>
      Effect.gen(function* () {
        const version = lane.version
        const next = yield* store.pendingInLane(queue.tenant, lane.room!, perLane + 1)
        take(lane, next.slice(0, perLane))
        if (lane.version === version) lane.more = next.length > perLane
        if (lane.deliveries.length > 0) return yield* ready(queue, lane)
        queue.lanes.delete(lane.key)
        yield* scan(queue)
      }).pipe(
        Effect.catchTag("StoreUnavailable", (e) =>
          Effect.zipRight(Effect.logWarning("could not read the queue; will retry", e.cause), Effect.asVoid(FiberSet.run(running, Effect.zipRight(Effect.sleep("1 second"), refill(queue, lane)))))
        )
      )

    /** A tenant's worker: attempts the head of one lane at a time, taking lanes in turn, until none is due. */
    const work = (queue: TenantQueue): Effect.Effect<void> =>
      Effect.suspend(() => {
        const lane = queue.ready.shift()
        if (!lane) {
          queue.workers--
          return Effect.void
        }
        // A lane back in the ready list goes behind the others, so one busy call cannot starve the tenant's other calls.
        return Effect.zipRight(Effect.flatMap(attemptHead(lane), (next) => advance(queue, lane, next)), work(queue))
      })

    /** A delivery just accepted: into its call's lane if the window has room for it, else it waits in the store. */
    const enqueue = (delivery: QueuedDelivery): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (held.has(delivery.id)) return Effect.void
        const queue = queueOf(delivery.tenant)
        const lane = queue.lanes.get(laneKey(delivery))
        if (lane) {
          if (!lane.more && lane.deliveries.length < perLane) take(lane, [delivery])
          else (lane.more = true), lane.version++
          return Effect.void
        }
        if (!queue.unscanned && queue.lanes.size < maxLanes) {
          // Nothing of this tenant waits outside the window, so this delivery is its call's first.
          const opened: Lane = { key: laneKey(delivery), room: delivery.room, deliveries: [], more: false, version: 0 }
          queue.lanes.set(opened.key, opened)
          take(opened, [delivery])
          queue.scannedTo = Math.max(queue.scannedTo, delivery.id)
          return park(queue, opened, delivery.nextAttemptAt)
        }
        queue.unscanned = true
        queue.version++
        return scan(queue)
      })

    /**
     * Deliveries that are pending again from `fromId` on (requeued, or taken
     * over from a dead instance): the tenant's scan goes back to them, and the
     * calls in the window look in the store again.
     */
    const resume = (tenant: string, fromId: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        const queue = queueOf(tenant)
        queue.scannedTo = Math.min(queue.scannedTo, fromId - 1)
        queue.unscanned = true
        queue.version++
        for (const lane of queue.lanes.values()) (lane.more = true), lane.version++
        return scan(queue)
      })

    const publishQueueGauges = store.queueStats.pipe(
      Effect.flatMap((stats) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.zipRight(
            Metrics.setGauge(Metrics.queueDepth, stats.depth),
            Metrics.setGauge(Metrics.oldestPending, stats.oldestQueuedAt === undefined ? 0 : Math.max(0, now - stats.oldestQueuedAt) / 1000)
          )
        )
      ),
      Effect.catchTag("StoreUnavailable", () => Effect.void)
    )
    yield* publishQueueGauges.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)

    // Whatever a previous run left pending resumes now; only each tenant's window is read, in the background.
    for (const tenant of yield* Effect.orElseSucceed(store.pendingTenants, () => [])) {
      const queue = queueOf(tenant)
      queue.unscanned = true
      yield* FiberSet.run(running, scan(queue))
    }

    return {
      /** Queues deliveries just accepted, in id order; one already in the window is ignored. */
      enqueueAll: (deliveries: ReadonlyArray<QueuedDelivery>) => (deliveries.length === 0 ? Effect.void : Effect.forEach(deliveries, enqueue, { discard: true })),
      /** Deliveries taken over from a dead instance, which this instance now holds. */
      resumeClaimed: (claimed: ReadonlyArray<QueuedDelivery>) =>
        Effect.forEach(claimed, (delivery) => resume(delivery.tenant, delivery.id), { discard: true }),
      /** Re-queues one failed delivery with a fresh attempt budget. */
      retry: (id: number): Effect.Effect<Delivery, NotFound | Conflict | StoreUnavailable> =>
        Effect.gen(function* () {
          const result = yield* store.requeue(id, yield* Clock.currentTimeMillis)
          if (result._tag === "NotFound") return yield* new NotFound({ message: `no delivery ${id}` })
          if (result._tag === "NotFailed") return yield* new Conflict({ message: `delivery ${id} is ${result.status}, not failed` })
          yield* resume(result.delivery.tenant, id)
          return result.delivery
        }),
      /** Re-queues a tenant's failed deliveries created since `since`; returns how many. */
      recover: (tenant: string, since: number): Effect.Effect<number, StoreUnavailable> =>
        Effect.gen(function* () {
          const requeued = yield* store.requeueFailed(tenant, since, yield* Clock.currentTimeMillis)
          if (requeued.firstId !== undefined) yield* resume(tenant, requeued.firstId)
          return requeued.count
        }),
      /** Waits, up to `timeout`, for attempts in flight to finish; pending work stays in the store. */
      // Shutdown runs this in a finalizer, where nothing is interruptible: the wait must be, or the timeout could not end it.
      drain: (timeout: Duration.Duration) => Effect.timeoutOption(Effect.interruptible(gate.awaitIdle), timeout)
    }
  })
}) {}
