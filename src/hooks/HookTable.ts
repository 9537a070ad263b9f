import { Clock, Duration, Effect, Stream, SubscriptionRef } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { BadRequest, Conflict, NotFound, type StoreUnavailable } from "../domain/Errors.ts"
import {
  targetProblem,
  type ActiveHook,
  type DefaultSigning,
  type ActiveNumber,
  type Hook,
  type HookOrigin,
  type HookSet,
  type NumberMapping,
  type StoredHook,
  type WebhookSecret
} from "../domain/Hook.ts"
import { clearedBy, patched, type Clearable, type HookPatch } from "../domain/HookViews.ts"
import { DEFAULT_SIGNER, overlapOf } from "../domain/SecretRotation.ts"
import { FileHooks } from "./FileHookSource.ts"
import { RemoteHooks } from "./HttpHookSource.ts"
import { SecretRotations } from "./SecretRotations.ts"
import { generateSecret } from "../domain/Signing.ts"
import { HookStore } from "../store/HookStore.ts"

/** An immutable, compiled hook table. Built once per change, read on every event. */
export interface Table {
  readonly exact: ReadonlyMap<string, ActiveHook>
  /** `*.example.com` is stored under `example.com`. */
  readonly wildcard: ReadonlyMap<string, ActiveHook>
  /** `wildcardDepths[n]` is true when some wildcard's suffix has n labels, so lookups try only those suffixes. */
  readonly wildcardDepths: ReadonlyArray<boolean>
  readonly numbers: ReadonlyMap<string, ActiveNumber>
  /** `signing.secret` in force, with its rotation: what signs hooks without a secret of their own. */
  readonly signing: DefaultSigning
}

/** Compiles hooks and numbers into lookup maps. Earlier entries win, so pass sources in order of precedence. */
export const compileTable = (hooks: Iterable<ActiveHook>, numbers: Iterable<ActiveNumber> = [], signing: DefaultSigning = { secret: undefined }): Table => {
  const exact = new Map<string, ActiveHook>()
  const wildcard = new Map<string, ActiveHook>()
  for (const hook of hooks) {
    if (!hook.host.startsWith("*.")) {
      if (!exact.has(hook.host)) exact.set(hook.host, hook)
    } else if (!wildcard.has(hook.host.slice(2))) wildcard.set(hook.host.slice(2), hook)
  }
  const wildcardDepths: Array<boolean> = []
  for (const suffix of wildcard.keys()) wildcardDepths[labelCount(suffix)] = true
  const byNumber = new Map<string, ActiveNumber>()
  for (const entry of numbers) if (!byNumber.has(entry.number)) byNumber.set(entry.number, entry)
  return { exact, wildcard, wildcardDepths, numbers: byNumber, signing }
}

const labelCount = (name: string) => {
  let labels = 1
  for (let dot = name.indexOf("."); dot !== -1; dot = name.indexOf(".", dot + 1)) labels++
  return labels
}

/**
 * Finds the hook for a host: exact match first, then the longest wildcard suffix.
 * `*.example.com` matches any deeper subdomain but not `example.com` itself.
 * Cost is one map lookup, plus one per label depth that some wildcard has.
 */
export const matchHost = (table: Table, host: string): ActiveHook | undefined => {
  const name = host.toLowerCase()
  const exact = table.exact.get(name)
  if (exact || table.wildcard.size === 0) return exact
  // Walking left to right tries the longest suffix first; `depth` is the labels right of `dot`.
  let depth = labelCount(name) - 1
  for (let dot = name.indexOf("."); dot !== -1; dot = name.indexOf(".", dot + 1), depth--) {
    if (!table.wildcardDepths[depth]) continue
    const hook = table.wildcard.get(name.slice(dot + 1))
    if (hook) return hook
  }
  return undefined
}

/** The hook a dialled number maps to, through the host it names. */
export const matchNumber = (table: Table, number: string): ActiveHook | undefined => {
  const entry = table.numbers.get(number)
  return entry && matchHost(table, entry.host)
}

/** The pattern's own entry (no wildcard expansion): what the admin API addresses. */
export const entryFor = (table: Table, pattern: string): ActiveHook | undefined =>
  pattern.startsWith("*.") ? table.wildcard.get(pattern.slice(2)) : table.exact.get(pattern)

/** The numbers whose host no hook of the table matches: their calls look unmapped. */
export const unmatchedNumbers = (table: Table): ReadonlyArray<ActiveNumber> => [...table.numbers.values()].filter((entry) => !matchHost(table, entry.host))

export const allHooks = (table: Table): ReadonlyArray<ActiveHook> =>
  [...table.exact.values(), ...table.wildcard.values()].sort((a, b) => a.host.localeCompare(b.host))

const tagged = <A>(items: ReadonlyArray<A>, source: HookOrigin) => items.map((item) => ({ ...item, source }))

/** The one table in force: the config file first, then the HTTP source, then the admin API. */
export const mergeSources = (
  file: HookSet,
  remote: HookSet,
  api: { hooks: Iterable<StoredHook>; numbers: Iterable<NumberMapping> },
  signing: DefaultSigning = { secret: undefined }
) =>
  compileTable(
    [...tagged(file.hooks, "file"), ...tagged(remote.hooks, "http"), ...tagged([...api.hooks], "api")],
    [...tagged(file.numbers, "file"), ...tagged(remote.numbers, "http"), ...tagged([...api.numbers], "api")],
    signing
  )

const owned = (what: string, source: HookOrigin) =>
  new Conflict({
    message:
      source === "file"
        ? `${what} is defined in the config file; change it there`
        : `${what} comes from the HTTP hook source; change it there`
  })

/**
 * The hook table in force, merged from the config file (reloaded on edit),
 * the optional HTTP source and the admin API (persisted in the HookStore), and
 * swapped atomically whenever one of them changes. Calls already pinned keep
 * their destination; the table only decides new calls.
 */
export class HookTable extends Effect.Service<HookTable>()("HookTable", {
  dependencies: [SecretRotations.Default],
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* HookStore
    const fileHooks = yield* FileHooks
    const remoteHooks = yield* RemoteHooks
    const rotations = yield* SecretRotations
    const apiHooks = new Map<string, StoredHook>((yield* store.apiHooks).map((hook) => [hook.host, hook]))
    const apiNumbers = new Map<string, NumberMapping>((yield* store.apiNumbers).map((entry) => [entry.number, entry]))

    /**
     * The sources merged, each file and HTTP hook with the rotation of the secret it
     * signs with (its own, else the default), so a secret changed in either source
     * overlaps like an API rotation. Only the hook in force for a host is a signer.
     */
    const build = Effect.gen(function* () {
      const file = yield* SubscriptionRef.get(fileHooks)
      const remote = yield* SubscriptionRef.get(remoteHooks)
      const fileHosts = remote.hooks.length === 0 ? undefined : new Set(file.hooks.map((hook) => hook.host))
      const signed = fileHosts === undefined ? file.hooks : [...file.hooks, ...remote.hooks.filter((hook) => !fileHosts.has(hook.host))]
      const rotated = yield* rotations.observe(signed, file.signingSecret)
      // Most hooks have no rotation under way: they stay the objects (and lists) the source made.
      const overlapping = Object.values(rotated).some((rotation) => rotation.previous !== undefined)
      const withRotation = (hooks: ReadonlyArray<Hook>) =>
        !overlapping
          ? hooks
          : hooks.map((hook): Hook => {
              const overlap = overlapOf(rotated[hook.host], hook.secret ?? file.signingSecret)
              return overlap.previousSecret === undefined ? hook : { ...hook, ...overlap }
            })
      return mergeSources(
        { hooks: withRotation(file.hooks), numbers: file.numbers },
        { hooks: withRotation(remote.hooks), numbers: remote.numbers },
        { hooks: apiHooks.values(), numbers: apiNumbers.values() },
        { secret: file.signingSecret, ...overlapOf(rotated[DEFAULT_SIGNER], file.signingSecret) }
      )
    })
    // Swapped whole by each rebuild; readers always see one complete table.
    let inForce = yield* build
    /**
     * A source can drop the hook another source's number names (a file edit removing the hook of an
     * API number): the table keeps the number, and says so once, naming the numbers, each time the set changes.
     */
    let unmatchedReported = ""
    const reportUnmatched = (table: Table) => {
      const unmatched = unmatchedNumbers(table)
      const said = unmatched.map((entry) => `${entry.number} -> ${entry.host} (${entry.source})`)
      if (said.join() === unmatchedReported) return Effect.void
      unmatchedReported = said.join()
      return said.length === 0
        ? Effect.void
        : Effect.logWarning("numbers mapped to a host no hook matches: their calls are unmapped").pipe(
            Effect.annotateLogs({ count: said.length, numbers: said.slice(0, 20).join(", ") })
          )
    }
    yield* reportUnmatched(inForce)
    // One rebuild at a time, each reading every source afresh, so a slow one cannot install a stale table.
    const rebuildLock = yield* Effect.makeSemaphore(1)
    const rebuild = rebuildLock.withPermits(1)(
      Effect.flatMap(build, (next) =>
        Effect.suspend(() => {
          inForce = next
          return reportUnmatched(next)
        })
      )
    )
    yield* Stream.merge(fileHooks.changes, remoteHooks.changes).pipe(Stream.runForEach(() => rebuild), Effect.forkScoped)

    // Serialises API writes so the store and the in-memory table never disagree.
    const writeLock = yield* Effect.makeSemaphore(1)
    const serialised = writeLock.withPermits(1)

    // Another instance changed the API entries, or the subscription was re-made and may have missed some: reload them all.
    const reloadApi = serialised(
      Effect.gen(function* () {
        const [hooks, numbers] = yield* Effect.all([store.apiHooks, store.apiNumbers])
        apiHooks.clear()
        for (const hook of hooks) apiHooks.set(hook.host, hook)
        apiNumbers.clear()
        for (const entry of numbers) apiNumbers.set(entry.number, entry)
        yield* rebuild
      })
    ).pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning("could not reload the API hooks; the table in force stays", e.cause)))
    yield* store.apiChanges.pipe(Stream.runForEach(() => reloadApi), Effect.forkScoped)

    /** The API's own entry, or none; an entry from the file or the HTTP source is a Conflict. */
    const apiOwned = <E extends { readonly source: HookOrigin }>(what: string, find: (t: Table) => E | undefined) =>
      Effect.suspend(() => {
        const entry = find(inForce)
        return entry && entry.source !== "api" ? Effect.fail(owned(what, entry.source)) : Effect.succeed(entry)
      })
    const apiOwnedHook = (host: string) => apiOwned(`hook ${host}`, (t) => entryFor(t, host))
    const apiOwnedNumber = (number: string) => apiOwned(`number ${number}`, (t) => t.numbers.get(number))

    /** Registration-time check of a hook's target (400 naming `url`). */
    const checkTarget = (url: string) => {
      const refused = targetProblem(url, config.security.allowPrivateTargets)
      return refused ? BadRequest.at("url", refused) : Effect.void
    }

    const saveHook = (hook: StoredHook) =>
      Effect.zipRight(
        store.putApiHook(hook),
        Effect.suspend(() => {
          apiHooks.set(hook.host, hook)
          return rebuild
        })
      )

    return {
      /** The table in force now, for lookups on every event. */
      inForce: (): Table => inForce,
      get: (host: string) => Effect.sync(() => entryFor(inForce, host)),
      list: Effect.sync(() => allHooks(inForce)),
      numbers: Effect.sync(() => [...inForce.numbers.values()].sort((a, b) => a.number.localeCompare(b.number))),

      /**
       * Creates or replaces an API hook. Without a secret, a replaced hook keeps
       * its own (and any rotation in progress); a new one gets a generated
       * secret, returned so the caller can show it once. A replaced hook loses
       * what the new one leaves out: `cleared` names it.
       */
      put: (
        hook: Hook
      ): Effect.Effect<
        { outcome: "created" | "updated"; generatedSecret: WebhookSecret | undefined; cleared: ReadonlyArray<Clearable> },
        BadRequest | Conflict | StoreUnavailable
      > =>
        serialised(
          Effect.gen(function* () {
            yield* checkTarget(hook.url)
            const existing = yield* apiOwnedHook(hook.host)
            const generatedSecret = hook.secret === undefined && existing?.secret === undefined ? generateSecret() : undefined
            const kept = hook.secret === undefined && existing ? { previousSecret: existing.previousSecret, previousSecretUntil: existing.previousSecretUntil } : {}
            yield* saveHook({ ...hook, secret: hook.secret ?? existing?.secret ?? generatedSecret, ...kept })
            return { outcome: existing ? "updated" : "created", generatedSecret, cleared: existing ? clearedBy(existing, hook) : [] }
          })
        ),

      /**
       * Changes only the fields an API hook is given; null removes an optional
       * one. A new secret replaces the old at once, as on PUT (rotateSecret is
       * the way with an overlap).
       */
      patch: (host: string, changes: HookPatch): Effect.Effect<{ cleared: ReadonlyArray<Clearable> }, BadRequest | Conflict | NotFound | StoreUnavailable> =>
        serialised(
          Effect.gen(function* () {
            const existing = yield* apiOwnedHook(host)
            if (!existing) return yield* new NotFound({ message: `no hook for ${host}` })
            if (changes.url !== undefined) yield* checkTarget(changes.url)
            const { source: _, ...stored } = existing
            const next = patched(stored, changes)
            if (changes.secret === undefined) yield* saveHook(next)
            else {
              const { previousSecret: _previous, previousSecretUntil: _until, ...replaced } = next
              yield* saveHook(replaced)
            }
            return { cleared: clearedBy(stored, next) }
          })
        ),

      /** Removes an API hook, unless numbers route through it that no other hook would take. */
      remove: (host: string): Effect.Effect<void, Conflict | NotFound | StoreUnavailable> =>
        serialised(
          Effect.gen(function* () {
            if (!(yield* apiOwnedHook(host))) return yield* new NotFound({ message: `no hook for ${host}` })
            const withoutIt = compileTable(allHooks(inForce).filter((hook) => hook.host !== host), inForce.numbers.values())
            const stranded = unmatchedNumbers(withoutIt).filter((entry) => matchHost(inForce, entry.host))
            if (stranded.length > 0) {
              const numbers = stranded.slice(0, 3).map((entry) => entry.number).join(", ")
              return yield* new Conflict({
                message: `${host} is the only hook for the numbers mapped to it (${numbers}${stranded.length > 3 ? ", ..." : ""}): remove or move them first (DELETE or PUT /v1/numbers/{number})`
              })
            }
            yield* store.removeApiHook(host)
            apiHooks.delete(host)
            yield* rebuild
          })
        ),

      /**
       * Gives an API hook a new secret. For `signing.rotationOverlap` the old one
       * keeps signing too, so the tenant can switch without losing a message.
       */
      rotateSecret: (host: string): Effect.Effect<{ secret: WebhookSecret; previousUntil: number }, Conflict | NotFound | StoreUnavailable> =>
        serialised(
          Effect.gen(function* () {
            const existing = yield* apiOwnedHook(host)
            if (!existing) return yield* new NotFound({ message: `no hook for ${host}` })
            const secret = generateSecret()
            const previousUntil = (yield* Clock.currentTimeMillis) + Duration.toMillis(config.signing.rotationOverlap)
            const { source: _, ...stored } = existing
            yield* saveHook({ ...stored, secret, previousSecret: existing.secret ?? inForce.signing.secret, previousSecretUntil: previousUntil })
            return { secret, previousUntil }
          })
        ),

      /** Maps a number to a host a hook in force matches (else its calls would look unmapped). */
      putNumber: (mapping: NumberMapping): Effect.Effect<"created" | "updated", BadRequest | Conflict | StoreUnavailable> =>
        serialised(
          Effect.gen(function* () {
            if (!matchHost(inForce, mapping.host)) {
              return yield* BadRequest.at("host", `no hook matches ${mapping.host}: add its hook first (PUT /v1/hooks/${mapping.host}), or map ${mapping.number} to a host one matches`)
            }
            const existing = yield* apiOwnedNumber(mapping.number)
            yield* store.putApiNumber(mapping)
            apiNumbers.set(mapping.number, mapping)
            yield* rebuild
            return existing ? "updated" : "created"
          })
        ),

      removeNumber: (number: string): Effect.Effect<void, Conflict | NotFound | StoreUnavailable> =>
        serialised(
          Effect.gen(function* () {
            if (!(yield* apiOwnedNumber(number))) return yield* new NotFound({ message: `no mapping for ${number}` })
            yield* store.removeApiNumber(number)
            apiNumbers.delete(number)
            yield* rebuild
          })
        )
    }
  })
}) {}
