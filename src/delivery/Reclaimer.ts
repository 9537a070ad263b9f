import { Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import { LaneWindow } from "./LaneWindow.ts"
import { Leases } from "../store/Leases.ts"

/**
 * For a shared store: renews this instance's lease three times per lease (one
 * heartbeat, whatever it holds), so a live instance keeps what it holds however
 * long its retries wait, and twice per lease takes over what dead instances
 * held, a page at a time until nothing is left, telling the Forwarder, which
 * resumes each delivery at its recorded attempt count and retry time.
 */
export const ReclaimerLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const leases = yield* Leases
    const window = yield* LaneWindow
    const lease = config.store.lease
    const every = (times: number, task: Effect.Effect<void, StoreUnavailable>, what: string) =>
      task.pipe(
        Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning(`${what} failed; will try again`, e.cause)),
        Effect.repeat(Schedule.spaced(Duration.unsafeDivide(lease, times))),
        Effect.forkScoped
      )
    /** One page; the next follows at once while pages come, so a large take-over is not spread over many leases. */
    const takeOver: Effect.Effect<void, StoreUnavailable> = Effect.gen(function* () {
      const claimed = yield* leases.claimStale
      if (claimed.length === 0) return
      yield* Effect.log("took over deliveries").pipe(Effect.annotateLogs({ count: claimed.length }))
      window.resumeClaimed(claimed)
      yield* Effect.yieldNow()
      yield* takeOver
    })
    yield* every(3, leases.renewLeases, "lease renewal")
    yield* every(2, takeOver, "claiming stale deliveries")
  })
)
