import { Effect, Layer, RuntimeFlags, Supervisor } from "effect"

/**
 * Counts the Effect operations the runtime executes, for the benchmark's
 * "Effect steps per event". Off unless ROUTER_COUNT_EFFECT_STEPS=1: op
 * supervision costs a call per step. The total is logged when the router stops.
 */
class StepCounter extends Supervisor.AbstractSupervisor<number> {
  steps = 0
  get value() {
    return Effect.sync(() => this.steps)
  }
  override onEffect() {
    this.steps++
  }
}

export const EffectStepsLive = (enabled: boolean): Layer.Layer<never> => {
  if (!enabled) return Layer.empty
  const counter = new StepCounter()
  return Layer.mergeAll(
    Supervisor.addSupervisor(counter),
    RuntimeFlags.enableOpSupervision,
    Layer.scopedDiscard(Effect.addFinalizer(() => Effect.log("effect steps").pipe(Effect.annotateLogs({ steps: counter.steps }))))
  )
}
