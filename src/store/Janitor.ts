import { Clock, Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { Retention } from "./Retention.ts"
import type { RetentionPolicy } from "./Store.ts"

/**
 * Prunes what retention no longer keeps (finished deliveries, old dedupe ids,
 * unroutable records, stale pins) at start and every `retention.interval`, so
 * the store does not grow without bound. Pending deliveries are never pruned.
 */
export const JanitorLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* Retention
    const { retention } = config
    const policy: RetentionPolicy = {
      delivered: Duration.toMillis(retention.delivered),
      failed: Duration.toMillis(retention.failed),
      dedupe: Duration.toMillis(retention.dedupe),
      unroutable: Duration.toMillis(retention.unroutable),
      pins: Duration.toMillis(retention.pins)
    }
    const pruneOnce = Effect.gen(function* () {
      const pruned = yield* store.prune(yield* Clock.currentTimeMillis, policy)
      if (Object.values(pruned).some((n) => n > 0)) yield* Effect.log("pruned").pipe(Effect.annotateLogs({ ...pruned }))
    }).pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning("prune failed; will try again", e.cause)))
    yield* pruneOnce.pipe(Effect.repeat(Schedule.spaced(retention.interval)), Effect.forkScoped)
  })
)
