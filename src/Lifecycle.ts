import { Effect, Ref } from "effect"

/**
 * Whether the router is shutting down. While draining it refuses new webhooks
 * (503, so LiveKit retries them elsewhere or later), reports not ready, and
 * starts no new delivery attempts.
 */
export class Lifecycle extends Effect.Service<Lifecycle>()("Lifecycle", {
  effect: Effect.map(Ref.make(false), (draining) => ({
    isDraining: Ref.get(draining),
    beginDrain: Ref.set(draining, true)
  }))
}) {}
