/**
 * The SQLite writer thread. Commits (and their fsync) happen here, so the
 * event loop that answers LiveKit never waits for the disk. Writes that arrive
 * while a commit runs are grouped into the next one.
 */
import type { Database } from "bun:sqlite"
import { TurnBatch } from "../../TurnBatch.ts"
import { openDatabase, snapshotInto } from "./SqliteSchema.ts"
import { prepareWrites, type Settled, type WriteOp } from "./SqliteWrites.ts"

declare const self: Worker

export type ToWriter =
  | { readonly _tag: "Open"; readonly path: string }
  | { readonly _tag: "Batch"; readonly seq: number; readonly ops: ReadonlyArray<WriteOp> }
  | { readonly _tag: "Snapshot"; readonly seq: number; readonly into: string }
  | { readonly _tag: "Close" }

export type FromWriter =
  | { readonly _tag: "Opened" }
  | { readonly _tag: "OpenFailed"; readonly error: string }
  | { readonly _tag: "Committed"; readonly seq: number; readonly results: ReadonlyArray<Settled> }
  | { readonly _tag: "Snapshotted"; readonly seq: number; readonly error?: string }
  | { readonly _tag: "Closed" }

const reply = (message: FromWriter) => self.postMessage(message)

let db: Database | undefined
let commit: ((batch: ReadonlyArray<WriteOp>) => Array<Settled>) | undefined

// Messages already queued are handled before a turn ends, so the batches that arrive while a commit runs join the next one.
const batches = new TurnBatch<{ readonly seq: number; readonly ops: ReadonlyArray<WriteOp> }>((waiting) => {
  if (!commit) return
  const results = commit(waiting.flatMap((b) => b.ops))
  let offset = 0
  for (const { seq, ops } of waiting) {
    reply({ _tag: "Committed", seq, results: results.slice(offset, offset + ops.length) })
    offset += ops.length
  }
})

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
      batches.add(message)
      return
    case "Snapshot":
      // The writes already sent go in first: the snapshot holds every write acknowledged before it was asked for.
      batches.flush()
      try {
        snapshotInto(db!, message.into)
        reply({ _tag: "Snapshotted", seq: message.seq })
      } catch (error) {
        reply({ _tag: "Snapshotted", seq: message.seq, error: error instanceof Error ? error.message : String(error) })
      }
      return
    case "Close":
      batches.flush()
      db?.close()
      reply({ _tag: "Closed" })
      return
  }
}
