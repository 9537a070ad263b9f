import { Effect, Layer, Schedule } from "effect"
import * as Metrics from "../telemetry/Metrics.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import { EngineClock } from "./EngineClock.ts"

/** The queue's depth and the age of its oldest pending delivery, as gauges, read from the store every second. */
export const QueueGaugesLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const store = yield* DeliveryQueue
    const clock = yield* EngineClock
    const publish = store.queueStats.pipe(
      Effect.map((stats) => {
        Metrics.set(Metrics.queueDepth, stats.depth)
        Metrics.set(Metrics.oldestPending, stats.oldestQueuedAt === undefined ? 0 : Math.max(0, clock.wallMs() - stats.oldestQueuedAt) / 1000)
      }),
      Effect.catchTag("StoreUnavailable", () => Effect.void)
    )
    yield* publish.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)
  })
)
