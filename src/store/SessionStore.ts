import { Context, type Effect, type Option } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { StoredPortalLink, StoredSession } from "../domain/Session.ts"

/**
 * Console sessions and tenant portal links, by the SHA-256 of each secret, in
 * the store every instance shares: a session survives a restart and works on
 * any instance, and a link is redeemed once across all of them.
 */
export class SessionStore extends Context.Tag("SessionStore")<
  SessionStore,
  {
    readonly startSession: (hash: string, session: StoredSession) => Effect.Effect<void, StoreUnavailable>
    /** None once it has expired or ended. */
    readonly sessionByHash: (hash: string) => Effect.Effect<Option.Option<StoredSession>, StoreUnavailable>
    readonly endSession: (hash: string) => Effect.Effect<void, StoreUnavailable>
    readonly putPortalLink: (hash: string, link: StoredPortalLink) => Effect.Effect<void, StoreUnavailable>
    /** The link, removed: a second redemption, like an expired link, finds none. */
    readonly redeemPortalLink: (hash: string) => Effect.Effect<Option.Option<StoredPortalLink>, StoreUnavailable>
  }
>() {}
