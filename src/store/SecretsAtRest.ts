import { Context, type Effect } from "effect"
import type { Conflict, StoreUnavailable } from "../domain/Errors.ts"

/** The secrets the store keeps encrypted at rest (see Sealing.ts), as a whole. */
export class SecretsAtRest extends Context.Tag("SecretsAtRest")<
  SecretsAtRest,
  {
    /**
     * Seals every secret the store holds under the first key of `store.encryptionKey` (plain ones
     * too), then records that key as the only one in use, so a start without the others succeeds.
     * A Conflict without a key.
     */
    readonly reencrypt: Effect.Effect<{ readonly rewritten: number; readonly keyId: string }, StoreUnavailable | Conflict>
  }
>() {}
