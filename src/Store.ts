import { Database } from "bun:sqlite"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { Context, Deferred, Effect, Layer, Option, Queue } from "effect"
import type { AttemptRecord, Delivery, NewDelivery, Pin } from "./Domain/Delivery.ts"
import { StoreUnavailable } from "./Domain/Errors.ts"
import type { Hook } from "./Domain/Hook.ts"

/** How an accepted event changes its room's pin. */
export type PinChange = { readonly _tag: "Set"; readonly pin: Pin } | { readonly _tag: "Clear"; readonly room: string }

export interface Acceptance {
  readonly eventId: string
  readonly receivedAt: number
  readonly delivery: NewDelivery | undefined
  readonly pinChange: PinChange | undefined
}

export type AcceptResult =
  | { readonly _tag: "Accepted"; readonly delivery: Delivery | undefined }
  | { readonly _tag: "Duplicate" }

/**
 * Durable state: dedupe ids, room pins, the delivery outbox and API-managed hooks.
 * Every operation can fail only with StoreUnavailable, so callers decide what a
 * store outage means (for the webhook: 503, so LiveKit retries).
 */
export class Store extends Context.Tag("Store")<
  Store,
  {
    /** Records the event, its pin change and its delivery atomically; a repeated id is a Duplicate and writes nothing. */
    readonly accept: (acceptance: Acceptance) => Effect.Effect<AcceptResult, StoreUnavailable>
    /** Succeeds when the store can be written. */
    readonly ping: Effect.Effect<void, StoreUnavailable>
    readonly pinOf: (room: string) => Effect.Effect<Option.Option<Pin>, StoreUnavailable>
    /** Deliveries still owed to tenants, oldest first: what a restart resumes. */
    readonly pending: Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    readonly recordAttempt: (id: number, record: AttemptRecord) => Effect.Effect<void, StoreUnavailable>
    readonly apiHooks: Effect.Effect<ReadonlyArray<Hook>, StoreUnavailable>
    readonly putApiHook: (hook: Hook) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiHook: (host: string) => Effect.Effect<boolean, StoreUnavailable>
  }
>() {
  /** The embedded default: SQLite in WAL mode, a file per deployment. */
  static readonly sqlite = (path: string) => Layer.scoped(Store, makeSqliteStore(path))
  /** Same code over a fresh in-memory database, for tests that need no file. */
  static get memory() {
    return Layer.scoped(Store, makeSqliteStore(":memory:"))
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pins (
  room TEXT PRIMARY KEY,
  destination TEXT NOT NULL,
  call TEXT NOT NULL,
  pinned_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  tenant TEXT NOT NULL,
  url TEXT NOT NULL,
  domain TEXT,
  body TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER,
  last_error TEXT,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, id);
CREATE TABLE IF NOT EXISTS hooks (
  host TEXT PRIMARY KEY,
  hook TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

interface DeliveryRow {
  id: number
  event_id: string
  event_type: string
  tenant: string
  url: string
  domain: string | null
  body: string
  status: Delivery["status"]
  attempts: number
  last_status: number | null
  last_error: string | null
  next_attempt_at: number
}

const toDelivery = (row: DeliveryRow): Delivery => ({
  id: row.id,
  eventId: row.event_id,
  eventType: row.event_type,
  tenant: row.tenant,
  url: row.url,
  domain: row.domain,
  body: row.body,
  status: row.status,
  attempts: row.attempts,
  lastStatus: row.last_status,
  lastError: row.last_error,
  nextAttemptAt: row.next_attempt_at
})

const makeSqliteStore = (path: string) =>
  Effect.gen(function* () {
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true })
          const db = new Database(path, { create: true, strict: true })
          db.exec("PRAGMA journal_mode = WAL")
          // FULL: an acknowledged event survives power loss, not just a process crash.
          db.exec("PRAGMA synchronous = FULL")
          // Wait briefly for a competing writer, then report the store unavailable (→ 503).
          db.exec("PRAGMA busy_timeout = 1000")
          db.exec(SCHEMA)
          return db
        },
        catch: (cause) => new StoreUnavailable({ cause })
      }),
      (db) => Effect.sync(() => db.close())
    )

    const run = <A>(f: () => A) => Effect.try({ try: f, catch: (cause) => new StoreUnavailable({ cause }) })

    // Group commit: every write queued while the previous commit ran goes into the next
    // transaction, so one fsync covers many events. Each write runs in its own savepoint,
    // so a failing one is rolled back alone; a failed commit fails them all.
    interface Write {
      readonly apply: () => unknown
      readonly done: Deferred.Deferred<unknown, StoreUnavailable>
    }
    const writes = yield* Queue.unbounded<Write>()
    const inSavepoint = db.transaction((apply: () => unknown) => apply())
    const commitBatch = db.transaction((batch: ReadonlyArray<Write>) =>
      batch.map((write) => {
        try {
          return { ok: true as const, value: inSavepoint(write.apply) }
        } catch (cause) {
          return { ok: false as const, cause }
        }
      })
    )
    yield* Queue.takeBetween(writes, 1, 1024).pipe(
      Effect.flatMap((chunk) => {
        const batch = [...chunk]
        return run(() => commitBatch.immediate(batch)).pipe(
          Effect.flatMap((results) =>
            Effect.forEach(batch, (write, i) => {
              const result = results[i]!
              return result.ok
                ? Deferred.succeed(write.done, result.value)
                : Deferred.fail(write.done, new StoreUnavailable({ cause: result.cause }))
            })
          ),
          Effect.catchAll((error) => Effect.forEach(batch, (write) => Deferred.fail(write.done, error)))
        )
      }),
      Effect.forever,
      Effect.forkScoped
    )
    const write = <A>(apply: () => A): Effect.Effect<A, StoreUnavailable> =>
      Effect.flatMap(Deferred.make<unknown, StoreUnavailable>(), (done) =>
        Effect.zipRight(Queue.offer(writes, { apply, done }), Deferred.await(done) as Effect.Effect<A, StoreUnavailable>)
      )

    const insertEvent = db.query<unknown, [string, number]>("INSERT OR IGNORE INTO events (id, received_at) VALUES (?, ?)")
    const setPin = db.query<unknown, [string, string, string, number]>(
      "INSERT OR REPLACE INTO pins (room, destination, call, pinned_at) VALUES (?, ?, ?, ?)"
    )
    const clearPin = db.query<unknown, [string]>("DELETE FROM pins WHERE room = ?")
    const selectPin = db.query<{ destination: string; call: string }, [string]>("SELECT destination, call FROM pins WHERE room = ?")
    const insertDelivery = db.query<DeliveryRow, [string, string, string, string, string | null, string, number, number, number]>(
      `INSERT INTO deliveries (event_id, event_type, tenant, url, domain, body, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`
    )
    const selectPending = db.query<DeliveryRow, []>("SELECT * FROM deliveries WHERE status = 'pending' ORDER BY id")
    const updateAttempt = db.query<unknown, [string, number | null, string | null, number, number, number]>(
      `UPDATE deliveries SET status = ?, attempts = attempts + 1, last_status = ?, last_error = ?,
       next_attempt_at = ?, updated_at = ? WHERE id = ?`
    )
    const selectHooks = db.query<{ hook: string }, []>("SELECT hook FROM hooks ORDER BY host")
    const upsertHook = db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO hooks (host, hook, updated_at) VALUES (?, ?, ?)")
    const deleteHook = db.query<unknown, [string]>("DELETE FROM hooks WHERE host = ?")

    const ping = db.query<unknown, []>("SELECT 1")
    const acceptOne = (a: Acceptance): AcceptResult => {
      if (insertEvent.run(a.eventId, a.receivedAt).changes === 0) return { _tag: "Duplicate" }
      if (a.pinChange?._tag === "Set") {
        const { room, destination, call } = a.pinChange.pin
        setPin.run(room, JSON.stringify(destination), JSON.stringify(call), a.receivedAt)
      } else if (a.pinChange?._tag === "Clear") {
        clearPin.run(a.pinChange.room)
      }
      const d = a.delivery
      const row = d && insertDelivery.get(d.eventId, d.eventType, d.tenant, d.url, d.domain, d.body, a.receivedAt, a.receivedAt, a.receivedAt)
      return { _tag: "Accepted", delivery: row ? toDelivery(row) : undefined }
    }

    return Store.of({
      accept: (acceptance) => write(() => acceptOne(acceptance)),
      ping: run(() => {
        ping.get()
      }),
      pinOf: (room) =>
        run(() => {
          const row = selectPin.get(room)
          return row ? Option.some<Pin>({ room, destination: JSON.parse(row.destination), call: JSON.parse(row.call) }) : Option.none()
        }),
      pending: run(() => selectPending.all().map(toDelivery)),
      recordAttempt: (id, r) =>
        write(() => {
          updateAttempt.run(r.final ?? "pending", r.status, r.error, r.nextAttemptAt, Date.now(), id)
        }),
      apiHooks: run(() => selectHooks.all().map((row) => JSON.parse(row.hook) as Hook)),
      putApiHook: (hook) =>
        write(() => {
          upsertHook.run(hook.host, JSON.stringify(hook), Date.now())
        }),
      removeApiHook: (host) => write(() => deleteHook.run(host).changes > 0)
    })
  })
