import { Effect } from "effect"
import type { StoreUnavailable } from "../../domain/Errors.ts"
import type { Resealing } from "../StoreBackend.ts"
import { script } from "./RedisScripts.ts"

/** Values read, and rewritten in one script call, per step. */
const SLICE = 500

/**
 * ARGV[4..]: groups of key (after the prefix), hash field ('' for a string key, whose TTL stays),
 * the value read and the new one. Each is written only if it still holds what was read: how many were.
 */
const RESEAL = script(`
local n = 0
for i = 4, #ARGV, 4 do
  local key, field, from, to = P .. ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if field == '' then
    if redis.call('GET', key) == from then redis.call('SET', key, to, 'KEEPTTL'); n = n + 1 end
  elseif redis.call('HGET', key, field) == from then
    redis.call('HSET', key, field, to); n = n + 1
  end
end
return n
`)

type Change = readonly [key: string, field: string, from: string, to: string]

// A delivery's fields and a pin are JSON-encoded: the secret inside is rewritten, the rest kept as it was.

const deliveryChange = (reseal: Resealing, id: string, field: string | null): ReadonlyArray<Change> => {
  const secret = field === null ? null : (JSON.parse(field) as string | null)
  const to = secret === null ? undefined : reseal.secret(secret)
  return to === undefined ? [] : [[`d:${id}`, "secret", field!, JSON.stringify(to)]]
}

const pinChange = (reseal: Resealing, room: string, value: string | null): ReadonlyArray<Change> => {
  if (value === null) return []
  const pin = JSON.parse(value) as { destination: { secret?: string } }
  const to = pin.destination.secret === undefined ? undefined : reseal.secret(pin.destination.secret)
  return to === undefined ? [] : [[`pin:${room}`, "", value, JSON.stringify({ ...pin, destination: { ...pin.destination, secret: to } })]]
}

/**
 * Re-encryption on Redis: deliveries by id (`ix`), pins (`pins`), then the API hooks and the
 * cache, read a slice at a time and rewritten by one script call per slice.
 */
export const makeRedisReseal = (
  run: (source: string) => (...args: ReadonlyArray<string | number>) => Effect.Effect<unknown, StoreUnavailable>,
  send: (command: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, StoreUnavailable>,
  P: string,
  read: <A>(f: () => A) => Effect.Effect<A, StoreUnavailable>
) => {
  const rewrite = run(RESEAL)
  const apply = (changes: ReadonlyArray<Change>) => (changes.length === 0 ? Effect.succeed(0) : Effect.map(rewrite(...changes.flat()), Number))
  const hashChanges = (hash: string, rewritten: (field: string, value: string) => string | undefined) =>
    Effect.flatMap(send("HGETALL", [P + hash]), (reply) =>
      read(() =>
        Object.entries(reply as Record<string, string>).flatMap(([field, value]): ReadonlyArray<Change> => {
          const to = rewritten(field, value)
          return to === undefined ? [] : [[hash, field, value, to]]
        })
      )
    )
  return (resealing: Resealing) =>
    Effect.gen(function* () {
      let rewritten = 0
      for (let after = "0"; ;) {
        const ids = (yield* send("ZRANGEBYSCORE", [`${P}ix`, `(${after}`, "+inf", "LIMIT", "0", String(SLICE)])) as Array<string>
        const secrets = (yield* Effect.forEach(ids, (id) => send("HGET", [`${P}d:${id}`, "secret"]), { concurrency: "unbounded" })) as Array<string | null>
        rewritten += yield* apply(yield* read(() => ids.flatMap((id, i) => deliveryChange(resealing, id, secrets[i]!))))
        if (ids.length < SLICE) break
        after = ids[ids.length - 1]!
      }
      let cursor = "0"
      do {
        const [next, page] = (yield* send("ZSCAN", [`${P}pins`, cursor, "COUNT", String(SLICE)])) as [string, Array<string>]
        const rooms = page.filter((_, i) => i % 2 === 0)
        const values = rooms.length === 0 ? [] : ((yield* send("MGET", rooms.map((room) => `${P}pin:${room}`))) as Array<string | null>)
        rewritten += yield* apply(yield* read(() => rooms.flatMap((room, i) => pinChange(resealing, room, values[i]!))))
        cursor = String(next)
      } while (cursor !== "0")
      rewritten += yield* apply(yield* hashChanges("hooks", (_, json) => resealing.hook(json)))
      return rewritten + (yield* apply(yield* hashChanges("cache", (key, value) => resealing.cached(key, value))))
    })
}
