import { Cause, Clock, Duration, Effect, Either, Option, Runtime, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { ALERTS_TENANT, alertDelivery, deliveryFailed, tenantDisabled, tenantFailing, tenantRecovered, type Alert } from "../domain/Alert.ts"
import type { AttemptRecord, Delivery, NewDelivery } from "../domain/Delivery.ts"
import { Conflict, NotFound, type DeliveryError, type StoreUnavailable } from "../domain/Errors.ts"
import { ownOrDefault, signingSecrets } from "../domain/Hook.ts"
import { authorizationOf } from "../domain/HookHeaders.ts"
import { entryFor, HookTable } from "../hooks/HookTable.ts"
import { logEach } from "../telemetry/Logging.ts"
import { Tracing, type AttemptSpan } from "../telemetry/Tracing.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { parseDurationMs } from "../domain/Duration.ts"
import { parseRateLimit, type RateLimit } from "../domain/RateLimit.ts"
import { isTenantFailure, retrySchedule } from "./Retry.ts"
import { HEALTHY, type TenantHealth } from "../domain/TenantHealth.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import { EventStore } from "../store/EventStore.ts"
import { HealthStore } from "../store/HealthStore.ts"
import type { Acceptance, AcceptResult, QueuedDelivery } from "../store/Store.ts"
import { TenantGate, type Admitted } from "./TenantGate.ts"
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
  /** When the next attempt is due, if the lane was woken earlier to expire the delivery on time. */
  dueAt?: number | undefined
}

/** What a lane does after an attempt at its head. */
type Next = { readonly _tag: "Finished" } | { readonly _tag: "RetryAt"; readonly at: number }

const FINISHED: Next = { _tag: "Finished" }

const laneKey = (delivery: QueuedDelivery) => (delivery.room === null ? `#${delivery.id}` : delivery.room)

/** The next event-loop turn, after pending I/O. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

// Rows read per step of a scan; a scan stops early once the window is full.
const SCAN_PAGE = 256

/** An attempt's outcome, or an expiry, waiting to be written with the others that finished in the same turn. */
type Finished = AttemptFinished | Expired | Disabled

interface AttemptFinished {
  readonly _tag: "Attempt"
  readonly delivery: QueuedDelivery
  readonly attempt: number
  readonly startedAt: number
  readonly at: number
  readonly outcome: Either.Either<number, DeliveryError>
  readonly retryAt: number | undefined
  readonly span: AttemptSpan
}

/** A delivery whose event grew older than its hook's `maxAge` before it could be sent: it ends unsent. */
interface Expired {
  readonly _tag: "Expired"
  readonly delivery: QueuedDelivery
  /** Attempts made so far; the expiry adds none. */
  readonly attempts: number
  readonly at: number
  readonly ageMs: number
  readonly maxAgeMs: number
}

/** A delivery of a disabled tenant: it ends `failed` unsent, with lastError "disabled", so recover replays it. */
interface Disabled {
  readonly _tag: "Disabled"
  readonly delivery: QueuedDelivery
  readonly attempts: number
  readonly at: number
}

/** An alert is accepted like an event: its id is its dedupe key, so it is stored once, whoever raises it again. */
export const alertAcceptance = (delivery: NewDelivery, at: number): Acceptance => ({
  eventId: delivery.eventId,
  receivedAt: at,
  delivery,
  pinChange: undefined,
  unroutable: undefined
})

/** How old the event is: from LiveKit's `createdAt`, else from when the router received it. */
const ageOf = (delivery: QueuedDelivery, now: number) => now - (delivery.eventCreatedAt ?? delivery.createdAt)

/**
 * Delivers accepted events to tenants in the background, durably: every
 * attempt is recorded before the next decision, so a restart resumes exactly
 * where the last run stopped. The store is the queue: this holds only a
 * bounded window of it per tenant and refills from the store, so a tenant that
 * is down for days costs disk, not memory. Each call (room) has its own lane,
 * so a retrying event holds back only later events of the same call. Each
 * tenant has its own lanes, worked by at most `concurrencyPerTenant` workers,
 * and its own gate (circuit breaker, rate limit), so a slow tenant never delays
 * another. A lane waiting for a retry holds no worker. Retries follow an
 * exponential `Schedule` with jitter.
 *
 * The engine is plain code over promises: one attempt is a fetch, and an
 * Effect per attempt would cost more than the attempt. The runtime is paid per
 * batch: the outcomes of the attempts that finish in one event-loop turn are
 * recorded, counted and logged by one Effect; the store's queue is read by one
 * Effect per window refill.
 */
export class Forwarder extends Effect.Service<Forwarder>()("Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const eventStore = yield* EventStore
    const deliveryQueue = yield* DeliveryQueue
    const healthStore = yield* HealthStore
    const hooks = yield* HookTable
    const gate = yield* TenantGate
    const sender = yield* WebhookSender
    const tracing = yield* Tracing
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runPromise(runtime)
    const runSync = Runtime.runSync(runtime)
    const { lanes: maxLanes, perLane } = config.delivery.window
    const queues = new Map<string, TenantQueue>()
    /** Ids of the deliveries in a window, so one handed over twice (an arrival racing a scan, a claim) runs once. */
    const held = new Set<number>()
    const progress = new Map<number, Progress>()
    /** Aborts the attempts still in flight when the service stops (after the drain). */
    const stopping = new AbortController()
    const timers = new Set<ReturnType<typeof setTimeout>>()
    /** Lanes waiting for a retry, by tenant, with their timers, so a disable can wake them. */
    const parked = new Map<string, Map<Lane, ReturnType<typeof setTimeout>>>()
    // A hook's rate limit is text in the table; parse each distinct one once.
    const rateLimits = new Map<string, RateLimit | undefined>()
    const rateLimitOf = (text: string) => {
      if (!rateLimits.has(text)) rateLimits.set(text, parseRateLimit(text))
      return rateLimits.get(text)
    }
    const maxAges = new Map<string, number | undefined>()
    const maxAgeOf = (text: string) => {
      if (!maxAges.has(text)) maxAges.set(text, parseDurationMs(text))
      return maxAges.get(text)
    }

    // ---------------------------------------------------------------- auto-disable

    const disableAfterMs = Duration.toMillis(config.delivery.disableAfter)
    /**
     * Each tenant's health as last read or written. It is read from the store once per
     * tenant, and again while it is disabled (an operator may have enabled it on any
     * instance); it is written only on transitions: a failing streak starts or ends,
     * the tenant is disabled or enabled.
     */
    const health = new Map<string, TenantHealth>()
    const loading = new Map<string, Promise<void>>()
    /** Per tenant: bumped by every write, and how many writes are not yet committed, so a read never undoes a newer write. */
    const healthVersions = new Map<string, number>()
    const healthWriting = new Map<string, number>()
    const healthOf = async (tenant: string): Promise<TenantHealth> => {
      const known = health.get(tenant)
      if (known !== undefined && known.disabledAt === null) return known
      let pending = loading.get(tenant)
      if (!pending) {
        const version = healthVersions.get(tenant) ?? 0
        const quiet = (healthWriting.get(tenant) ?? 0) === 0
        pending = read(healthStore.tenantHealth(tenant), undefined as TenantHealth | undefined).then((found) => {
          loading.delete(tenant)
          if (found !== undefined && quiet && (healthVersions.get(tenant) ?? 0) === version) health.set(tenant, found)
        })
        loading.set(tenant, pending)
      }
      await pending
      return health.get(tenant) ?? HEALTHY
    }
    /** Sets the tenant's health here at once and runs `write` to record it; `version` is this change's, for `write` to compare. */
    const changeHealth = (tenant: string, next: TenantHealth, write: (version: number) => Effect.Effect<void, StoreUnavailable>) => {
      health.set(tenant, next)
      const version = (healthVersions.get(tenant) ?? 0) + 1
      healthVersions.set(tenant, version)
      healthWriting.set(tenant, (healthWriting.get(tenant) ?? 0) + 1)
      const written = run(write(version).pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning("tenant health not recorded", e.cause)))).finally(() => {
        healthWriting.set(tenant, healthWriting.get(tenant)! - 1)
        writes.delete(written)
      })
      writes.add(written)
    }
    const setHealth = (tenant: string, next: TenantHealth) => changeHealth(tenant, next, () => healthStore.setTenantHealth(tenant, next))
    /** When each tenant last answered a 2xx here: a streak in the store that began before that is not this outage. */
    const lastSuccess = new Map<string, number>()
    /**
     * A failing streak starts here. Another instance sharing the store may have started it
     * already: then its start is adopted, so every instance names the same streak (in its
     * alerts' ids, and for the disable) instead of each recording its own. A streak that began
     * before this instance's last 2xx is left over (its instance died before ending it): replaced.
     */
    const startStreak = (tenant: string, at: number, disabledAt: number | null) => {
      const fresh: TenantHealth = { failingSince: at, failingAlerted: false, disabledAt }
      changeHealth(tenant, fresh, (version) =>
        Effect.flatMap(healthStore.tenantHealth(tenant), (stored) =>
          stored.failingSince !== null && stored.failingSince > (lastSuccess.get(tenant) ?? -Infinity)
            ? Effect.sync(() => {
                if (healthVersions.get(tenant) === version) health.set(tenant, stored)
              })
            : healthStore.setTenantHealth(tenant, fresh)
        )
      )
    }
    /**
     * A 2xx ends the streak. If a tenant.failing told of it (here, or on another instance, or
     * before a restart: the store says), tenant.recovered tells it is over; several instances
     * ending it send the same alert id, so one.
     */
    const endStreak = (tenant: string, current: TenantHealth, at: number) =>
      changeHealth(tenant, { failingSince: null, failingAlerted: false, disabledAt: current.disabledAt }, () =>
        Effect.flatMap(healthStore.tenantHealth(tenant), (stored) => {
          const alerted = current.failingAlerted ? current : stored.failingAlerted ? stored : undefined
          const recovered = Effect.sync(() => alerted?.failingSince != null && raise(tenantRecovered(tenant, alerted.failingSince, at)))
          // The disable as the store has it: an operator may have enabled the tenant on any instance.
          return Effect.zipRight(recovered, healthStore.setTenantHealth(tenant, { failingSince: null, failingAlerted: false, disabledAt: stored.disabledAt }))
        })
      )
    /**
     * An attempt's outcome moves the tenant's failing streak: a 2xx ends it; a failure starts it, or disables the tenant once it is long enough.
     * The alerts endpoint is never disabled: nothing would then say it is down.
     */
    const noteOutcome = (tenant: string, succeeded: boolean, at: number) => {
      if (tenant === ALERTS_TENANT) return
      const current = health.get(tenant) ?? HEALTHY
      if (succeeded) {
        lastSuccess.set(tenant, at)
        if (current.failingSince !== null) endStreak(tenant, current, at)
        return
      }
      if (current.failingSince === null) return startStreak(tenant, at, current.disabledAt)
      if (disableAfterMs <= 0 || current.disabledAt !== null || at - current.failingSince < disableAfterMs) return
      setHealth(tenant, { ...current, disabledAt: at })
      void run(
        Effect.logWarning("tenant disabled").pipe(
          Effect.annotateLogs({ tenant, failingSince: new Date(current.failingSince).toISOString(), disabledAt: new Date(at).toISOString() })
        )
      )
      raise(tenantDisabled(tenant, current.failingSince, at))
      wakeParked(tenant)
    }

    // ---------------------------------------------------------------- alerts

    /**
     * Stores the alerts and queues them to the alerts endpoint. A duplicate id
     * was raised before (by another run or instance): it is not sent again. An
     * alert the store cannot take is logged, never a delivery's failure.
     */
    const queueAlerts = (alerts: ReadonlyArray<Alert>): Effect.Effect<void> => {
      const acceptances = alerts.flatMap((alert) => {
        const delivery = alertDelivery(config.alerts, alert)
        return delivery === undefined ? [] : [alertAcceptance(delivery, alert.at)]
      })
      if (acceptances.length === 0) return Effect.void
      return eventStore.acceptAll(acceptances).pipe(
        Effect.flatMap(enqueueAlerts),
        // Raised again shortly: an outage of the store is when alerts matter most.
        Effect.catchTag("StoreUnavailable", (e) =>
          Effect.logWarning("alerts not queued yet; will retry", e.cause).pipe(
            Effect.annotateLogs({ alerts: acceptances.map((a) => a.eventId) }),
            Effect.zipRight(Effect.sync(() => stopping.signal.aborted || later(1_000, () => alerts.forEach(raise))))
          )
        )
      )
    }

    /**
     * Queues the alerts the store just took; a duplicate was queued (and counted) where it
     * was first raised. One raised while stopping waits in the store for the next start.
     */
    const enqueueAlerts = (accepted: ReadonlyArray<AcceptResult>) =>
      Effect.sync(() => {
        for (const result of accepted) {
          if (result._tag !== "Accepted" || !result.delivery) continue
          Metrics.count(Metrics.alerts, { type: result.delivery.eventType })
          if (!stopping.signal.aborted) enqueue(result.delivery)
        }
      })

    /** Alerts raised outside a turn's recording (circuit changes, a disable), queued together at the end of the turn. */
    let raising: Array<Alert> = []
    const flushAlerts = () => {
      if (raising.length === 0) return
      const batch = raising
      raising = []
      const write = run(queueAlerts(batch)).finally(() => writes.delete(write))
      writes.add(write)
    }
    const raise = (alert: Alert) => {
      if (config.alerts === undefined) return
      if (raising.length === 0) setImmediate(flushAlerts)
      raising.push(alert)
    }

    /**
     * A circuit opening is a tenant.failing, once per streak (recorded with the tenant's health).
     * A circuit closing is not the recovery: a 4xx closes it too, while the streak goes on;
     * the 2xx that ends the streak is (see endStreak).
     */
    const circuitOpened = (tenant: string, failure: DeliveryError | undefined, at: number) => {
      if (config.alerts === undefined || tenant === ALERTS_TENANT) return
      const current = health.get(tenant) ?? HEALTHY
      if (current.failingAlerted) return
      raise(tenantFailing(tenant, current.failingSince ?? at, at, failure === undefined ? { status: null, error: null } : describeFailure(failure)))
      if (current.failingSince !== null) setHealth(tenant, { ...current, failingAlerted: true })
    }

    const later = (ms: number, task: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        task()
      }, ms)
      timers.add(timer)
    }
    /** A store read from plain code; a failure is logged and answered with `orElse`. */
    const read = <A>(effect: Effect.Effect<A, StoreUnavailable>, orElse: A): Promise<A> =>
      run(effect.pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.as(Effect.logWarning("could not read the delivery queue; will retry", e.cause), orElse))))

    /**
     * While the hook still points where the delivery goes, its current secrets
     * rate limit, headers and auth apply, so a call follows the tenant's rotations.
     * If the hook was removed or moved, the call's pinned destination is signed
     * as it was, without the hook's headers or auth (they were for its url).
     */
    const tenantSettings = (delivery: QueuedDelivery, now: number) => {
      const hook = entryFor(hooks.inForce(), delivery.tenant)
      return hook?.url !== delivery.url
        ? { secrets: ownOrDefault(delivery.secret, config.signing.secret), rateLimit: undefined, headers: undefined, authorization: undefined }
        : {
            secrets: signingSecrets(hook, config.signing.secret, now),
            headers: hook.headers,
            authorization: authorizationOf(hook.auth),
            rateLimit: hook.rateLimit === undefined ? undefined : rateLimitOf(hook.rateLimit)
          }
    }

    /**
     * The hook's maxAge when the event is older than it now, else undefined. Like
     * the secrets, the hook in force decides while it still points where the
     * delivery goes; a pinned destination whose hook was removed or moved has none.
     */
    const maxAgeFor = (delivery: QueuedDelivery): number | undefined => {
      const hook = entryFor(hooks.inForce(), delivery.tenant)
      return hook?.url !== delivery.url || hook.maxAge === undefined ? undefined : maxAgeOf(hook.maxAge)
    }
    /** When the event outgrows the hook's maxAge, if it has one. */
    const expiresAt = (delivery: QueuedDelivery): number | undefined => {
      const maxAgeMs = maxAgeFor(delivery)
      return maxAgeMs === undefined ? undefined : (delivery.eventCreatedAt ?? delivery.createdAt) + maxAgeMs + 1
    }
    const staleAt = (delivery: QueuedDelivery, now: number): number | undefined => {
      const maxAgeMs = maxAgeFor(delivery)
      return maxAgeMs !== undefined && ageOf(delivery, now) > maxAgeMs ? maxAgeMs : undefined
    }

    /**
     * The gate's admission, or "stale" once the event outgrows its maxAge while
     * waiting there (an open circuit waits out its cooldown): it expires on time,
     * not when the circuit lets it through. An admission that comes after that is
     * handed back unused.
     */
    const admitFresh = (delivery: QueuedDelivery, rateLimit: RateLimit | undefined): Promise<Admitted | undefined | "stale"> => {
      const admission = gate.admit(delivery.tenant, rateLimit)
      const maxAgeMs = maxAgeFor(delivery)
      if (maxAgeMs === undefined) return admission
      return new Promise((resolve) => {
        let settled = false
        const timer = setTimeout(
          () => {
            timers.delete(timer)
            settled = true
            // After shutdown began, the delivery stays pending for the next start (which expires it then).
            resolve(stopping.signal.aborted ? undefined : "stale")
            void admission.then((admitted) => admitted && gate.settle(delivery.tenant, admitted, undefined))
          },
          Math.max(0, maxAgeMs - ageOf(delivery, Date.now())) + 1
        )
        timers.add(timer)
        void admission.then((admitted) => {
          if (settled) return
          settled = true
          timers.delete(timer)
          clearTimeout(timer)
          resolve(admitted)
        })
      })
    }

    const progressOf = (delivery: QueuedDelivery) => {
      let entry = progress.get(delivery.id)
      if (!entry) progress.set(delivery.id, (entry = { attempts: delivery.attempts, attemptsAtStart: delivery.attempts, retry: undefined }))
      return entry
    }

    /** Steps the delivery's retry schedule with this failure: when to try again, or undefined when it is spent. */
    const retryAfter = (entry: Progress, error: DeliveryError, now: number): number | undefined => {
      const retry = (entry.retry ??= (() => {
        const schedule = retrySchedule(config.delivery, entry.attemptsAtStart)
        return { schedule, state: schedule.initial }
      })())
      const [state, , decision] = runSync(retry.schedule.step(now, error, retry.state))
      retry.state = state
      return ScheduleDecision.isContinue(decision) ? ScheduleIntervals.start(decision.intervals) : undefined
    }

    // ---------------------------------------------------------------- recording, a turn at a time

    let finishing: Array<{ readonly finished: Finished; readonly recorded: () => void }> = []
    const writes = new Set<Promise<void>>()

    const recordAll = (all: ReadonlyArray<Finished>) => {
      const batch = all.filter((f): f is AttemptFinished => f._tag === "Attempt")
      // An expiry is recorded like a final attempt, but adds no history entry (see AttemptRecord).
      const expiries = all
        .filter((f): f is Expired => f._tag === "Expired")
        .map(({ delivery, attempts, at, ageMs, maxAgeMs }) => {
          Metrics.countExpired(delivery.tenant)
          return {
            record: {
              id: delivery.id,
              record: { attempt: attempts, at, status: null, error: "expired", latencyMs: 0, final: "expired" as const, nextAttemptAt: at }
            },
            line: { eventId: delivery.eventId, type: delivery.eventType, domain: delivery.domain, tenant: delivery.tenant, url: delivery.url, attempts, ageMs, maxAgeMs }
          }
        })
      const disabled = all
        .filter((f): f is Disabled => f._tag === "Disabled")
        .map(({ delivery, attempts, at }) => {
          Metrics.countDisabled(delivery.tenant)
          return {
            record: { id: delivery.id, record: { attempt: attempts, at, status: null, error: "disabled", latencyMs: 0, final: "failed" as const, nextAttemptAt: at } },
            line: { eventId: delivery.eventId, type: delivery.eventType, domain: delivery.domain, tenant: delivery.tenant, url: delivery.url, attempts }
          }
        })
      // Deliveries that ran out of attempts, when alerts are on; the alerts endpoint's own are not alerted about (it is where they would go).
      const failed: Array<Alert> = []
      const alerting = config.alerts !== undefined
      const lines = batch.map(({ delivery, attempt, startedAt, at, outcome, retryAt, span }) => {
        const final: AttemptRecord["final"] = Either.isRight(outcome) ? "delivered" : retryAt === undefined ? "failed" : undefined
        const seen = Either.isRight(outcome) ? { status: outcome.right, error: null, result: String(outcome.right) } : describeFailure(outcome.left)
        if (alerting && final === "failed" && delivery.tenant !== ALERTS_TENANT) {
          failed.push(deliveryFailed(delivery, attempt, seen, at))
        }
        const latencyMs = at - startedAt
        Metrics.countAttempt({
          tenant: delivery.tenant,
          result: seen.result,
          seconds: latencyMs / 1000,
          final,
          retried: retryAt !== undefined,
          endToEndSeconds: final === "delivered" && delivery.eventCreatedAt !== null ? Math.max(0, at - delivery.eventCreatedAt) / 1000 : undefined
        })
        return {
          record: { id: delivery.id, record: { attempt, at, status: seen.status, error: seen.error, latencyMs, final, nextAttemptAt: retryAt ?? at } },
          line: {
            eventId: delivery.eventId,
            type: delivery.eventType,
            domain: delivery.domain,
            tenant: delivery.tenant,
            url: delivery.url,
            status: seen.status,
            error: seen.error,
            attempt,
            latencyMs,
            ...span.ids
          }
        }
      })
      return Effect.zipRight(
        deliveryQueue
          .recordAttempts([...lines.map((l) => l.record), ...expiries.map((e) => e.record), ...disabled.map((d) => d.record)])
          .pipe(
            // Once recorded: an alert never tells of a failure the store does not show.
            (recording) => (failed.length === 0 ? recording : Effect.zipRight(recording, queueAlerts(failed))),
            Effect.catchTag("StoreUnavailable", (e) => Effect.logError("delivery attempts not recorded", e.cause))
          ),
        Effect.zipRight(
          logEach("delivery attempt", lines.map((l) => l.line)),
          Effect.zipRight(
            logEach("delivery expired", expiries.map((e) => e.line)),
            logEach("delivery not sent: tenant disabled", disabled.map((d) => d.line))
          )
        )
      ).pipe(tracing.batch("record delivery attempts", all, (finished) => (finished._tag === "Attempt" ? finished.span.traceparent : finished.delivery.trace)))
    }

    const flushFinished = () => {
      const batch = finishing
      finishing = []
      const write = run(recordAll(batch.map((b) => b.finished))).finally(() => {
        writes.delete(write)
        for (const b of batch) b.recorded()
      })
      writes.add(write)
    }

    /** Resolves once the attempt is recorded, with the others that finished in this turn. */
    const recorded = (finished: Finished) =>
      new Promise<void>((resolve) => {
        if (finishing.length === 0) setImmediate(flushFinished)
        finishing.push({ finished, recorded: resolve })
      })

    // ---------------------------------------------------------------- attempts

    /** The body, from the window if the delivery arrived with it, else read now that its attempt is due. */
    const bodyOf = async (delivery: QueuedDelivery): Promise<string | null | undefined> => {
      if (delivery.body !== undefined) return delivery.body
      const found = await read(Effect.map(deliveryQueue.bodyOf(delivery.id), Option.getOrNull), undefined)
      return found
    }

    /**
     * One attempt at the head of a lane, through its tenant's gate, recorded
     * before the lane moves on. Undefined when shutdown stopped it: the
     * delivery stays pending in the store for the next start.
     */
    const attemptHead = async (lane: Lane): Promise<Next | undefined> => {
      const head = lane.deliveries[0]!
      // Too old to send: it expires before its body is even read.
      if (staleAt(head, Date.now()) !== undefined) return expire(head)
      // A disabled tenant is sent nothing: the delivery ends failed, for recover to replay once it is enabled.
      if ((await healthOf(head.tenant)).disabledAt !== null) return endDisabled(head)
      // Woken to expire it, but the hook's maxAge changed meanwhile: back to waiting for its retry.
      const dueAt = progress.get(head.id)?.dueAt
      if (dueAt !== undefined && dueAt > Date.now()) return { _tag: "RetryAt", at: dueAt }
      const body = await bodyOf(head)
      // The store could not be read: try again shortly, without spending an attempt.
      if (body === undefined) return { _tag: "RetryAt", at: Date.now() + 1_000 }
      if (body === null) {
        await run(Effect.logWarning("pending delivery vanished from the store").pipe(Effect.annotateLogs({ id: head.id })))
        return FINISHED
      }
      const { secrets, rateLimit, headers, authorization } = tenantSettings(head, Date.now())
      const admitted = await admitFresh(head, rateLimit)
      if (admitted === "stale") return expire(head)
      if (admitted === undefined || stopping.signal.aborted) return undefined
      // Disabled while it waited at the gate (another attempt's failure ended the streak's grace).
      if ((health.get(head.tenant) ?? HEALTHY).disabledAt !== null) {
        gate.settle(head.tenant, admitted, undefined)
        return endDisabled(head)
      }
      // Waiting at the gate (an open circuit, the rate limit) may have made it too old.
      if (staleAt(head, Date.now()) !== undefined) {
        gate.settle(head.tenant, admitted, undefined)
        return expire(head)
      }
      const entry = progressOf(head)
      const startedAt = Date.now()
      const span = tracing.attempt({ eventId: head.eventId, eventType: head.eventType, tenant: head.tenant, url: head.url, attempt: entry.attempts + 1, parent: head.trace })
      const outcome = await sender.attempt({ url: head.url, eventId: head.eventId, body, secrets, headers, authorization }, span, stopping.signal)
      if (stopping.signal.aborted) {
        gate.settle(head.tenant, admitted, undefined)
        return undefined
      }
      const at = Date.now()
      const retryAt = Either.isLeft(outcome) ? retryAfter(entry, outcome.left, at) : undefined
      noteOutcome(head.tenant, Either.isRight(outcome), at)
      await recorded({ _tag: "Attempt", delivery: head, attempt: ++entry.attempts, startedAt, at, outcome, retryAt, span })
      // The gate settles once the outcome is on record, so a drain that waits for it waits for the record too.
      if (gate.settle(head.tenant, admitted, Either.isLeft(outcome) && isTenantFailure(outcome.left))) {
        circuitOpened(head.tenant, Either.isLeft(outcome) ? outcome.left : undefined, at)
      }
      if (retryAt === undefined) return FINISHED
      // A retry due after the event goes stale: the lane wakes when it does, so the delivery expires on time.
      const staleFrom = expiresAt(head)
      entry.dueAt = staleFrom !== undefined && staleFrom < retryAt ? retryAt : undefined
      return { _tag: "RetryAt", at: Math.min(retryAt, staleFrom ?? retryAt) }
    }

    /** Ends the delivery unsent, recorded with the turn's attempts; the lane moves on to the call's next event. */
    const expire = async (head: QueuedDelivery): Promise<Next | undefined> => {
      if (stopping.signal.aborted) return undefined
      const at = Date.now()
      const maxAgeMs = staleAt(head, at) ?? 0
      await recorded({ _tag: "Expired", delivery: head, attempts: progressOf(head).attempts, at, ageMs: ageOf(head, at), maxAgeMs })
      return FINISHED
    }

    const endDisabled = async (head: QueuedDelivery): Promise<Next | undefined> => {
      if (stopping.signal.aborted) return undefined
      await recorded({ _tag: "Disabled", delivery: head, attempts: progressOf(head).attempts, at: Date.now() })
      return FINISHED
    }

    // ---------------------------------------------------------------- the window

    const queueOf = (tenant: string): TenantQueue => {
      let queue = queues.get(tenant)
      if (!queue) {
        queue = { tenant, lanes: new Map(), ready: [], workers: 0, scannedTo: 0, unscanned: false, version: 0, scanning: false }
        queues.set(tenant, queue)
      }
      return queue
    }

    /** Puts a lane in its tenant's ready list, starting a worker if the tenant has fewer than its cap. */
    const ready = (queue: TenantQueue, lane: Lane) => {
      queue.ready.push(lane)
      if (queue.workers >= config.delivery.concurrencyPerTenant) return
      queue.workers++
      void work(queue)
    }

    /** A lane waiting for its head's next attempt holds no worker: a timer puts it back. */
    const park = (queue: TenantQueue, lane: Lane, at: number) => {
      const wait = at - Date.now()
      // A disabled tenant's deliveries wait for nothing: they end failed now.
      if (wait <= 0 || (health.get(queue.tenant) ?? HEALTHY).disabledAt !== null) return ready(queue, lane)
      const timer = setTimeout(() => {
        timers.delete(timer)
        parked.get(queue.tenant)?.delete(lane)
        ready(queue, lane)
      }, wait)
      timers.add(timer)
      let lanes = parked.get(queue.tenant)
      if (!lanes) parked.set(queue.tenant, (lanes = new Map()))
      lanes.set(lane, timer)
    }

    /** A tenant just disabled: its lanes waiting for a retry wake now, so their deliveries end failed at once. */
    const wakeParked = (tenant: string) => {
      const lanes = parked.get(tenant)
      const queue = queues.get(tenant)
      if (!lanes || !queue) return
      parked.delete(tenant)
      for (const [lane, timer] of lanes) {
        clearTimeout(timer)
        timers.delete(timer)
        ready(queue, lane)
      }
    }

    const take = (lane: Lane, deliveries: ReadonlyArray<QueuedDelivery>) => {
      for (const delivery of deliveries) {
        if (held.has(delivery.id)) continue
        held.add(delivery.id)
        lane.deliveries.push(delivery)
      }
    }

    /** Reads the call's next deliveries into its empty lane; false when the store could not be read. */
    const fillLane = async (queue: TenantQueue, lane: Lane): Promise<boolean> => {
      const version = lane.version
      const next = await read(deliveryQueue.pendingInLane(queue.tenant, lane.room!, perLane + 1), undefined)
      if (next === undefined) return false
      take(lane, next.slice(0, perLane))
      if (lane.version === version) lane.more = next.length > perLane
      return true
    }

    /** A lane opened on the first pending delivery of its call; a call with more than a lane holds reads the rest later. */
    const openLane = async (queue: TenantQueue, first: QueuedDelivery) => {
      const lane: Lane = { key: laneKey(first), room: first.room, deliveries: [], more: first.room !== null, version: 0 }
      queue.lanes.set(lane.key, lane)
      if (first.room === null) take(lane, [first])
      else if (!(await fillLane(queue, lane))) take(lane, [first])
      if (lane.deliveries.length === 0) queue.lanes.delete(lane.key)
      else park(queue, lane, lane.deliveries[0]!.nextAttemptAt)
    }

    /**
     * Fills the tenant's window from the store: its pending deliveries in id
     * order from `scannedTo`, each call not yet in the window opened on its
     * first, until the window is full or nothing is left.
     */
    const scan = async (queue: TenantQueue): Promise<void> => {
      if (queue.scanning || !queue.unscanned || queue.lanes.size >= maxLanes || stopping.signal.aborted) return
      queue.scanning = true
      try {
        for (;;) {
          const version = queue.version
          const rows = await read(deliveryQueue.pendingAfter(queue.tenant, queue.scannedTo, SCAN_PAGE), undefined)
          if (rows === undefined) return later(1_000, () => void scan(queue))
          for (const row of rows) {
            const lane = queue.lanes.get(laneKey(row))
            if (lane) {
              if (!held.has(row.id)) (lane.more = true), lane.version++
            } else if (queue.lanes.size >= maxLanes) return
            else {
              // A restart opens many lanes at once: give the event loop a turn between them, so the
              // server keeps answering (reads settle as microtasks, which would otherwise starve it).
              await turn()
              await openLane(queue, row)
            }
            queue.scannedTo = row.id
          }
          if (rows.length < SCAN_PAGE) {
            // Read to the end: unless something arrived meanwhile, the store holds nothing past the window.
            if (queue.version === version) queue.unscanned = false
            else continue
            return
          }
        }
      } finally {
        queue.scanning = false
      }
    }

    /** After the head is done: the lane's next delivery, from the lane or the store; an empty lane leaves the window. */
    const advance = async (queue: TenantQueue, lane: Lane, next: Next) => {
      if (next._tag === "RetryAt") return park(queue, lane, next.at)
      const done = lane.deliveries.shift()!
      held.delete(done.id)
      progress.delete(done.id)
      if (lane.deliveries.length > 0) return ready(queue, lane)
      if (lane.more && lane.room !== null) return refill(queue, lane)
      queue.lanes.delete(lane.key)
      await scan(queue)
    }

    /** An emptied lane whose call has more in the store: its next deliveries, or it leaves the window. */
    const refill = async (queue: TenantQueue, lane: Lane): Promise<void> => {
      if (!(await fillLane(queue, lane))) return later(1_000, () => void refill(queue, lane))
      if (lane.deliveries.length > 0) return ready(queue, lane)
      queue.lanes.delete(lane.key)
      await scan(queue)
    }

    /** A tenant's worker: attempts the head of one lane at a time, taking lanes in turn, until none is due. */
    const work = async (queue: TenantQueue) => {
      try {
        for (let lane = queue.ready.shift(); lane !== undefined; lane = queue.ready.shift()) {
          const next = await attemptHead(lane).catch(
            // A bug must not strand the lane: it is logged, and the lane tried again shortly.
            (cause): Next => (void run(Effect.logError("delivery engine failed", Cause.die(cause))), { _tag: "RetryAt", at: Date.now() + 1_000 })
          )
          if (next === undefined) return
          // A lane back in the ready list goes behind the others, so one busy call cannot starve the tenant's other calls.
          await advance(queue, lane, next)
        }
      } finally {
        queue.workers--
      }
    }

    /** A delivery just accepted: into its call's lane if the window has room for it, else it waits in the store. */
    const enqueue = (delivery: QueuedDelivery) => {
      if (held.has(delivery.id)) return
      const queue = queueOf(delivery.tenant)
      const lane = queue.lanes.get(laneKey(delivery))
      if (lane) {
        if (!lane.more && lane.deliveries.length < perLane) take(lane, [delivery])
        else (lane.more = true), lane.version++
        return
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
      void scan(queue)
    }

    /**
     * Deliveries that are pending again from `fromId` on (requeued, or taken
     * over from a dead instance): the tenant's scan goes back to them, and the
     * calls in the window look in the store again.
     */
    const resume = (tenant: string, fromId: number) => {
      const queue = queueOf(tenant)
      queue.scannedTo = Math.min(queue.scannedTo, fromId - 1)
      queue.unscanned = true
      queue.version++
      for (const lane of queue.lanes.values()) (lane.more = true), lane.version++
      void scan(queue)
    }

    const publishQueueGauges = deliveryQueue.queueStats.pipe(
      Effect.flatMap((stats) =>
        Effect.sync(() => {
          Metrics.set(Metrics.queueDepth, stats.depth)
          Metrics.set(Metrics.oldestPending, stats.oldestQueuedAt === undefined ? 0 : Math.max(0, Date.now() - stats.oldestQueuedAt) / 1000)
        })
      ),
      Effect.catchTag("StoreUnavailable", () => Effect.void)
    )
    yield* publishQueueGauges.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)

    // After the drain: attempts still in flight are cut off (their deliveries stay pending), and what finished is written.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        stopping.abort()
        for (const timer of timers) clearTimeout(timer)
        if (finishing.length > 0) flushFinished()
        flushAlerts()
        return Promise.all(writes)
      })
    )

    // Whatever a previous run left pending resumes now; only each tenant's window is read, in the background.
    for (const tenant of yield* Effect.orElseSucceed(deliveryQueue.pendingTenants, () => [])) {
      const queue = queueOf(tenant)
      queue.unscanned = true
      void scan(queue)
    }

    return {
      /** Queues deliveries just accepted, in id order; one already in the window is ignored. */
      enqueueAll: (deliveries: ReadonlyArray<QueuedDelivery>) => (deliveries.length === 0 ? Effect.void : Effect.sync(() => deliveries.forEach(enqueue))),
      /** Alerts accepted along with a batch of events (domain.unroutable): counted and queued. */
      enqueueAlerts,
      /** Deliveries taken over from a dead instance, which this instance now holds. */
      resumeClaimed: (claimed: ReadonlyArray<QueuedDelivery>) =>
        Effect.sync(() => {
          const firstOf = new Map<string, number>()
          for (const { tenant, id } of claimed) firstOf.set(tenant, Math.min(id, firstOf.get(tenant) ?? id))
          for (const [tenant, id] of firstOf) resume(tenant, id)
        }),
      /** Re-queues one failed delivery with a fresh attempt budget. */
      retry: (id: number): Effect.Effect<Delivery, NotFound | Conflict | StoreUnavailable> =>
        Effect.gen(function* () {
          const result = yield* deliveryQueue.requeue(id, yield* Clock.currentTimeMillis)
          if (result._tag === "NotFound") return yield* new NotFound({ message: `no delivery ${id}` })
          if (result._tag === "NotFailed") return yield* new Conflict({ message: `delivery ${id} is ${result.status}, not failed` })
          resume(result.delivery.tenant, id)
          return result.delivery
        }),
      /** Re-queues a tenant's failed deliveries created since `since`; returns how many. */
      recover: (tenant: string, since: number): Effect.Effect<number, StoreUnavailable> =>
        Effect.gen(function* () {
          const requeued = yield* deliveryQueue.requeueFailed(tenant, since, yield* Clock.currentTimeMillis)
          if (requeued.firstId !== undefined) resume(tenant, requeued.firstId)
          return requeued.count
        }),
      /** Enables a disabled tenant and ends its failing streak; new deliveries flow, failed ones wait for recover. */
      enable: (tenant: string): Effect.Effect<void, StoreUnavailable> =>
        Effect.zipRight(
          healthStore.setTenantHealth(tenant, HEALTHY),
          Effect.sync(() => {
            health.set(tenant, HEALTHY)
            healthVersions.set(tenant, (healthVersions.get(tenant) ?? 0) + 1)
          })
        ),
      /** The tenant's health as the store has it (shared by instances). */
      healthOf: (tenant: string): Effect.Effect<TenantHealth, StoreUnavailable> => healthStore.tenantHealth(tenant),
      /** Waits, up to `timeout`, for attempts in flight to finish; pending work stays in the store. */
      // Shutdown runs this in a finalizer, where nothing is interruptible: the wait must be, or the timeout could not end it.
      drain: (timeout: Duration.Duration) => Effect.timeoutOption(Effect.interruptible(gate.awaitIdle), timeout)
    }
  })
}) {}
