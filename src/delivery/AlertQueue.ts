import { Effect, Runtime } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { alertDelivery, type Alert } from "../domain/Alert.ts"
import type { NewDelivery } from "../domain/Delivery.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { TurnBatch } from "../TurnBatch.ts"
import { EventStore } from "../store/EventStore.ts"
import type { Acceptance, AcceptResult } from "../store/Store.ts"
import { EngineClock, type Timer } from "./EngineClock.ts"
import { InFlight } from "./InFlight.ts"
import { LaneWindow } from "./LaneWindow.ts"

// An alert the store could not take is raised again after this long: an outage of the store is when alerts matter most.
const RAISE_AGAIN_MS = 1_000

/** An alert is accepted like an event: its id is its dedupe key, so it is stored once, whoever raises it again. */
export const alertAcceptance = (delivery: NewDelivery, at: number): Acceptance => ({
  eventId: delivery.eventId,
  receivedAt: at,
  delivery,
  pinChange: undefined,
  unroutable: undefined
})

/**
 * Operational alerts on their way to the alerts endpoint: stored like events
 * (so each is made once, across restarts and instances) and queued as
 * deliveries to the `@alerts` pseudo-tenant. Ingest stores its
 * `domain.unroutable` alerts in its own batch's write and hands the results
 * here; the delivery engine raises the rest, which are stored together at the
 * end of the turn.
 */
export class AlertQueue extends Effect.Service<AlertQueue>()("AlertQueue", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* EventStore
    const window = yield* LaneWindow
    const clock = yield* EngineClock
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const writes = new InFlight()
    const timers = new Set<Timer>()
    let stopped = false

    /**
     * Counts and queues the alerts the store just took; a duplicate was queued (and counted) where
     * it was first raised. One taken while stopping waits in the store for the next start.
     */
    const enqueueAccepted = (accepted: ReadonlyArray<AcceptResult>) => {
      for (const result of accepted) {
        if (result._tag !== "Accepted" || !result.delivery) continue
        Metrics.count(Metrics.alerts, { type: result.delivery.eventType })
        if (!stopped) window.enqueueAll([result.delivery])
      }
    }

    const raiseLater = (alerts: ReadonlyArray<Alert>) => {
      if (stopped) return
      const timer = clock.after(RAISE_AGAIN_MS, () => {
        timers.delete(timer)
        alerts.forEach(raise)
      })
      timers.add(timer)
    }

    /** Stores and queues the alerts. An alert the store cannot take is logged and raised again, never a delivery's failure. */
    const storeAll = (alerts: ReadonlyArray<Alert>): Effect.Effect<void> => {
      const acceptances = alerts.flatMap((alert) => {
        const delivery = alertDelivery(config.alerts, alert)
        return delivery === undefined ? [] : [alertAcceptance(delivery, alert.at)]
      })
      if (acceptances.length === 0) return Effect.void
      return store.acceptAll(acceptances).pipe(
        Effect.map(enqueueAccepted),
        Effect.catchTag("StoreUnavailable", (e) =>
          Effect.logWarning("alerts not queued yet; will retry", e.cause).pipe(
            Effect.annotateLogs({ alerts: acceptances.map((a) => a.eventId) }),
            Effect.zipRight(Effect.sync(() => raiseLater(alerts)))
          )
        )
      )
    }

    const raised = new TurnBatch<Alert>((alerts) => void writes.track(run(storeAll(alerts))))
    function raise(alert: Alert) {
      if (config.alerts !== undefined) raised.add(alert)
    }

    return {
      /** Raises an alert: stored with the others raised in this turn. */
      raise,
      storeAll,
      enqueueAccepted,
      writes,
      /** Stores what was raised in this turn now. */
      flush: raised.flush,
      /** Alerts stored from now on wait in the store for the next start. */
      stop: () => {
        stopped = true
        for (const timer of timers) timer.cancel()
      }
    }
  })
}) {}
