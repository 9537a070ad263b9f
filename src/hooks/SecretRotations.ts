import { Clock, Duration, Effect, Either, Option, Schema } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { Hook, WebhookSecret } from "../domain/Hook.ts"
import { DEFAULT_SIGNER, observeSecret, SecretRotation } from "../domain/SecretRotation.ts"
import { HookStore, ROTATIONS_KEY } from "../store/HookStore.ts"

// One value for every signer: read once at start, written (whole) only when a secret changes.
const Rotations = Schema.parseJson(Schema.Record({ key: Schema.String, value: SecretRotation }))
const decode = Schema.decodeUnknownEither(Rotations)
const encode = Schema.encodeSync(Rotations)

/** A signer and the secret it is configured with now. */
interface Signer {
  readonly signer: string
  readonly secret: WebhookSecret
}

/**
 * The rotations of the secrets the config file and the HTTP source give, kept in
 * the store so the next run and every other instance sign with the old secret
 * too while `signing.rotationOverlap` lasts. Signers are the default secret and
 * the hooks with a secret of their own (and any hook that had one: its record
 * stays until its overlap ends); a hook signed with the default follows the
 * default's rotation. The store is read once and written only when a secret
 * changes, never per delivery.
 */
export class SecretRotations extends Effect.Service<SecretRotations>()("SecretRotations", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* HookStore
    const overlapMs = Duration.toMillis(config.signing.rotationOverlap)
    let known: Record<string, SecretRotation> | undefined

    const stored = Effect.map(store.cached(ROTATIONS_KEY), (value) =>
      Option.match(value, { onNone: () => ({}), onSome: (json) => Either.getOrElse(decode(json), () => ({})) })
    )

    /** The changes `signers` make to `records`, at `now`. */
    const changesTo = (records: Record<string, SecretRotation>, signers: ReadonlyArray<Signer>, now: number) =>
      signers.flatMap(({ signer, secret }) => {
        const next = observeSecret(records[signer], secret, now, overlapMs)
        return next === undefined ? [] : [[signer, next] as const]
      })

    /** The default secret, the hooks with a secret of their own, and those with a record from when they had one. */
    const signersOf = (hooks: ReadonlyArray<Hook>, defaultSecret: WebhookSecret | undefined, records: Record<string, SecretRotation>): ReadonlyArray<Signer> => {
      const signers: Array<Signer> = defaultSecret === undefined ? [] : [{ signer: DEFAULT_SIGNER, secret: defaultSecret }]
      // A loop, not flatMap: a table of a hundred thousand hooks on the default would make as many empty lists.
      for (const hook of hooks) {
        const secret = hook.secret ?? (hook.host in records ? defaultSecret : undefined)
        if (secret !== undefined) signers.push({ signer: hook.host, secret })
      }
      return signers
    }

    const observeAll = (hooks: ReadonlyArray<Hook>, defaultSecret: WebhookSecret | undefined) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        known ??= yield* stored
        const signers = signersOf(hooks, defaultSecret, known)
        if (changesTo(known, signers, now).length === 0) return known
        // Another instance, or an earlier run, may have seen these secrets first: decide against what is stored now.
        const fresh = yield* stored
        const changes = changesTo(fresh, signers, now)
        if (changes.length > 0) {
          const present = new Set(signers.map((s) => s.signer))
          // A signer gone from the sources is forgotten once nothing of it overlaps any more.
          const kept = Object.entries(fresh).filter(([signer, r]) => present.has(signer) || (r.previousUntil ?? 0) > now)
          yield* store.cache(ROTATIONS_KEY, encode(Object.fromEntries([...kept, ...changes])))
          for (const [signer, next] of changes) {
            if (next.previous !== undefined) {
              yield* Effect.log("signing secret changed; the old one keeps signing too").pipe(Effect.annotateLogs({ signer, until: new Date(next.previousUntil!).toISOString() }))
            }
          }
        }
        known = { ...fresh, ...Object.fromEntries(changes) }
        return known
      })

    return {
      /**
       * The rotations of the default secret (under DEFAULT_SIGNER) and of the hooks
       * in force (by host), given the secrets they are configured with now. A store
       * that cannot be reached leaves the rotations last seen in force: signing goes
       * on with the configured secrets.
       */
      observe: (hooks: ReadonlyArray<Hook>, defaultSecret: WebhookSecret | undefined): Effect.Effect<Readonly<Record<string, SecretRotation>>> =>
        observeAll(hooks, defaultSecret).pipe(
          Effect.catchTag("StoreUnavailable", (e) =>
            Effect.as(Effect.logWarning("could not read or record the signing secrets' rotations; signing with the configured secrets", e.cause), known ?? {})
          )
        )
    }
  })
}) {}
