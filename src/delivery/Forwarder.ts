import { Duration, Effect, Layer } from "effect"
import { AlertQueue } from "./AlertQueue.ts"
import { AttemptRecorder } from "./AttemptRecorder.ts"
import { DeliveryAdmin } from "./DeliveryAdmin.ts"
import { DeliveryAttempt } from "./DeliveryAttempt.ts"
import { LaneWindow } from "./LaneWindow.ts"
import { TenantGate } from "./TenantGate.ts"
import { TenantHealthTracker } from "./TenantHealthTracker.ts"

/**
 * Delivers accepted events to tenants in the background, durably: every
 * attempt is recorded before the next decision, so a restart resumes exactly
 * where the last run stopped. It wires the engine's parts: the window of lanes
 * (which delivery next), the attempt (one delivery through the tenant's gate
 * to an outcome), the recorder (outcomes into records, metrics and log lines),
 * the health tracker (failing streaks, auto-disable) and the alert queue; and
 * it stops them in order, so that nothing the store took is lost.
 */
export class Forwarder extends Effect.Service<Forwarder>()("Forwarder", {
  scoped: Effect.gen(function* () {
    const window = yield* LaneWindow
    const attempt = yield* DeliveryAttempt
    const recorder = yield* AttemptRecorder
    const health = yield* TenantHealthTracker
    const alerts = yield* AlertQueue
    const gate = yield* TenantGate

    // After the drain: attempts still in flight are cut off (their deliveries stay pending), and
    // what finished is written, with the alerts and health changes it causes, before the store closes.
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        attempt.stop()
        window.stop()
        alerts.stop()
        recorder.stop()
        for (;;) {
          recorder.flush()
          alerts.flush()
          if (recorder.writes.size + health.writes.size + alerts.writes.size === 0) break
          await Promise.all([recorder.writes.settled(), health.writes.settled(), alerts.writes.settled()])
        }
      })
    )

    yield* window.start(attempt.attemptHead, health.isDisabled)

    return {
      /** Waits, up to `timeout`, for attempts in flight to finish; pending work stays in the store. */
      // Shutdown runs this in a finalizer, where nothing is interruptible: the wait must be, or the timeout could not end it.
      drain: (timeout: Duration.Duration) => Effect.timeoutOption(Effect.interruptible(gate.awaitIdle), timeout)
    }
  })
}) {}

/** The engine with all its parts, over what it is given: the store, the hook table, the sender, the clock, tracing and the lifecycle. */
export const DeliveryEngineLive = Layer.mergeAll(Forwarder.Default, DeliveryAdmin.Default).pipe(
  Layer.provideMerge(DeliveryAttempt.Default),
  Layer.provideMerge(Layer.mergeAll(AttemptRecorder.Default, TenantHealthTracker.Default)),
  Layer.provideMerge(AlertQueue.Default),
  Layer.provideMerge(Layer.mergeAll(LaneWindow.Default, TenantGate.Default))
)
