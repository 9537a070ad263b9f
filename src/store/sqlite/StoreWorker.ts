/**
 * The SQLite writer thread. Commits (and their fsync) happen here, so the
 * event loop that answers LiveKit never waits for the disk. Writes that arrive
 * while a commit runs are grouped into the next one.
 */
import type { Database } from "bun:sqlite"
import { openDatabase } from "./SqliteSchema.ts"
import { prepareWrites, type Settled, type WriteOp } from "./SqliteWrites.ts"

declare const self: Worker

export type ToWriter =
  | { readonly _tag: "Open"; readonly path: string }
  | { readonly _tag: "Batch"; readonly seq: number; readonly ops: ReadonlyArray<WriteOp> }
  | { readonly _tag: "Close" }

export type FromWriter =
  | { readonly _tag: "Opened" }
  | { readonly _tag: "OpenFailed"; readonly error: string }
  | { readonly _tag: "Committed"; readonly seq: number; readonly results: ReadonlyArray<Settled> }
  | { readonly _tag: "Closed" }

const reply = (message: FromWriter) => self.postMessage(message)

let db: Database | undefined
let commit: ((batch: ReadonlyArray<WriteOp>) => Array<Settled>) | undefined
let waiting: Array<{ seq: number; ops: ReadonlyArray<WriteOp> }> = []
let scheduled = false

const flush = () => {
  scheduled = false
  const batches = waiting
  waiting = []
  if (batches.length === 0 || !commit) return
  const results = commit(batches.flatMap((b) => b.ops))
  let offset = 0
  for (const { seq, ops } of batches) {
    reply({ _tag: "Committed", seq, results: results.slice(offset, offset + ops.length) })
    offset += ops.length
  }
}

self.onmessage = (event: MessageEvent<ToWriter>) => {
  const message = event.data
  switch (message._tag) {
    case "Open":
      try {
        db = openDatabase(message.path)
        commit = prepareWrites(db)
        reply({ _tag: "Opened" })
      } catch (error) {
        reply({ _tag: "OpenFailed", error: error instanceof Error ? error.message : String(error) })
      }
      return
    case "Batch":
      waiting.push(message)
      // Messages already queued are handled before this runs, so they join the same commit.
      if (!scheduled) (scheduled = true), setImmediate(flush)
      return
    case "Close":
      flush()
      db?.close()
      reply({ _tag: "Closed" })
      return
  }
}
