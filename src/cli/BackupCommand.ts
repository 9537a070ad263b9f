/** `backup --to FILE`: the router's SQLite store, as a database file a router can be started on; `reencrypt`: its secrets under the first key. */
import { Command, Options } from "@effect/cli"
import { link, unlink, writeFile } from "node:fs/promises"
import { Effect } from "effect"
import { print, withClient } from "./AdminClient.ts"
import { Failed } from "./Failures.ts"
import { connection } from "./Inputs.ts"

/**
 * Written beside FILE first, then linked in under its name: FILE appears whole
 * or not at all, and linking (unlike renaming) refuses a FILE that exists,
 * even one made meanwhile.
 */
const writeNew = (to: string, bytes: Uint8Array) =>
  Effect.tryPromise({
    try: async () => {
      const partial = `${to}.partial-${process.pid}-${Date.now()}`
      try {
        await writeFile(partial, bytes, { flag: "wx" })
        await link(partial, to)
      } finally {
        await unlink(partial).catch(() => {})
      }
    },
    catch: (error) =>
      new Failed({
        message: (error as NodeJS.ErrnoException).code === "EEXIST" ? `error: ${to} exists; choose a new file` : `error: cannot write ${to}: ${(error as Error).message}`
      })
  })

export const backup = Command.make(
  "backup",
  { connection, to: Options.file("to").pipe(Options.withDescription("the new file to write the snapshot to; an existing file is never replaced")) },
  withClient((client, input) =>
    Effect.flatMap(client.backup.backup(), (bytes) => Effect.zipRight(writeNew(input.to, bytes), print(`wrote ${input.to} (${bytes.byteLength} bytes)`)))
  )
).pipe(
  Command.withDescription(
    "a consistent snapshot of the router's SQLite store, taken while it serves, written to FILE (operator token); restore by putting it in place of the store's file while the router is stopped"
  )
)

export const reencrypt = Command.make(
  "reencrypt",
  { connection },
  withClient((client) =>
    Effect.flatMap(client.backup.reencrypt(), ({ rewritten, keyId }) =>
      print(`re-encrypted ${rewritten} value${rewritten === 1 ? "" : "s"} with key ${keyId}; the router now starts with that key alone`)
    )
  )
).pipe(
  Command.withDescription(
    "encrypt every secret the store holds (SQLite or Redis) with the first key of store.encryptionKey, plain ones too, so the other keys can be dropped (operator token; see Encryption at rest in docs/operations.md)"
  )
)
