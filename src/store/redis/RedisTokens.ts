import { Effect, Option } from "effect"
import type { StoreUnavailable } from "../../domain/Errors.ts"
import type { BackendTokens } from "../StoreBackend.ts"
import { script } from "./RedisScripts.ts"

// The admin API's tokens: `tokens` maps each token's hash to its record (the one read per request),
// `token-ids` maps its id to that hash (for a revoke). A script changes both together.

/** ARGV[4..6]: id, hash, record. */
const PUT_TOKEN = script(`
redis.call('HSET', P .. 'tokens', ARGV[5], ARGV[6])
redis.call('HSET', P .. 'token-ids', ARGV[4], ARGV[5])
return 1
`)

/** ARGV[4]: id. 1 if it was there. */
const REMOVE_TOKEN = script(`
local hash = redis.call('HGET', P .. 'token-ids', ARGV[4])
if not hash then return 0 end
redis.call('HDEL', P .. 'tokens', hash)
redis.call('HDEL', P .. 'token-ids', ARGV[4])
return 1
`)

export const makeRedisTokens = (
  run: (source: string) => (...args: ReadonlyArray<string | number>) => Effect.Effect<unknown, StoreUnavailable>,
  send: (command: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, StoreUnavailable>,
  P: string
): BackendTokens => {
  const put = run(PUT_TOKEN)
  const remove = run(REMOVE_TOKEN)
  return {
    put: (id, hash, json) => Effect.asVoid(put(id, hash, json)),
    byHash: (hash) => Effect.map(send("HGET", [`${P}tokens`, hash]), (value) => Option.fromNullable(value as string | null)),
    list: Effect.map(send("HVALS", [`${P}tokens`]), (reply) => reply as ReadonlyArray<string>),
    remove: (id) => Effect.map(remove(id), (n) => Number(n) > 0)
  }
}
