import { Duration, Effect, Either, Runtime, Schedule } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { ALERTS_TENANT, deliveryFailed, type Alert } from "../domain/Alert.ts"
import { DISABLED_ERROR, type AttemptRecord } from "../domain/Delivery.ts"
import type { DeliveryError, StoreUnavailable } from "../domain/Errors.ts"
import { logEach } from "../telemetry/Logging.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { Tracing, type AttemptSpan } from "../telemetry/Tracing.ts"
import { TurnBatch } from "../TurnBatch.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import type { QueuedDelivery, RecordedAttempt } from "../store/Store.ts"
import { AlertQueue } from "./AlertQueue.ts"
import { InFlight } from "./InFlight.ts"
import { describeFailure } from "./WebhookSender.ts"

/** How a delivery's turn at the head of its lane ended, waiting to be recorded with the others of the same event-loop turn. */
export type Finished = Attempted | ProbeFailed | Expired | Disabled

/** An attempt was made. Times are wall times, as recorded. */
export interface Attempted {
  readonly _tag: "Attempt"
  readonly delivery: QueuedDelivery
  readonly attempt: number
  readonly at: number
  readonly latencyMs: number
  readonly outcome: Either.Either<number, DeliveryError>
  /** When the next attempt is due; undefined when this one was final. */
  readonly retryAt: number | undefined
  readonly span: AttemptSpan
}

/**
 * The attempt was the probe of the tenant's open circuit, and the tenant is still down: an outage,
 * not a verdict on this delivery, so it spends none of its attempts and leaves no record on it.
 */
export interface ProbeFailed {
  readonly _tag: "ProbeFailed"
  readonly delivery: QueuedDelivery
  /** Attempts made so far; the probe adds none. */
  readonly attempts: number
  readonly latencyMs: number
  readonly failure: DeliveryError
  readonly span: AttemptSpan
}

/** The event grew older than its hook's `maxAge` before it could be sent: it ends unsent. */
export interface Expired {
  readonly _tag: "Expired"
  readonly delivery: QueuedDelivery
  /** Attempts made so far; the expiry adds none. */
  readonly attempts: number
  readonly at: number
  readonly ageMs: number
  readonly maxAgeMs: number
}

/** The tenant is disabled: the delivery ends `failed` unsent, with lastError "disabled", so recover replays it. */
export interface Disabled {
  readonly _tag: "Disabled"
  readonly delivery: QueuedDelivery
  readonly attempts: number
  readonly at: number
}

/** While the store refuses a turn's records (a full disk, Redis away): from 100 ms, doubling, at most 2 s apart. */
const RECORD_RETRY = Schedule.union(Schedule.exponential(Duration.millis(100)), Schedule.spaced(Duration.seconds(2)))

/** What the log lines say of every delivery. */
const about = (d: QueuedDelivery) => ({ eventId: d.eventId, type: d.eventType, domain: d.domain, tenant: d.tenant, url: d.url })

/** An expiry or a disable finishes a delivery without an attempt (see AttemptRecord). */
const unsent = ({ delivery, attempts, at }: Expired | Disabled, error: string, final: "expired" | "failed"): RecordedAttempt => ({
  id: delivery.id,
  record: { attempt: attempts, at, status: null, error, latencyMs: 0, final, nextAttemptAt: at }
})

/**
 * Turns the outcomes that finish in one event-loop turn into one store write,
 * their metrics and their log lines (one per attempt, as the source article
 * asks), and the `delivery.failed` alerts of deliveries that ran out of
 * attempts, queued once the write shows them failed.
 */
export class AttemptRecorder extends Effect.Service<AttemptRecorder>()("AttemptRecorder", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* DeliveryQueue
    const tracing = yield* Tracing
    const alerts = yield* AlertQueue
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const alerting = config.alerts !== undefined
    const writes = new InFlight()
    let stopped = false

    const recordAll = (all: ReadonlyArray<Finished>) => {
      const records: Array<RecordedAttempt> = []
      const attempts: Array<Record<string, unknown>> = []
      const expiries: Array<Record<string, unknown>> = []
      const disables: Array<Record<string, unknown>> = []
      const probes: Array<Record<string, unknown>> = []
      // The alerts endpoint's own failures are not alerted about: that is where they would go.
      const failed: Array<Alert> = []
      for (const finished of all) {
        switch (finished._tag) {
          case "Attempt": {
            const { delivery, attempt, at, latencyMs, outcome, retryAt, span } = finished
            const final: AttemptRecord["final"] = Either.isRight(outcome) ? "delivered" : retryAt === undefined ? "failed" : undefined
            const seen = Either.isRight(outcome) ? { status: outcome.right, error: null, result: String(outcome.right) } : describeFailure(outcome.left)
            if (alerting && final === "failed" && delivery.tenant !== ALERTS_TENANT) failed.push(deliveryFailed(delivery, attempt, seen, at))
            Metrics.countAttempt({
              tenant: delivery.tenant,
              result: seen.result,
              seconds: latencyMs / 1000,
              final,
              retried: retryAt !== undefined,
              endToEndSeconds: final === "delivered" && delivery.eventCreatedAt !== null ? Math.max(0, at - delivery.eventCreatedAt) / 1000 : undefined
            })
            records.push({ id: delivery.id, record: { attempt, at, status: seen.status, error: seen.error, latencyMs, final, nextAttemptAt: retryAt ?? at } })
            attempts.push({ ...about(delivery), status: seen.status, error: seen.error, attempt, latencyMs, ...span.ids })
            break
          }
          case "ProbeFailed": {
            const { delivery, attempts, latencyMs, failure, span } = finished
            const seen = describeFailure(failure)
            Metrics.countAttempt({ tenant: delivery.tenant, result: seen.result, seconds: latencyMs / 1000, final: undefined, retried: false, endToEndSeconds: undefined })
            probes.push({ ...about(delivery), status: seen.status, error: seen.error, attempts, latencyMs, ...span.ids })
            break
          }
          case "Expired":
            Metrics.countExpired(finished.delivery.tenant)
            records.push(unsent(finished, "expired", "expired"))
            expiries.push({ ...about(finished.delivery), attempts: finished.attempts, ageMs: finished.ageMs, maxAgeMs: finished.maxAgeMs })
            break
          case "Disabled":
            Metrics.countDisabled(finished.delivery.tenant)
            records.push(unsent(finished, DISABLED_ERROR, "failed"))
            disables.push({ ...about(finished.delivery), attempts: finished.attempts })
            break
        }
      }
      const record = store.recordAttempts(records)
      const refused = (e: StoreUnavailable) => Effect.logError("delivery attempts not recorded; trying again", e.cause)
      const recorded = record.pipe(
        // The tenant may have the event already; what the store shows must catch up, or the delivery would stay pending unsent.
        // The retry is set up only once a write has failed: the usual turn pays for none of it.
        Effect.catchTag("StoreUnavailable", (e) =>
          Effect.zipRight(refused(e), Effect.retry(Effect.tapError(record, refused), { schedule: RECORD_RETRY, while: () => !stopped }))
        ),
        // Once recorded: an alert never tells of a failure the store does not show.
        (recording) => (failed.length === 0 ? recording : Effect.zipRight(recording, alerts.storeAll(failed))),
        Effect.catchTag("StoreUnavailable", (e) => Effect.logError("delivery attempts not recorded: the deliveries stay pending, sent again at the next start", e.cause))
      )
      const logged = Effect.zipRight(
        Effect.zipRight(logEach("delivery attempt", attempts), logEach("circuit probe failed: the delivery waits for the tenant, its attempts unspent", probes)),
        Effect.zipRight(logEach("delivery expired", expiries), logEach("delivery not sent: tenant disabled", disables))
      )
      return Effect.zipRight(recorded, logged).pipe(
        tracing.batch("record delivery attempts", all, (f) => (f._tag === "Attempt" || f._tag === "ProbeFailed" ? f.span.traceparent : f.delivery.trace))
      )
    }

    const turn = new TurnBatch<{ readonly finished: Finished; readonly recorded: () => void }>((batch) => {
      void writes.track(run(recordAll(batch.map((b) => b.finished))).finally(() => batch.forEach((b) => b.recorded())))
    })

    return {
      /** Resolves once the outcome is on record, written with the others that finished in this turn. */
      recorded: (finished: Finished) => new Promise<void>((recorded) => turn.add({ finished, recorded })),
      /** Writes what finished in this turn now. */
      flush: turn.flush,
      /** At shutdown: a record the store refuses is tried no more (its deliveries stay pending). */
      stop: () => {
        stopped = true
      },
      writes
    }
  })
}) {}
