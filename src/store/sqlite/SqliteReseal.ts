import type { Database } from "bun:sqlite"
import { Effect } from "effect"
import type { StoreUnavailable } from "../../domain/Errors.ts"
import type { Resealing } from "../StoreBackend.ts"
import type { ResealChange, WriteOp, WriteResult } from "./SqliteWrites.ts"

/** Rows read, and changes written, per step: each step is one short read and one commit beside the others. */
const SLICE = 1_000

/**
 * Re-encryption on SQLite: read here a slice at a time (deliveries and pins by key), rewritten by
 * the writer only where a row still holds what was read.
 */
export const sqliteReseal = (db: Database, write: <Op extends WriteOp>(op: Op) => Effect.Effect<WriteResult<Op>, StoreUnavailable>) => {
  const q = {
    deliveries: db.query<{ id: number; secret: string }, [number, number]>("SELECT id, secret FROM deliveries WHERE id > ? AND secret IS NOT NULL ORDER BY id LIMIT ?"),
    pins: db.query<{ room: string; destination: string }, [string, number]>("SELECT room, destination FROM pins WHERE room > ? ORDER BY room LIMIT ?"),
    hooks: db.query<{ host: string; hook: string }, []>("SELECT host, hook FROM hooks"),
    cache: db.query<{ key: string; value: string }, []>("SELECT key, value FROM cache")
  }
  return (reseal: Resealing, read: <A>(f: () => A) => Effect.Effect<A, StoreUnavailable>) =>
    Effect.gen(function* () {
      let rewritten = 0
      const apply = (changes: ReadonlyArray<ResealChange>) =>
        changes.length === 0 ? Effect.succeed(0) : write({ _tag: "Reseal", changes })
      const secretOf = (destination: string) => {
        const parsed = JSON.parse(destination) as { secret?: string }
        const sealed = parsed.secret === undefined ? undefined : reseal.secret(parsed.secret)
        return sealed === undefined ? undefined : JSON.stringify({ ...parsed, secret: sealed })
      }
      for (let after = 0; ;) {
        const rows = yield* read(() => q.deliveries.all(after, SLICE))
        const changes = yield* read(() =>
          rows.flatMap((row) => {
            const to = reseal.secret(row.secret)
            return to === undefined ? [] : [{ place: "delivery" as const, key: String(row.id), from: row.secret, to }]
          })
        )
        rewritten += yield* apply(changes)
        if (rows.length < SLICE) break
        after = rows[rows.length - 1]!.id
      }
      for (let after = ""; ;) {
        const rows = yield* read(() => q.pins.all(after, SLICE))
        const changes = yield* read(() =>
          rows.flatMap((row) => {
            const to = secretOf(row.destination)
            return to === undefined ? [] : [{ place: "pin" as const, key: row.room, from: row.destination, to }]
          })
        )
        rewritten += yield* apply(changes)
        if (rows.length < SLICE) break
        after = rows[rows.length - 1]!.room
      }
      const few = yield* read(() => [
        ...q.hooks.all().flatMap((row) => {
          const to = reseal.hook(row.hook)
          return to === undefined ? [] : [{ place: "hook" as const, key: row.host, from: row.hook, to }]
        }),
        ...q.cache.all().flatMap((row) => {
          const to = reseal.cached(row.key, row.value)
          return to === undefined ? [] : [{ place: "cache" as const, key: row.key, from: row.value, to }]
        })
      ])
      return rewritten + (yield* apply(few))
    })
}
