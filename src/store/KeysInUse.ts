import { Effect, Option, Redacted } from "effect"
import { Conflict, StoreUnavailable } from "../domain/Errors.ts"
import { SealError, sealedKeyId } from "../domain/SecretBox.ts"
import { SECRET_CACHE_KEYS } from "./HookStore.ts"
import { hookSecrets, unopenable, type Sealer } from "./Sealing.ts"
import type { SecretsAtRest } from "./SecretsAtRest.ts"
import type { BackendHooks, Resealing, StoreBackend } from "./StoreBackend.ts"

/**
 * The ids of the keys the store's values are sealed with, a cached JSON list: read at start, so a
 * store whose key is missing is refused before any value is read, without reading them all.
 */
const KEYS_IN_USE = "encryption-keys"

const keysInUse = (hooks: BackendHooks) =>
  Effect.flatMap(hooks.cached(KEYS_IN_USE), (value) =>
    Effect.try({
      try: () => Option.match(value, { onNone: (): ReadonlyArray<string> => [], onSome: (json) => JSON.parse(json) as ReadonlyArray<string> }),
      catch: () => new StoreUnavailable({ cause: `the store's ${KEYS_IN_USE} record is not a list of key ids` })
    })
  )

const SETTING = "store.encryptionKey (or ROUTER_ENCRYPTION_KEY)"

/**
 * Refuses a store that holds values sealed with a key `box` lacks, naming the setting; records the
 * key that seals from now on. Without a key, warns once that secrets are stored unencrypted.
 */
export const checkKeys = (hooks: BackendHooks, box: Sealer) =>
  Effect.gen(function* () {
    const inUse = yield* keysInUse(hooks)
    const missing = inUse.filter((id) => !box.keys.some((key) => key.id === id))
    if (missing.length > 0) {
      const named = `key${missing.length === 1 ? "" : "s"} ${missing.join(", ")}`
      return yield* new StoreUnavailable({
        cause:
          box.keys.length === 0
            ? `the store holds secrets encrypted with ${named}: set ${SETTING} to the key it was written with`
            : `the store holds secrets encrypted with ${named}, which ${SETTING} does not list: list it after the first key until the reencrypt command has run`
      })
    }
    const first = box.keys[0]
    if (first === undefined) {
      return yield* Effect.logWarning(`${SETTING} is not set: hook secrets, credentials and header values are stored unencrypted`)
    }
    if (!inUse.includes(first.id)) yield* hooks.cache(KEYS_IN_USE, JSON.stringify([...inUse, first.id]))
    yield* Effect.log("secrets are stored encrypted").pipe(Effect.annotateLogs({ keyId: first.id }))
  })

/** Deliveries as read, their secrets opened. Every read opens, keys or none: a sealed secret must never be signed with as it is. */
export const opening = <D extends { readonly secret: Redacted.Redacted<string> | null }>(
  read: Effect.Effect<ReadonlyArray<D>, StoreUnavailable>,
  box: Sealer
): Effect.Effect<ReadonlyArray<D>, StoreUnavailable> =>
  Effect.flatMap(read, (deliveries) =>
    Effect.try({
      try: () =>
        deliveries.map((d) => {
          if (d.secret === null) return d
          const text = Redacted.value(d.secret)
          const opened = box.open(text)
          return opened === text ? d : { ...d, secret: Redacted.make(opened) }
        }),
      catch: unopenable
    })
  )

/** How re-encryption rewrites each value: sealed under the first key, unless it already is. */
const resealing = (box: Sealer, firstId: string): Resealing => {
  const again = (text: string) => (sealedKeyId(text) === firstId ? text : box.seal(box.open(text)))
  const changed = (before: string, after: string) => (after === before ? undefined : after)
  return {
    secret: (text) => changed(text, again(text)),
    hook: (json) => changed(json, JSON.stringify(hookSecrets(JSON.parse(json), again))),
    cached: (key, value) => (SECRET_CACHE_KEYS.has(key) ? changed(value, again(value)) : undefined)
  }
}

export const secretsAtRest = (backend: StoreBackend, box: Sealer): SecretsAtRest["Type"] => ({
  reencrypt: Effect.gen(function* () {
    const first = box.keys[0]
    if (first === undefined) return yield* new Conflict({ message: `${SETTING} is not set: there is no key to encrypt with` })
    const rewritten = yield* Effect.mapError(backend.reseal(resealing(box, first.id)), (error) =>
      error.cause instanceof SealError ? unopenable(error.cause) : error
    )
    // Every value is now sealed with the first key (or written since by a router sealing with it).
    yield* backend.hooks.cache(KEYS_IN_USE, JSON.stringify([first.id]))
    yield* Effect.log("secrets re-encrypted").pipe(Effect.annotateLogs({ keyId: first.id, rewritten }))
    return { rewritten, keyId: first.id }
  })
})
