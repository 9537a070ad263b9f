import { Context, type Effect, type Scope } from "effect"
import type { NotImplemented, StoreUnavailable } from "../domain/Errors.ts"

/** Online backups of the store: a consistent copy taken while the router keeps serving. */
export class Backups extends Context.Tag("Backups")<
  Backups,
  {
    /**
     * The path of a new file holding the store as of its last commit: a SQLite
     * database a router can be started on. It is removed when the scope closes.
     * A store that is backed up on its own side (Redis) fails with NotImplemented.
     */
    readonly snapshot: Effect.Effect<string, StoreUnavailable | NotImplemented, Scope.Scope>
  }
>() {}
