import { Context, type Effect, type Option } from "effect"
import type { StoredToken } from "../domain/AdminToken.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"

/**
 * The tenant tokens made through the admin API, by the hash of each. Read on
 * every request such a token makes, so a revoke is in force on every instance
 * at once.
 */
export class TokenStore extends Context.Tag("TokenStore")<
  TokenStore,
  {
    readonly putToken: (token: StoredToken) => Effect.Effect<void, StoreUnavailable>
    readonly tokenByHash: (hash: string) => Effect.Effect<Option.Option<StoredToken>, StoreUnavailable>
    /** Oldest first. */
    readonly tokens: Effect.Effect<ReadonlyArray<StoredToken>, StoreUnavailable>
    readonly removeToken: (id: string) => Effect.Effect<boolean, StoreUnavailable>
  }
>() {}
