import { Effect } from "effect"

/**
 * Whether the router is shutting down. While draining it refuses new webhooks
 * (503, so LiveKit retries them elsewhere or later), reports not ready, and
 * starts no new delivery attempts.
 */
export class Lifecycle extends Effect.Service<Lifecycle>()("Lifecycle", {
  sync: () => {
    let draining = false
    return {
      isDraining: Effect.sync(() => draining),
      /** The same, as a plain read for the hot path. */
      draining: () => draining,
      beginDrain: Effect.sync(() => {
        draining = true
      })
    }
  }
}) {}
