import { Either } from "effect"
import type { Destination, NewDelivery } from "../domain/Delivery.ts"
import { StoreUnavailable } from "../domain/Errors.ts"
import type { StoredHook } from "../domain/Hook.ts"
import { open, seal, SealError, type SecretKey } from "../domain/SecretBox.ts"

/** Values remembered per direction: far more than the distinct secrets of a deployment's hooks, and bounded. */
const REMEMBERED = 10_000
/** Longer values (a cached hook table) are sealed and opened each time: the memo holds secrets, not documents. */
const REMEMBERED_LENGTH = 1_024

/** A bounded memo: when full, the entry made first goes. */
const memo = () => {
  const entries = new Map<string, string>()
  return {
    get: (key: string) => entries.get(key),
    set: (key: string, value: string) => {
      if (entries.size >= REMEMBERED) entries.delete(entries.keys().next().value!)
      entries.set(key, value)
      return value
    }
  }
}

/** How the store seals the secrets it writes and opens those it reads, with `store.encryptionKey`'s keys (none: plain, as written). */
export interface Sealer {
  readonly keys: ReadonlyArray<SecretKey>
  /** Sealed under the first key; as it is without keys. */
  readonly seal: (plaintext: string) => string
  /** Opened with the key it names; a plain value as it is. Throws a SealError. */
  readonly open: (text: string) => string
}

export const sealer = (keys: ReadonlyArray<SecretKey>): Sealer => {
  const first = keys[0]
  const sealed = memo()
  const opened = memo()
  return {
    keys,
    // One ciphertext per secret, made once and written with every delivery and pin that carries it:
    // GCM's rule is never to reuse an IV for *different* plaintexts, and this reuses a whole
    // ciphertext for the same one, which tells a reader of the file only that two rows hold the
    // same secret (the hook beside them says as much), and saves an AES operation per event.
    seal: (plaintext) => {
      if (first === undefined) return plaintext
      if (plaintext.length > REMEMBERED_LENGTH) return seal(first, plaintext)
      return sealed.get(plaintext) ?? sealed.set(plaintext, seal(first, plaintext))
    },
    open: (text) => {
      const known = opened.get(text)
      if (known !== undefined) return known
      const result = open(keys, text)
      if (Either.isLeft(result)) throw result.left
      return text === result.right || text.length > REMEMBERED_LENGTH ? result.right : opened.set(text, result.right)
    }
  }
}

/** No keys: values are written and read as they are. */
export const PLAIN = sealer([])

/** What a secret that cannot be opened means to callers: the store cannot be read, and which setting mends it. */
export const unopenable = (error: unknown) =>
  new StoreUnavailable({
    cause:
      error instanceof SealError
        ? `${error.message}: set store.encryptionKey (or ROUTER_ENCRYPTION_KEY) to the key the store was written with, first or among the others`
        : error
  })

type Apply = (text: string) => string

const mapValues = (record: Readonly<Record<string, string>>, f: Apply) => Object.fromEntries(Object.entries(record).map(([name, value]) => [name, f(value)]))

// Each below applies `f` (seal or open) to the secrets of one encoded record, and leaves the rest as it is.

export const deliverySecrets = <D extends Pick<typeof NewDelivery.Encoded, "secret">>(d: D, f: Apply): D =>
  d.secret === null ? d : { ...d, secret: f(d.secret) }

export const destinationSecrets = <D extends Pick<typeof Destination.Encoded, "secret">>(d: D, f: Apply): D =>
  d.secret === undefined ? d : { ...d, secret: f(d.secret) }

/** An API hook's secrets: its secret and the one it replaced, its header values, and its auth's password or token. */
export const hookSecrets = (hook: typeof StoredHook.Encoded, f: Apply): typeof StoredHook.Encoded => {
  const { secret, previousSecret, headers, auth } = hook
  return {
    ...hook,
    ...(secret === undefined ? {} : { secret: f(secret) }),
    ...(previousSecret === undefined ? {} : { previousSecret: f(previousSecret) }),
    ...(headers === undefined ? {} : { headers: mapValues(headers, f) }),
    ...(auth === undefined
      ? {}
      : {
          auth: {
            ...(auth.basic === undefined ? {} : { basic: { ...auth.basic, password: f(auth.basic.password) } }),
            ...(auth.bearer === undefined ? {} : { bearer: f(auth.bearer) })
          }
        })
  }
}
