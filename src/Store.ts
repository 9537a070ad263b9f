import { Database } from "bun:sqlite"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { Context, Deferred, Effect, Layer, Option, Queue } from "effect"
import type {
  AttemptRecord,
  Delivery,
  DeliveryDetail,
  DeliveryQuery,
  NewDelivery,
  Pin,
  UnroutableEvent
} from "./Domain/Delivery.ts"
import { StoreUnavailable } from "./Domain/Errors.ts"
import type { NumberMapping, StoredHook } from "./Domain/Hook.ts"

/** How an accepted event changes its room's pin. `Touch` keeps a long call's pin from being pruned. */
export type PinChange =
  | { readonly _tag: "Set"; readonly pin: Pin }
  | { readonly _tag: "Touch"; readonly room: string }
  | { readonly _tag: "Clear"; readonly room: string }

export interface Acceptance {
  readonly eventId: string
  readonly receivedAt: number
  readonly delivery: NewDelivery | undefined
  readonly pinChange: PinChange | undefined
  readonly unroutable: UnroutableEvent | undefined
}

export type AcceptResult =
  | { readonly _tag: "Accepted"; readonly delivery: Delivery | undefined }
  | { readonly _tag: "Duplicate" }

export type RequeueResult =
  | { readonly _tag: "Requeued"; readonly delivery: Delivery }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "NotFailed"; readonly status: Delivery["status"] }

/** How long finished records are kept, in milliseconds, counted from their last change. */
export interface RetentionPolicy {
  readonly delivered: number
  readonly failed: number
  readonly dedupe: number
  readonly unroutable: number
  readonly pins: number
}

export interface Pruned {
  readonly deliveries: number
  readonly events: number
  readonly unroutable: number
  readonly pins: number
}

/**
 * Durable state: dedupe ids, room pins, the delivery outbox with its attempt
 * history, unroutable events and API-managed hooks. Every operation can fail
 * only with StoreUnavailable, so callers decide what a store outage means (for
 * the webhook: 503, so LiveKit retries). The Forwarder sees only this interface.
 */
export class Store extends Context.Tag("Store")<
  Store,
  {
    /** Records the event with its pin change, delivery or unroutable record atomically; a repeated id is a Duplicate and writes nothing. */
    readonly accept: (acceptance: Acceptance) => Effect.Effect<AcceptResult, StoreUnavailable>
    /** Succeeds when the store can be read. */
    readonly ping: Effect.Effect<void, StoreUnavailable>
    readonly pinOf: (room: string) => Effect.Effect<Option.Option<Pin>, StoreUnavailable>
    /** Deliveries still owed to tenants, in arrival order: what a restart resumes. */
    readonly pending: Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    /** Appends an attempt to the history and moves the delivery to its new state. */
    readonly recordAttempt: (id: number, record: AttemptRecord) => Effect.Effect<void, StoreUnavailable>
    /** When a pending delivery's next attempt is due, so a restart keeps the backoff. */
    readonly scheduleRetry: (id: number, nextAttemptAt: number) => Effect.Effect<void, StoreUnavailable>
    readonly deliveries: (query: DeliveryQuery) => Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    readonly delivery: (id: number) => Effect.Effect<Option.Option<DeliveryDetail>, StoreUnavailable>
    /** Moves a failed delivery back to pending with a fresh attempt budget. */
    readonly requeue: (id: number, now: number) => Effect.Effect<RequeueResult, StoreUnavailable>
    /** Requeues a tenant's failed deliveries created at or after `since`. */
    readonly requeueFailed: (tenant: string, since: number, now: number) => Effect.Effect<ReadonlyArray<Delivery>, StoreUnavailable>
    readonly unroutable: (limit: number) => Effect.Effect<ReadonlyArray<UnroutableEvent>, StoreUnavailable>
    /** Deletes what the policy no longer keeps; pending deliveries are never pruned. */
    readonly prune: (now: number, policy: RetentionPolicy) => Effect.Effect<Pruned, StoreUnavailable>
    readonly apiHooks: Effect.Effect<ReadonlyArray<StoredHook>, StoreUnavailable>
    readonly putApiHook: (hook: StoredHook) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiHook: (host: string) => Effect.Effect<boolean, StoreUnavailable>
    readonly apiNumbers: Effect.Effect<ReadonlyArray<NumberMapping>, StoreUnavailable>
    readonly putApiNumber: (mapping: NumberMapping) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiNumber: (number: string) => Effect.Effect<boolean, StoreUnavailable>
    /** A small named value kept across restarts (the HTTP hook source's last good table). */
    readonly cached: (key: string) => Effect.Effect<Option.Option<string>, StoreUnavailable>
    readonly cache: (key: string, value: string) => Effect.Effect<void, StoreUnavailable>
  }
>() {
  /** The embedded default: SQLite in WAL mode, a file per deployment. */
  static readonly sqlite = (path: string) => Layer.scoped(Store, makeSqliteStore(path))
  /** Same code over a fresh in-memory database: nothing survives the process. */
  static get memory() {
    return Layer.scoped(Store, makeSqliteStore(":memory:"))
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_age ON events (received_at);
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
  room TEXT,
  domain TEXT,
  body TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER,
  last_error TEXT,
  next_attempt_at INTEGER NOT NULL,
  event_created_at INTEGER,
  secret TEXT,
  created_at INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, id);
CREATE INDEX IF NOT EXISTS deliveries_by_tenant ON deliveries (tenant, status, id);
CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (status, updated_at);
CREATE TABLE IF NOT EXISTS attempts (
  delivery_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  status INTEGER,
  error TEXT,
  latency_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (delivery_id);
CREATE TABLE IF NOT EXISTS unroutable (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  room TEXT,
  x_to_ip TEXT,
  to_header TEXT,
  dialled TEXT,
  domain TEXT,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS unroutable_by_age ON unroutable (at);
CREATE TABLE IF NOT EXISTS hooks (
  host TEXT PRIMARY KEY,
  hook TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS numbers (
  number TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

interface DeliveryRow {
  id: number
  event_id: string
  event_type: string
  tenant: string
  url: string
  room: string | null
  domain: string | null
  body: string
  status: Delivery["status"]
  attempts: number
  last_status: number | null
  last_error: string | null
  next_attempt_at: number
  event_created_at: number | null
  secret: string | null
  created_at: number
  queued_at: number
  updated_at: number
}

const toDelivery = (row: DeliveryRow): Delivery => ({
  id: row.id,
  eventId: row.event_id,
  eventType: row.event_type,
  tenant: row.tenant,
  url: row.url,
  room: row.room,
  domain: row.domain,
  body: row.body,
  status: row.status,
  attempts: row.attempts,
  lastStatus: row.last_status,
  lastError: row.last_error,
  nextAttemptAt: row.next_attempt_at,
  eventCreatedAt: row.event_created_at,
  secret: row.secret,
  createdAt: row.created_at,
  queuedAt: row.queued_at,
  updatedAt: row.updated_at
})

interface UnroutableRow {
  at: number
  event_id: string
  event_type: string
  room: string | null
  x_to_ip: string | null
  to_header: string | null
  dialled: string | null
  domain: string | null
  reason: UnroutableEvent["reason"]
}

// Deletes run in slices so a large prune never holds the write lock for long.
const PRUNE_SLICE = 2000

/**
 * Columns added since the first layout. CREATE TABLE IF NOT EXISTS leaves an
 * existing table alone, so a database from an earlier build gets them here.
 */
const ADDED_DELIVERY_COLUMNS = [
  ["room", "room TEXT", undefined],
  ["event_created_at", "event_created_at INTEGER", undefined],
  ["queued_at", "queued_at INTEGER NOT NULL DEFAULT 0", "UPDATE deliveries SET queued_at = created_at"],
  ["secret", "secret TEXT", undefined]
] as const

const upgradeSchema = (db: Database) => {
  const present = new Set(db.query<{ name: string }, []>("SELECT name FROM pragma_table_info('deliveries')").all().map((c) => c.name))
  for (const [name, definition, backfill] of ADDED_DELIVERY_COLUMNS) {
    if (present.has(name)) continue
    db.exec(`ALTER TABLE deliveries ADD COLUMN ${definition}`)
    if (backfill) db.exec(backfill)
  }
}

const openDatabase = (path: string) =>
  Effect.acquireRelease(
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
        upgradeSchema(db)
        return db
      },
      catch: (cause) => new StoreUnavailable({ cause })
    }),
    (db) => Effect.sync(() => db.close())
  )

/**
 * Group commit: every write queued while the previous commit ran goes into the
 * next transaction, so one fsync covers many events. Each write runs in its own
 * savepoint, so a failing one is rolled back alone; a failed commit fails them all.
 */
const groupCommitter = (db: Database) =>
  Effect.gen(function* () {
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
    // SQLite blocks the thread while it commits, so requests that arrived meanwhile are still unread.
    // One turn of the event loop lets them queue their writes and join the next commit.
    const letArrivalsJoin = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    yield* Queue.take(writes).pipe(
      Effect.tap(() => letArrivalsJoin),
      Effect.zipWith(Queue.takeUpTo(writes, 1023), (first, rest) => [first, ...rest]),
      Effect.flatMap((batch) => {
        return Effect.try({ try: () => commitBatch.immediate(batch), catch: (cause) => new StoreUnavailable({ cause }) }).pipe(
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
    return <A>(apply: () => A): Effect.Effect<A, StoreUnavailable> =>
      Effect.flatMap(Deferred.make<unknown, StoreUnavailable>(), (done) =>
        Effect.zipRight(Queue.offer(writes, { apply, done }), Deferred.await(done) as Effect.Effect<A, StoreUnavailable>)
      )
  })

/** Every statement the store runs, prepared once. */
const prepareStatements = (db: Database) => {
  const insertEvent = db.query<unknown, [string, number]>("INSERT OR IGNORE INTO events (id, received_at) VALUES (?, ?)")
  const setPin = db.query<unknown, [string, string, string, number]>(
    "INSERT OR REPLACE INTO pins (room, destination, call, pinned_at) VALUES (?, ?, ?, ?)"
  )
  const touchPin = db.query<unknown, [number, string]>("UPDATE pins SET pinned_at = ? WHERE room = ?")
  const clearPin = db.query<unknown, [string]>("DELETE FROM pins WHERE room = ?")
  const selectPin = db.query<{ destination: string; call: string }, [string]>("SELECT destination, call FROM pins WHERE room = ?")
  const insertDelivery = db.query<
    DeliveryRow,
    [string, string, string, string, string | null, string | null, string, number | null, string | null, number]
  >(
    `INSERT INTO deliveries (event_id, event_type, tenant, url, room, domain, body, event_created_at, secret,
       next_attempt_at, created_at, queued_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?10) RETURNING *`
  )
  const insertUnroutable = db.query<
    unknown,
    [number, string, string, string | null, string | null, string | null, string | null, string | null, string]
  >(
    `INSERT INTO unroutable (at, event_id, event_type, room, x_to_ip, to_header, dialled, domain, reason)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
  )
  const selectPending = db.query<DeliveryRow, []>("SELECT * FROM deliveries WHERE status = 'pending' ORDER BY id")
  const insertAttempt = db.query<unknown, [number, number, number, number | null, string | null, number]>(
    "INSERT INTO attempts (delivery_id, attempt, at, status, error, latency_ms) VALUES (?, ?, ?, ?, ?, ?)"
  )
  const updateAttempt = db.query<unknown, [string, number, number | null, string | null, number, number, number]>(
    `UPDATE deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
     WHERE id = ?`
  )
  const updateNextAttempt = db.query<unknown, [number, number]>(
    "UPDATE deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending'"
  )
  const selectDeliveries = db.query<DeliveryRow, [string | null, string | null, number | null, number]>(
    `SELECT * FROM deliveries
     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR tenant = ?2) AND (?3 IS NULL OR id < ?3)
     ORDER BY id DESC LIMIT ?4`
  )
  const selectDelivery = db.query<DeliveryRow, [number]>("SELECT * FROM deliveries WHERE id = ?")
  const selectAttempts = db.query<{ attempt: number; at: number; status: number | null; error: string | null; latency_ms: number }, [number]>(
    "SELECT attempt, at, status, error, latency_ms FROM attempts WHERE delivery_id = ? ORDER BY rowid"
  )
  const requeueOne = db.query<DeliveryRow, [number, number, number]>(
    `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, queued_at = ?1, updated_at = ?2
     WHERE id = ?3 AND status = 'failed' RETURNING *`
  )
  const requeueTenant = db.query<DeliveryRow, [number, number, string, number]>(
    `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, queued_at = ?1, updated_at = ?2
     WHERE tenant = ?3 AND status = 'failed' AND created_at >= ?4 RETURNING *`
  )
  const selectUnroutable = db.query<UnroutableRow, [number]>("SELECT * FROM unroutable ORDER BY id DESC LIMIT ?")
  const selectHooks = db.query<{ hook: string }, []>("SELECT hook FROM hooks ORDER BY host")
  const upsertHook = db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO hooks (host, hook, updated_at) VALUES (?, ?, ?)")
  const deleteHook = db.query<unknown, [string]>("DELETE FROM hooks WHERE host = ?")
  const selectNumbers = db.query<NumberMapping, []>("SELECT number, host FROM numbers ORDER BY number")
  const upsertNumber = db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO numbers (number, host, updated_at) VALUES (?, ?, ?)")
  const deleteNumber = db.query<unknown, [string]>("DELETE FROM numbers WHERE number = ?")
  const selectCached = db.query<{ value: string }, [string]>("SELECT value FROM cache WHERE key = ?")
  const upsertCached = db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO cache (key, value, updated_at) VALUES (?, ?, ?)")
  const ping = db.query<unknown, []>("SELECT 1")

  const expiredDeliveries = db.query<{ id: number }, [string, number]>(
    `SELECT id FROM deliveries WHERE status = ? AND updated_at < ? LIMIT ${PRUNE_SLICE}`
  )
  const deleteAttemptsOf = db.query<unknown, [string]>("DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))")
  const deleteDeliveries = db.query<unknown, [string]>("DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))")
  const pruneEvents = db.query<unknown, [number]>(
    `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_at < ? LIMIT ${PRUNE_SLICE})`
  )
  const pruneUnroutable = db.query<unknown, [number]>(
    `DELETE FROM unroutable WHERE id IN (SELECT id FROM unroutable WHERE at < ? LIMIT ${PRUNE_SLICE})`
  )
  const prunePins = db.query<unknown, [number]>(
    `DELETE FROM pins WHERE room IN (SELECT room FROM pins WHERE pinned_at < ? LIMIT ${PRUNE_SLICE})`
  )
  return {
    insertEvent,
    setPin,
    touchPin,
    clearPin,
    selectPin,
    insertDelivery,
    insertUnroutable,
    selectPending,
    insertAttempt,
    updateAttempt,
    updateNextAttempt,
    selectDeliveries,
    selectDelivery,
    selectAttempts,
    requeueOne,
    requeueTenant,
    selectUnroutable,
    selectHooks,
    upsertHook,
    deleteHook,
    selectNumbers,
    upsertNumber,
    deleteNumber,
    selectCached,
    upsertCached,
    ping,
    expiredDeliveries,
    deleteAttemptsOf,
    deleteDeliveries,
    pruneEvents,
    pruneUnroutable,
    prunePins
  }
}

const makeSqliteStore = (path: string) =>
  Effect.gen(function* () {
    const db = yield* openDatabase(path)
    const write = yield* groupCommitter(db)
    const read = <A>(f: () => A) => Effect.try({ try: f, catch: (cause) => new StoreUnavailable({ cause }) })

    // Preparing checks each statement against the schema: a mismatch is a store failure, not a crash.
    const sql = yield* Effect.try({
      try: () => prepareStatements(db),
      catch: (cause) => new StoreUnavailable({ cause })
    })

    const applyPinChange = (change: PinChange | undefined, at: number) => {
      if (change?._tag === "Set") {
        const { room, destination, call } = change.pin
        sql.setPin.run(room, JSON.stringify(destination), JSON.stringify(call), at)
      } else if (change?._tag === "Touch") sql.touchPin.run(at, change.room)
      else if (change?._tag === "Clear") sql.clearPin.run(change.room)
    }

    const acceptOne = (a: Acceptance): AcceptResult => {
      if (sql.insertEvent.run(a.eventId, a.receivedAt).changes === 0) return { _tag: "Duplicate" }
      applyPinChange(a.pinChange, a.receivedAt)
      const u = a.unroutable
      if (u) sql.insertUnroutable.run(u.at, u.eventId, u.eventType, u.room, u.headers.xToIp, u.headers.to, u.headers.dialled, u.domain, u.reason)
      const d = a.delivery
      const row =
        d &&
        sql.insertDelivery.get(d.eventId, d.eventType, d.tenant, d.url, d.room, d.domain, d.body, d.eventCreatedAt, d.secret, a.receivedAt)
      return { _tag: "Accepted", delivery: row ? toDelivery(row) : undefined }
    }

    const prune = (now: number, policy: RetentionPolicy) =>
      Effect.gen(function* () {
        // Each slice is its own write, so events keep being accepted between slices.
        const sliced = (deleteSlice: () => number) =>
          Effect.iterate({ total: 0, last: PRUNE_SLICE }, {
            while: ({ last }) => last >= PRUNE_SLICE,
            body: ({ total }) => Effect.map(write(deleteSlice), (n) => ({ total: total + n, last: n }))
          }).pipe(Effect.map(({ total }) => total))
        // A delivery's attempt history goes in the same slice as the delivery, found by its index.
        const pruneDeliveries = (status: Delivery["status"], before: number) => () => {
          const ids = JSON.stringify(sql.expiredDeliveries.all(status, before).map((row) => row.id))
          sql.deleteAttemptsOf.run(ids)
          return sql.deleteDeliveries.run(ids).changes
        }
        const deliveries =
          (yield* sliced(pruneDeliveries("delivered", now - policy.delivered))) +
          (yield* sliced(pruneDeliveries("failed", now - policy.failed)))
        const events = yield* sliced(() => sql.pruneEvents.run(now - policy.dedupe).changes)
        const unroutable = yield* sliced(() => sql.pruneUnroutable.run(now - policy.unroutable).changes)
        const pins = yield* sliced(() => sql.prunePins.run(now - policy.pins).changes)
        return { deliveries, events, unroutable, pins }
      })

    return Store.of({
      accept: (acceptance) => write(() => acceptOne(acceptance)),
      ping: read(() => {
        sql.ping.get()
      }),
      pinOf: (room) =>
        read(() => {
          const row = sql.selectPin.get(room)
          return row ? Option.some<Pin>({ room, destination: JSON.parse(row.destination), call: JSON.parse(row.call) }) : Option.none()
        }),
      pending: read(() => sql.selectPending.all().map(toDelivery)),
      recordAttempt: (id, r) =>
        write(() => {
          sql.insertAttempt.run(id, r.attempt, r.at, r.status, r.error, r.latencyMs)
          sql.updateAttempt.run(r.final ?? "pending", r.attempt, r.status, r.error, r.nextAttemptAt, r.at, id)
        }),
      scheduleRetry: (id, nextAttemptAt) =>
        write(() => {
          sql.updateNextAttempt.run(nextAttemptAt, id)
        }),
      deliveries: (q) => read(() => sql.selectDeliveries.all(q.status ?? null, q.tenant ?? null, q.before ?? null, q.limit).map(toDelivery)),
      delivery: (id) =>
        read(() => {
          const row = sql.selectDelivery.get(id)
          if (!row) return Option.none()
          const history = sql.selectAttempts
            .all(id)
            .map((a) => ({ attempt: a.attempt, at: a.at, status: a.status, error: a.error, latencyMs: a.latency_ms }))
          return Option.some({ ...toDelivery(row), history })
        }),
      requeue: (id, now) =>
        write((): RequeueResult => {
          const row = sql.requeueOne.get(now, now, id)
          if (row) return { _tag: "Requeued", delivery: toDelivery(row) }
          const existing = sql.selectDelivery.get(id)
          return existing ? { _tag: "NotFailed", status: existing.status } : { _tag: "NotFound" }
        }),
      requeueFailed: (tenant, since, now) =>
        write(() => sql.requeueTenant.all(now, now, tenant, since).map(toDelivery).sort((a, b) => a.id - b.id)),
      unroutable: (limit) =>
        read(() =>
          sql.selectUnroutable.all(limit).map((row) => ({
            at: row.at,
            eventId: row.event_id,
            eventType: row.event_type,
            room: row.room,
            headers: { xToIp: row.x_to_ip, to: row.to_header, dialled: row.dialled },
            domain: row.domain,
            reason: row.reason
          }))
        ),
      prune,
      apiHooks: read(() => sql.selectHooks.all().map((row) => JSON.parse(row.hook) as StoredHook)),
      putApiHook: (hook) =>
        write(() => {
          sql.upsertHook.run(hook.host, JSON.stringify(hook), Date.now())
        }),
      removeApiHook: (host) => write(() => sql.deleteHook.run(host).changes > 0),
      apiNumbers: read(() => sql.selectNumbers.all()),
      putApiNumber: (mapping) =>
        write(() => {
          sql.upsertNumber.run(mapping.number, mapping.host, Date.now())
        }),
      removeApiNumber: (number) => write(() => sql.deleteNumber.run(number).changes > 0),
      cached: (key) => read(() => Option.fromNullable(sql.selectCached.get(key)?.value)),
      cache: (key, value) =>
        write(() => {
          sql.upsertCached.run(key, value, Date.now())
        })
    })
  })
