import { Context, Effect, Layer, Redacted, Schema, Stream, SubscriptionRef } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import { HookSet, type WebhookSecret } from "../domain/Hook.ts"
import { LiveConfig } from "../LiveConfig.ts"

/** The config file's part of the hook table: its hooks and numbers, and `signing.secret`, all reloaded on edit. */
export interface FileHookSet extends HookSet {
  readonly signingSecret: WebhookSecret | undefined
}

const hookSetOf = (config: RouterConfig): FileHookSet => ({ hooks: config.hooks, numbers: config.numbers, signingSecret: config.signing.secret })

// Compared as encoded: decoded, secrets are Redacted and print alike whatever they hold.
const encodeHookSet = Schema.encodeSync(HookSet)
const secretText = (secret: WebhookSecret | undefined) => (secret === undefined ? undefined : Redacted.value(secret))
const sameHooks = (a: FileHookSet, b: FileHookSet) =>
  JSON.stringify(encodeHookSet(a)) === JSON.stringify(encodeHookSet(b)) && secretText(a.signingSecret) === secretText(b.signingSecret)

/** The hooks, numbers and default secret of the config file, kept current while the router runs (see LiveConfig). */
export class FileHooks extends Context.Tag("FileHooks")<FileHooks, SubscriptionRef.SubscriptionRef<FileHookSet>>() {
  static readonly Default = Layer.scoped(
    FileHooks,
    Effect.gen(function* () {
      const config = yield* LiveConfig
      const current = yield* SubscriptionRef.make(hookSetOf(yield* SubscriptionRef.get(config.current)))
      yield* config.current.changes.pipe(
        Stream.runForEach((edited) =>
          Effect.gen(function* () {
            const next = hookSetOf(edited)
            const held = yield* SubscriptionRef.get(current)
            // The config it was made from (the stream's first value): encoding a large table to compare it is most of a start.
            if (next.hooks === held.hooks && next.numbers === held.numbers && next.signingSecret === held.signingSecret) return
            // Comments and other keys change the file, not the table.
            if (sameHooks(next, held)) return
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
