import { Clock, Duration, Effect, Either, Option, Schema } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { WebhookSecret } from "../domain/Hook.ts"
import { observeSecret, type SecretRotation, SecretRotationJson } from "../domain/SecretRotation.ts"
import { HookStore } from "../store/HookStore.ts"

const decode = Schema.decodeUnknownEither(SecretRotationJson)
const encode = Schema.encodeSync(SecretRotationJson)
const keyOf = (signer: string) => `signing:${signer}`

/**
 * The rotations of the secrets the config file and the HTTP source give: a
 * signer's record is read from the store the first time it is seen, and a change
 * of its secret is written there, so the next run and every other instance sign
 * with the old secret too while `signing.rotationOverlap` lasts. The store is
 * touched only when a secret changes, never per delivery.
 */
export class SecretRotations extends Effect.Service<SecretRotations>()("SecretRotations", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* HookStore
    const overlapMs = Duration.toMillis(config.signing.rotationOverlap)
    const known = new Map<string, SecretRotation>()

    const stored = (signer: string) =>
      Effect.map(store.cached(keyOf(signer)), (value) =>
        Option.match(value, { onNone: () => undefined, onSome: (json) => Either.getOrUndefined(decode(json)) })
      )

    const observeOne = (signer: string, secret: WebhookSecret, now: number) =>
      Effect.gen(function* () {
        const remembered = known.get(signer)
        if (remembered !== undefined && observeSecret(remembered, secret, now, overlapMs) === undefined) return remembered
        // Another instance, or an earlier run, may have seen this secret first.
        const before = yield* stored(signer)
        const next = observeSecret(before, secret, now, overlapMs)
        if (next !== undefined) {
          yield* store.cache(keyOf(signer), encode(next))
          if (before !== undefined) yield* Effect.log("signing secret changed; the old one keeps signing too").pipe(Effect.annotateLogs({ signer, until: new Date(next.previousUntil!).toISOString() }))
        }
        const rotation = next ?? before!
        known.set(signer, rotation)
        return rotation
      })

    return {
      /**
       * Each signer's rotation, given the secret it is configured with now. A store
       * that cannot be reached leaves the rotations last seen in force (and none for
       * a signer never seen): signing goes on with the configured secret.
       */
      observe: (signers: ReadonlyArray<{ readonly signer: string; readonly secret: WebhookSecret }>) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const rotations = new Map<string, SecretRotation>()
          for (const { signer, secret } of signers) {
            const rotation = yield* observeOne(signer, secret, now).pipe(
              Effect.catchTag("StoreUnavailable", (e) =>
                Effect.as(Effect.logWarning("could not read or record a signing secret's rotation; signing with the configured secret", e.cause).pipe(Effect.annotateLogs({ signer })), known.get(signer))
              )
            )
            if (rotation !== undefined) rotations.set(signer, rotation)
          }
          return rotations as ReadonlyMap<string, SecretRotation>
        })
    }
  })
}) {}
