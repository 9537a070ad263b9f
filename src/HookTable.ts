import { Effect, Ref } from "effect"
import { AppConfig } from "./AppConfig.ts"
import { Conflict, NotFound, type StoreUnavailable } from "./Domain/Errors.ts"
import type { ActiveHook, Hook } from "./Domain/Hook.ts"
import { Store } from "./Store.ts"

/** An immutable, compiled hook table. Built once per change, read on every event. */
export interface Table {
  readonly exact: ReadonlyMap<string, ActiveHook>
  /** `*.example.com` is stored under `example.com`. */
  readonly wildcard: ReadonlyMap<string, ActiveHook>
}

/** Compiles hooks into lookup maps. Earlier sources win, so pass the config file's hooks first. */
export const compileTable = (hooks: Iterable<ActiveHook>): Table => {
  const exact = new Map<string, ActiveHook>()
  const wildcard = new Map<string, ActiveHook>()
  for (const hook of hooks) {
    const [map, key] = hook.host.startsWith("*.") ? [wildcard, hook.host.slice(2)] : [exact, hook.host]
    if (!map.has(key)) map.set(key, hook)
  }
  return { exact, wildcard }
}

/**
 * Finds the hook for a host: exact match first, then the longest wildcard suffix.
 * `*.example.com` matches any deeper subdomain but not `example.com` itself.
 * Cost is one map lookup per label.
 */
export const matchHost = (table: Table, host: string): ActiveHook | undefined => {
  const name = host.toLowerCase()
  const exact = table.exact.get(name)
  if (exact) return exact
  for (let dot = name.indexOf("."); dot !== -1; dot = name.indexOf(".", dot + 1)) {
    const hook = table.wildcard.get(name.slice(dot + 1))
    if (hook) return hook
  }
  return undefined
}

/** The pattern's own entry (no wildcard expansion): what the admin API addresses. */
export const entryFor = (table: Table, pattern: string): ActiveHook | undefined =>
  pattern.startsWith("*.") ? table.wildcard.get(pattern.slice(2)) : table.exact.get(pattern)

export const allHooks = (table: Table): ReadonlyArray<ActiveHook> =>
  [...table.exact.values(), ...table.wildcard.values()].sort((a, b) => a.host.localeCompare(b.host))

/**
 * The hook table in force. Hooks from the config file take precedence and cannot
 * be changed through the API; API hooks are persisted in the Store.
 */
export class HookTable extends Effect.Service<HookTable>()("HookTable", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* Store
    const fileHooks: ReadonlyArray<ActiveHook> = config.hooks.map((hook) => ({ ...hook, source: "file" }))
    const build = (apiHooks: ReadonlyArray<Hook>) =>
      compileTable([...fileHooks, ...apiHooks.map((hook): ActiveHook => ({ ...hook, source: "api" }))])

    const table = yield* Ref.make(build(yield* store.apiHooks))
    // Serialises API writes so the store and the in-memory table never disagree.
    const writeLock = yield* Effect.makeSemaphore(1)
    const reload = Effect.flatMap(store.apiHooks, (hooks) => Ref.set(table, build(hooks)))

    const assertApiOwned = (host: string) =>
      Effect.flatMap(Ref.get(table), (t) =>
        entryFor(t, host)?.source === "file"
          ? Effect.fail(new Conflict({ message: `hook ${host} is defined in the config file; change it there` }))
          : Effect.succeed(entryFor(t, host))
      )

    return {
      match: (host: string) => Effect.map(Ref.get(table), (t) => matchHost(t, host)),
      get: (host: string) => Effect.map(Ref.get(table), (t) => entryFor(t, host)),
      list: Effect.map(Ref.get(table), allHooks),
      /** Creates or replaces an API hook; returns whether it was new. */
      put: (hook: Hook): Effect.Effect<"created" | "updated", Conflict | StoreUnavailable> =>
        writeLock.withPermits(1)(
          Effect.gen(function* () {
            const existing = yield* assertApiOwned(hook.host)
            yield* store.putApiHook(hook)
            yield* reload
            return existing ? "updated" : "created"
          })
        ),
      remove: (host: string): Effect.Effect<void, Conflict | NotFound | StoreUnavailable> =>
        writeLock.withPermits(1)(
          Effect.gen(function* () {
            const existing = yield* assertApiOwned(host)
            if (!existing) return yield* Effect.fail(new NotFound({ message: `no hook for ${host}` }))
            yield* store.removeApiHook(host)
            yield* reload
          })
        )
    }
  })
}) {}
