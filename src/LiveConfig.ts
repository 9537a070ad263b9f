import { watch } from "node:fs"
import { stat } from "node:fs/promises"
import { basename, dirname } from "node:path"
import { Context, Duration, Effect, Either, Layer, Queue, Schedule, Schema, Stream, SubscriptionRef } from "effect"
import { parseConfigText, RouterConfig } from "./domain/Config.ts"

const STABLE_AFTER = Duration.millis(100)

/** The keys an edit of the file applies while the router runs; every other key is read at start. */
const RELOADED_KEYS: ReadonlyArray<string> = ["hooks", "numbers", "signing.secret", "admin.tokens", "admin.tenantTokens", "admin.metricsToken"]

// Compared as encoded: decoded, secrets are Redacted and print alike whatever they hold.
const encodeConfig = Schema.encodeSync(RouterConfig)

const isSection = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The dotted keys whose values differ, down to the leaves (a duration or a list is one value). */
const changedKeys = (before: unknown, after: unknown, path = ""): ReadonlyArray<string> => {
  if (JSON.stringify(before) === JSON.stringify(after)) return []
  if (!isSection(before) || !isSection(after)) return [path]
  return [...new Set([...Object.keys(before), ...Object.keys(after)])].flatMap((key) =>
    changedKeys(before[key], after[key], path ? `${path}.${key}` : key)
  )
}

/** Keys whose edits only a restart applies; the reload says so rather than ignoring them silently. */
const needsRestart = (running: RouterConfig, edited: RouterConfig): ReadonlyArray<string> =>
  changedKeys(encodeConfig(running), encodeConfig(edited)).filter((key) => !RELOADED_KEYS.includes(key))

/** Edits that would leave the reloaded keys at odds with what is read only at start: the whole edit waits for a restart. */
const refusedWhileRunning = (running: RouterConfig, edited: RouterConfig): { readonly key: string; readonly problem: string } | undefined => {
  // Hooks without a secret of their own in the HTTP source, and alerts, may still need it.
  if (running.signing.secret !== undefined && edited.signing.secret === undefined) {
    return { key: "signing.secret", problem: "cannot be removed while the router runs (change it, or restart without it)" }
  }
  // The file's numbers would be read in the new country, calls' numbers still in the old one.
  if (running.defaultCountry !== edited.defaultCountry) return { key: "defaultCountry", problem: "changes only with a restart (the numbers in the file are read in it)" }
  return undefined
}

/**
 * The config as the file says now: what was read at start, replaced by each
 * edit that decodes. The file is watched (its folder, since editors save by
 * renaming a new file over the old) and also checked every `reload.interval`
 * in case a watch event is missed. An edit that does not decode is logged
 * with its reason and the last good config stays in force. Its users read only
 * the keys that reload (RELOADED_KEYS); the rest of the router keeps AppConfig.
 */
export class LiveConfig extends Context.Tag("LiveConfig")<
  LiveConfig,
  {
    readonly current: SubscriptionRef.SubscriptionRef<RouterConfig>
    /** The file it is kept current from, if any (for log lines). */
    readonly path: string | undefined
  }
>() {
  /**
   * `config`, kept current from `file` when it is given (`text`: what `config` was decoded
   * from, so an unchanged file is not decoded again); without one, fixed (tests, configs given in code).
   */
  static readonly layer = (config: RouterConfig, file?: { readonly path: string; readonly text: string }) =>
    file === undefined
      ? Layer.effect(LiveConfig, Effect.map(SubscriptionRef.make(config), (current) => ({ current, path: undefined })))
      : LiveConfig.watch(file.path, config, file.text)

  private static readonly watch = (path: string, config: RouterConfig, startedWith: string) =>
    Layer.scoped(
      LiveConfig,
      Effect.gen(function* () {
        const current = yield* SubscriptionRef.make(config)
        let lastText = startedWith
        let lastStamp = ""

        const check = Effect.gen(function* () {
          const info = yield* Effect.tryPromise(() => stat(path))
          const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
          if (stamp === lastStamp) return
          lastStamp = stamp
          const text = yield* Effect.tryPromise(() => Bun.file(path).text())
          if (text === lastText) return
          // A writer may still be at it (an in-place save is not atomic): only a text that holds still is read.
          yield* Effect.sleep(STABLE_AFTER)
          if ((yield* Effect.tryPromise(() => Bun.file(path).text())) !== text) {
            lastStamp = ""
            return
          }
          lastText = text
          const decoded = parseConfigText(text, process.env)
          if (Either.isLeft(decoded)) {
            return yield* Effect.logWarning("config edit refused; the last good config stays in force").pipe(
              Effect.annotateLogs({ path, key: decoded.left.key, problem: decoded.left.problem })
            )
          }
          const refused = refusedWhileRunning(yield* SubscriptionRef.get(current), decoded.right)
          if (refused !== undefined) {
            return yield* Effect.logWarning("config edit refused; the last good config stays in force").pipe(Effect.annotateLogs({ path, ...refused }))
          }
          const restart = needsRestart(config, decoded.right)
          if (restart.length > 0) yield* Effect.logWarning("config edit needs a restart").pipe(Effect.annotateLogs({ path, keys: restart.join(", ") }))
          yield* SubscriptionRef.set(current, decoded.right)
        }).pipe(Effect.catchAll((error) => Effect.logWarning("config file unreadable; keeping the last good config", error)))

        // Watch events only say "look now"; a burst of them (write, rename, chmod) becomes one check.
        const pokes = yield* Queue.sliding<void>(1)
        yield* Effect.acquireRelease(
          Effect.sync(() =>
            watch(dirname(path), (_, file) => {
              if (file === null || file === basename(path)) Queue.unsafeOffer(pokes, undefined)
            })
          ),
          (watcher) => Effect.sync(() => watcher.close())
        )
        yield* check
        const polled = Stream.fromSchedule(Schedule.spaced(config.reload.interval))
        const watched = Stream.fromQueue(pokes).pipe(Stream.debounce(Duration.millis(50)))
        yield* Stream.merge(polled, watched).pipe(Stream.runForEach(() => check), Effect.forkScoped)
        return { current, path }
      })
    )
}
