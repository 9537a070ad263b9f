import { Context, Effect, Layer, Schema, Stream, SubscriptionRef } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import { HookSet } from "../domain/Hook.ts"
import { LiveConfig } from "../LiveConfig.ts"

const hookSetOf = (config: RouterConfig): HookSet => ({ hooks: config.hooks, numbers: config.numbers })

// Compared as encoded: decoded, secrets are Redacted and print alike whatever they hold.
const encodeHookSet = Schema.encodeSync(HookSet)
const sameHooks = (a: HookSet, b: HookSet) => JSON.stringify(encodeHookSet(a)) === JSON.stringify(encodeHookSet(b))

/** The hooks and numbers of the config file, kept current while the router runs (see LiveConfig). */
export class FileHooks extends Context.Tag("FileHooks")<FileHooks, SubscriptionRef.SubscriptionRef<HookSet>>() {
  static readonly Default = Layer.scoped(
    FileHooks,
    Effect.gen(function* () {
      const config = yield* LiveConfig
      const current = yield* SubscriptionRef.make(hookSetOf(yield* SubscriptionRef.get(config.current)))
      yield* config.current.changes.pipe(
        Stream.runForEach((edited) =>
          Effect.gen(function* () {
            const next = hookSetOf(edited)
            // Comments and other keys change the file, not the table.
            if (sameHooks(next, yield* SubscriptionRef.get(current))) return
            yield* SubscriptionRef.set(current, next)
            yield* Effect.log("hooks reloaded").pipe(Effect.annotateLogs({ path: config.path, hooks: next.hooks.length, numbers: next.numbers.length }))
          })
        ),
        Effect.forkScoped
      )
      return current
    })
  )
}
