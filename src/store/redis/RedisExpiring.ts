import { Effect, Option } from "effect"
import type { StoreUnavailable } from "../../domain/Errors.ts"
import type { BackendExpiring } from "../StoreBackend.ts"

// Sessions and portal links: a key each, `x:KIND:HASH`, that Redis expires itself at `expiresAt`.
// GETDEL takes a portal link atomically, so of two instances redeeming one, only one gets it.

export const makeRedisExpiring = (
  send: (command: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, StoreUnavailable>,
  P: string
): BackendExpiring => {
  const key = (kind: string, hash: string) => `${P}x:${kind}:${hash}`
  const found = (reply: unknown) => Option.fromNullable(reply as string | null)
  return {
    put: (kind, hash, json, expiresAt) => Effect.asVoid(send("SET", [key(kind, hash), json, "PXAT", String(expiresAt)])),
    get: (kind, hash) => Effect.map(send("GET", [key(kind, hash)]), found),
    take: (kind, hash) => Effect.map(send("GETDEL", [key(kind, hash)]), found),
    remove: (kind, hash) => Effect.asVoid(send("DEL", [key(kind, hash)]))
  }
}
