import { Clock, Duration, Effect, FiberSet, Metric, Queue, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { AppConfig } from "./AppConfig.ts"
import type { RouterConfig } from "./Domain/Config.ts"
import type { Delivery } from "./Domain/Delivery.ts"
import { TenantRejected, TenantTimeout, TenantUnreachable, type DeliveryError } from "./Domain/Errors.ts"
import { HookTable } from "./HookTable.ts"
import * as Metrics from "./Metrics.ts"
import { signWebhook } from "./Signing.ts"
import { Store } from "./Store.ts"

/** Retry-After as seconds or an HTTP date, in milliseconds from now; undefined if absent or unreadable. */
export const parseRetryAfter = (value: string | null, nowMs: number): number | undefined => {
  if (!value) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  // Every HTTP-date form carries hh:mm:ss; Date.parse alone would read "1.5" or "-5" as dates in 2001 (retry at once).
  const date = /\d\d:\d\d:\d\d/.test(text) ? Date.parse(text) : Number.NaN
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs)
}

/** Network errors, timeouts, 408, 429 and 5xx may pass; any other status is the tenant's final word. */
export const isRetryable = (error: DeliveryError): boolean =>
  error._tag !== "TenantRejected" || error.status === 408 || error.status === 429 || error.status >= 500

/**
 * Exponential backoff with jitter, capped by maxBackoff, honouring Retry-After,
 * for the attempts a delivery has left. A resumed delivery continues its curve.
 */
export const retrySchedule = (delivery: RouterConfig["delivery"], attemptsDone: number) =>
  Schedule.exponential(Duration.times(delivery.initialBackoff, 2 ** attemptsDone), 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(Math.max(0, delivery.maxAttempts - attemptsDone - 1))),
    Schedule.intersect(Schedule.identity<DeliveryError>()),
    Schedule.modifyDelay(([, error], delay) => {
      const asked = error._tag === "TenantRejected" ? error.retryAfterMs : undefined
      return Duration.min(asked === undefined ? delay : Duration.millis(asked), delivery.maxBackoff)
    }),
    Schedule.whileInput(isRetryable)
  )

const describe = (error: DeliveryError) =>
  error._tag === "TenantRejected"
    ? { status: error.status, error: null, result: String(error.status) }
    : error._tag === "TenantTimeout"
      ? { status: null, error: `timeout after ${error.afterMs}ms`, result: "timeout" }
      : { status: null, error: error.message, result: "network" }

/**
 * Delivers accepted events to tenants in the background. Enqueueing never waits
 * on a tenant; each delivery runs in its own fiber, retried on a Schedule, with
 * at most `concurrencyPerTenant` requests in flight per tenant.
 */
export class Forwarder extends Effect.Service<Forwarder>()("Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* Store
    const hooks = yield* HookTable
    const timeoutMs = Duration.toMillis(config.delivery.timeout)
    const queue = yield* Queue.unbounded<Delivery>()
    const running = yield* FiberSet.make()
    const permits = new Map<string, Effect.Semaphore>()
    const permitFor = (tenant: string) => {
      let semaphore = permits.get(tenant)
      if (!semaphore) permits.set(tenant, (semaphore = Effect.unsafeMakeSemaphore(config.delivery.concurrencyPerTenant)))
      return semaphore
    }

    const secretFor = (tenant: string) =>
      Effect.map(hooks.get(tenant), (hook) => hook?.secret ?? config.signing.secret)

    /** One HTTP request. Redirects are not followed: a tenant's 3xx is a final answer. */
    const post = (delivery: Delivery) =>
      Effect.gen(function* () {
        const secret = yield* secretFor(delivery.tenant)
        const timestamp = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const response = yield* Effect.tryPromise({
          try: (signal) =>
            fetch(delivery.url, {
              method: "POST",
              redirect: "manual",
              signal,
              headers: {
                "content-type": "application/json",
                "user-agent": "sip-tenant-router",
                "webhook-id": delivery.eventId,
                "webhook-timestamp": String(timestamp),
                "webhook-signature": signWebhook(secret, delivery.eventId, timestamp, delivery.body)
              },
              body: delivery.body
            }),
          catch: (error) => new TenantUnreachable({ message: (error as Error).message ?? String(error) })
        }).pipe(Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new TenantTimeout({ afterMs: timeoutMs }) }))
        // Free the connection; the tenant's body is not needed.
        yield* Effect.promise(() => response.body?.cancel() ?? Promise.resolve())
        if (response.status >= 200 && response.status < 300) return response.status
        return yield* new TenantRejected({
          status: response.status,
          retryAfterMs: parseRetryAfter(response.headers.get("retry-after"), Date.now())
        })
      })

    /** An attempt under the tenant's concurrency cap, logged and measured whatever its outcome. */
    const attempt = (delivery: Delivery, number: { n: number }) =>
      Effect.gen(function* () {
        // Timed inside the permit: waiting for a slot is our queue, not the tenant's latency.
        const [elapsed, outcome] = yield* permitFor(delivery.tenant).withPermits(1)(Effect.timed(Effect.either(post(delivery))))
        const latencyMs = Math.round(Duration.toMillis(elapsed))
        const attemptNo = ++number.n
        const seen = outcome._tag === "Right" ? { status: outcome.right, error: null, result: String(outcome.right) } : describe(outcome.left)
        yield* Metrics.increment(Metrics.deliveryAttempts, { tenant: delivery.tenant, result: seen.result })
        yield* Metric.update(Metrics.deliveryDuration, latencyMs / 1000)
        yield* Effect.log("delivery attempt").pipe(
          Effect.annotateLogs({
            eventId: delivery.eventId,
            type: delivery.eventType,
            domain: delivery.domain,
            tenant: delivery.tenant,
            url: delivery.url,
            status: seen.status,
            error: seen.error,
            attempt: attemptNo,
            latencyMs
          })
        )
        return yield* outcome
      })

    const finish = (delivery: Delivery, outcome: "delivered" | "failed", status: number | null, error: string | null) =>
      Effect.zipRight(
        store.recordAttempt(delivery.id, { status, error, final: outcome, nextAttemptAt: Date.now() }),
        Metrics.increment(Metrics.deliveries, { tenant: delivery.tenant, outcome })
      )

    const deliver = (delivery: Delivery) =>
      Effect.gen(function* () {
        const wait = delivery.nextAttemptAt - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        const counter = { n: delivery.attempts }
        // Persist each retry decision so a restart resumes at the same point of the curve.
        const schedule = retrySchedule(config.delivery, delivery.attempts).pipe(
          Schedule.onDecision(([, error], decision) => {
            if (!ScheduleDecision.isContinue(decision)) return Effect.void
            const { status, error: message } = describe(error)
            return store.recordAttempt(delivery.id, {
              status,
              error: message,
              final: undefined,
              nextAttemptAt: ScheduleIntervals.start(decision.intervals)
            }).pipe(Effect.orElse(() => Effect.logWarning("could not record a retry decision")))
          })
        )
        const result = yield* Effect.either(Effect.retry(attempt(delivery, counter), schedule))
        if (result._tag === "Right") return yield* finish(delivery, "delivered", result.right, null)
        const { status, error } = describe(result.left)
        yield* finish(delivery, "failed", status, error)
      }).pipe(
        Effect.catchTag("StoreUnavailable", (e) => Effect.logError("delivery state not recorded", e.cause)),
        Effect.annotateLogs({ eventId: delivery.eventId, tenant: delivery.tenant })
      )

    // The dispatcher hands each delivery to its own fiber; the FiberSet interrupts them all on shutdown.
    yield* Queue.take(queue).pipe(
      Effect.flatMap((delivery) => FiberSet.run(running, deliver(delivery))),
      Effect.forever,
      Effect.forkScoped
    )
    // Whatever a previous run left pending resumes now.
    yield* Queue.offerAll(queue, yield* store.pending)

    return {
      enqueue: (delivery: Delivery) => Queue.offer(queue, delivery).pipe(Effect.asVoid),
      inFlight: FiberSet.size(running)
    }
  })
}) {}
