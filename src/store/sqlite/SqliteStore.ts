import { Database } from "bun:sqlite"
import { dirname } from "node:path"
import { Effect, Option, Stream } from "effect"
import { answeredPerTurn } from "../../TurnBatch.ts"
import type { DeliveryStatus, Pin, UnroutableEvent } from "../../domain/Delivery.ts"
import { tallyOfCounts } from "../../domain/AttemptMinutes.ts"
import { StoreUnavailable } from "../../domain/Errors.ts"
import type { NumberMapping } from "../../domain/Hook.ts"
import { decodeDelivery, decodeQueued } from "../DeliveryRecord.ts"
import { prepareCallReads, recordOf } from "./SqliteCalls.ts"
import { DELIVERY_COLUMNS, openDatabase, QUEUED_COLUMNS, snapshotInto, TALLY_COLUMNS } from "./SqliteSchema.ts"
import { prepareWrites, type Settled, type WriteOp, type WriteResult } from "./SqliteWrites.ts"
import { sqliteReseal } from "./SqliteReseal.ts"
import type { StoreBackend } from "../StoreBackend.ts"
import type { FromWriter, ToWriter } from "./StoreWorker.ts"
import { CommitHealth } from "./CommitHealth.ts"

/** Applies the writes of one event-loop turn together (requests that arrive together share a commit): one transaction, one fsync. */
interface Writer {
  readonly submit: (op: WriteOp) => Promise<Settled>
  readonly alive: () => boolean
  /** Writes a snapshot of the last commit to the new file `into`, after the writes already submitted. */
  readonly snapshot: (into: string) => Promise<void>
  readonly close: () => Promise<void>
}

/** For `:memory:`: the writes run on this thread, on the one connection that also serves reads. */
const inlineWriter = (db: Database): Writer => {
  const commit = prepareWrites(db)
  return {
    submit: answeredPerTurn(async (ops: ReadonlyArray<WriteOp>) => commit(ops)),
    alive: () => true,
    snapshot: async (into) => snapshotInto(db, into),
    close: async () => {}
  }
}

/**
 * The writer thread's entry point: beside this file in the sources. In a
 * `bun build --compile` binary this module is bundled into the main entry's
 * chunk at the root, while the worker entry keeps its path under src/.
 */
const WRITER_ENTRY = import.meta.url.includes("/$bunfs/") ? "./store/sqlite/StoreWorker.ts" : "./StoreWorker.ts"

/** For a file: a writer thread owns the write connection, so commits never block this event loop. */
const workerWriter = (path: string): Promise<Writer> =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL(WRITER_ENTRY, import.meta.url).href)
    const inFlight = new Map<number, { readonly count: number; readonly settle: (results: ReadonlyArray<Settled>) => void }>()
    const snapshots = new Map<number, (error?: string) => void>()
    let seq = 0
    let dead: string | undefined
    let onClosed: (() => void) | undefined
    const post = (message: ToWriter) => worker.postMessage(message)
    const die = (reason: string) => {
      dead = reason
      reject(new Error(reason))
      for (const { count, settle } of inFlight.values()) settle(Array(count).fill({ ok: false, error: reason }))
      inFlight.clear()
      for (const settle of snapshots.values()) settle(reason)
      snapshots.clear()
      onClosed?.()
    }
    worker.onerror = (event) => die(`store writer failed: ${event.message}`)
    worker.addEventListener("close", () => die("store writer stopped"))
    worker.onmessage = (event: MessageEvent<FromWriter>) => {
      const message = event.data
      switch (message._tag) {
        case "Opened":
          return resolve(writer)
        case "OpenFailed":
          worker.terminate()
          return reject(new Error(message.error))
        case "Committed":
          inFlight.get(message.seq)?.settle(message.results)
          inFlight.delete(message.seq)
          return
        case "Snapshotted":
          snapshots.get(message.seq)?.(message.error)
          snapshots.delete(message.seq)
          return
        case "Closed":
          return onClosed?.()
      }
    }
    const writer: Writer = {
      submit: answeredPerTurn(
        (ops: ReadonlyArray<WriteOp>) =>
          new Promise<ReadonlyArray<Settled>>((settle) => {
            if (dead) return settle(ops.map(() => ({ ok: false, error: dead! })))
            inFlight.set(++seq, { count: ops.length, settle })
            post({ _tag: "Batch", seq, ops })
          })
      ),
      alive: () => dead === undefined,
      snapshot: (into) =>
        new Promise<void>((resolve, reject) => {
          if (dead) return reject(new Error(dead))
          snapshots.set(++seq, (error) => (error === undefined ? resolve() : reject(new Error(error))))
          post({ _tag: "Snapshot", seq, into })
        }),
      close: () =>
        new Promise<void>((done) => {
          if (dead) return done()
          onClosed = done
          post({ _tag: "Close" })
        }).then(() => worker.terminate())
    }
    post({ _tag: "Open", path })
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
  call: string | null
}

/** Every read the store serves, prepared once. Reads never wait for the writer: WAL readers see the last commit. */
const prepareReads = (db: Database) => ({
  selectPins: db.query<{ room: string; room_sid: string | null; destination: string; call: string; start: string | null; ended_at: number | null }, [string]>(
    "SELECT room, room_sid, destination, call, start, ended_at FROM pins WHERE room IN (SELECT value FROM json_each(?))"
  ),
  // One index seek per tenant (a skip scan), however many deliveries each has pending. The queue's
  // reads name their partial index: the planner would rather scan the status index (300 ms at 300 000 pending).
  selectPendingTenants: db.query<{ tenant: string }, []>(
    `WITH RECURSIVE t(tenant) AS (
       SELECT MIN(tenant) FROM deliveries INDEXED BY pending_by_tenant WHERE status = 'pending'
       UNION ALL
       SELECT (SELECT MIN(tenant) FROM deliveries INDEXED BY pending_by_tenant WHERE status = 'pending' AND tenant > t.tenant)
       FROM t WHERE t.tenant IS NOT NULL
     ) SELECT tenant FROM t WHERE tenant IS NOT NULL`
  ),
  selectPendingAfter: db.query<unknown, [string, number, number]>(
    `SELECT ${QUEUED_COLUMNS} FROM deliveries INDEXED BY pending_by_tenant WHERE tenant = ? AND status = 'pending' AND id > ? ORDER BY id LIMIT ?`
  ),
  selectPendingInLane: db.query<unknown, [string, string, number]>(
    `SELECT ${QUEUED_COLUMNS} FROM deliveries INDEXED BY pending_by_lane WHERE tenant = ? AND room = ? AND status = 'pending' ORDER BY id LIMIT ?`
  ),
  selectBody: db.query<{ body: string }, [number]>("SELECT body FROM deliveries WHERE id = ?"),
  selectQueueStats: db.query<{ pending: number; oldest: number | null }, []>(
    "SELECT pending, (SELECT MIN(queued_at) FROM deliveries INDEXED BY pending_by_age WHERE status = 'pending') AS oldest FROM queue_depth"
  ),
  selectDeliveries: db.query<unknown, Array<string | number | null>>(
    `SELECT ${DELIVERY_COLUMNS} FROM deliveries
     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR tenant = ?2) AND (?3 IS NULL OR id < ?3)
       AND (?5 IS NULL OR room = ?5) AND (?6 IS NULL OR event_id = ?6) AND (?7 IS NULL OR event_type = ?7) AND (?8 IS NULL OR domain = ?8)
     ORDER BY id DESC LIMIT ?4`
  ),
  selectGroups: db.query<UnroutableGroupRow, []>(
    `SELECT u.domain, u.reason, COUNT(*) AS count, MIN(u.at) AS first_seen, MAX(u.at) AS last_seen,
       (SELECT json_array(s.event_id, s.x_to_ip, s.to_header, s.dialled) FROM unroutable AS s
        WHERE s.domain IS u.domain AND s.reason = u.reason ORDER BY s.at DESC, s.id DESC LIMIT 1) AS sample
     FROM unroutable AS u GROUP BY u.domain, u.reason ORDER BY last_seen DESC`
  ),
  selectChanges: db.query<ChangeRow, [number, number]>(
    `SELECT f.seq, f.delivery_id, f.status, f.attempts, f.at, d.tenant, d.event_id, d.event_type, d.room
     FROM feed AS f JOIN deliveries AS d ON d.id = f.delivery_id WHERE f.seq > ? ORDER BY f.seq LIMIT ?`
  ),
  selectLastChange: db.query<{ seq: number | null }, []>("SELECT MAX(seq) AS seq FROM feed"),
  selectUnrouted: db.query<{ call: string; event_id: string; at: number; body: string }, [string, number]>(
    `SELECT c.key AS call, e.event_id, e.at, e.body FROM call_events AS e JOIN calls AS c ON c.id = e.call_id
     WHERE e.body IS NOT NULL AND c.key IN (SELECT call FROM unroutable WHERE domain = ? AND at >= ? AND reason != 'tenant_conflict' AND call IS NOT NULL)
     ORDER BY c.key, e.at, e.rowid`
  ),
  selectDelivery: db.query<unknown, [number]>(`SELECT ${DELIVERY_COLUMNS} FROM deliveries WHERE id = ?`),
  selectAttempts: db.query<{ attempt: number; at: number; status: number | null; error: string | null; latency_ms: number }, [number]>(
    "SELECT attempt, at, status, error, latency_ms FROM attempts WHERE delivery_id = ? ORDER BY rowid"
  ),
  selectUnroutable: db.query<UnroutableRow, [number]>("SELECT * FROM unroutable ORDER BY id DESC LIMIT ?"),
  selectHooks: db.query<{ hook: string }, []>("SELECT hook FROM hooks ORDER BY host"),
  selectNumbers: db.query<NumberMapping, []>("SELECT number, host FROM numbers ORDER BY number"),
  selectCached: db.query<{ value: string }, [string]>("SELECT value FROM cache WHERE key = ?"),
  // A range of the primary key: the keys that start with ?1 sort from it to before ?2 (?1 with its last character one higher).
  selectCachedUnder: db.query<{ key: string; value: string }, [string, string]>("SELECT key, value FROM cache WHERE key >= ? AND key < ?"),
  selectMinutes: db.query<Record<string, number>, [number, number]>(`SELECT minute, ${TALLY_COLUMNS.join(", ")} FROM attempt_minutes WHERE minute BETWEEN ? AND ?`),
  selectToken: db.query<{ record: string }, [string]>("SELECT record FROM tokens WHERE hash = ?"),
  selectTokens: db.query<{ record: string }, []>("SELECT record FROM tokens"),
  selectExpiring: db.query<{ record: string }, [string, string, number]>("SELECT record FROM expiring WHERE kind = ? AND hash = ? AND expires_at > ?"),
  ping: db.query<unknown, []>("SELECT 1")
})

interface UnroutableGroupRow {
  domain: string | null
  reason: UnroutableEvent["reason"]
  count: number
  first_seen: number
  last_seen: number
  sample: string
}

interface ChangeRow {
  seq: number
  delivery_id: number
  status: DeliveryStatus
  attempts: number
  at: number
  tenant: string
  event_id: string
  event_type: string
  room: string | null
}

const unavailable = (cause: unknown) => new StoreUnavailable({ cause })

/** Opens the write side first (it creates and upgrades the schema), then this thread's read connection. */
const open = (path: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        if (path === ":memory:") {
          const db = openDatabase(path)
          return { db, writer: inlineWriter(db) }
        }
        const writer = await workerWriter(path)
        const db = new Database(path, { strict: true })
        db.exec("PRAGMA busy_timeout = 1000")
        return { db, writer }
      },
      catch: unavailable
    }),
    ({ db, writer }) => Effect.promise(() => writer.close().finally(() => db.close()))
  )

/** The SQLite store: reads on this thread, writes grouped into commits by the writer. */
export const makeSqliteStore = (path: string) =>
  Effect.gen(function* () {
    const { db, writer } = yield* open(path)
    const sql = yield* Effect.try({ try: () => prepareReads(db), catch: unavailable })
    const callReads = yield* Effect.try({ try: () => prepareCallReads(db), catch: unavailable })
    const read = <A>(f: () => A) => Effect.try({ try: f, catch: unavailable })
    const commits = new CommitHealth(path === ":memory:" ? undefined : dirname(path))
    const write = <Op extends WriteOp>(op: Op): Effect.Effect<WriteResult<Op>, StoreUnavailable> =>
      Effect.flatMap(Effect.promise(() => writer.submit(op)), (settled) => {
        if (settled.ok) {
          commits.succeeded()
          return Effect.succeed(settled.value as WriteResult<Op>)
        }
        if (settled.commit) commits.failed(settled.error)
        return Effect.fail(unavailable(settled.error))
      })

    const resealAll = yield* Effect.try({ try: () => sqliteReseal(db, write), catch: unavailable })

    const backend: StoreBackend = {
      accept: (acceptances) => write({ _tag: "Accept", acceptances }),
      pinsOf: (rooms) =>
        read(
          () =>
            new Map(
              sql.selectPins
                .all(JSON.stringify(rooms))
                .map((row): [string, typeof Pin.Encoded] => [
                  row.room,
                  {
                    room: row.room,
                    ...(row.room_sid === null ? {} : { roomSid: row.room_sid }),
                    destination: JSON.parse(row.destination),
                    call: JSON.parse(row.call),
                    start: row.start === null ? undefined : JSON.parse(row.start),
                    endedAt: row.ended_at ?? undefined
                  }
                ])
            )
        ),
      unrouted: (domain, since) => read(() => sql.selectUnrouted.all(domain, since).map((row) => ({ call: row.call, eventId: row.event_id, at: row.at, body: row.body }))),
      forgetUnrouted: (calls) => write({ _tag: "ForgetUnrouted", calls }),
      calls: {
        calls: (query) => read(() => callReads.calls(query).map(recordOf)),
        call: (ref) =>
          read(() => {
            const row = callReads.call(ref)
            return row === null ? Option.none() : Option.some({ record: recordOf(row), timeline: callReads.timeline(row.key) })
          })
      },
      ping: Effect.flatMap(read(() => sql.ping.get()), () => {
        if (!writer.alive()) return Effect.fail(new StoreUnavailable({ cause: "store writer stopped", reason: "store writer stopped" }))
        const failing = commits.failing
        if (failing === undefined) return Effect.void
        const notReady = new StoreUnavailable({ cause: failing, reason: `writes fail: ${failing}` })
        if (!commits.mayResume()) return Effect.fail(notReady)
        // Readiness must come back by itself, with no traffic while it is away: it tries a write.
        return Effect.mapBoth(write({ _tag: "Probe" }), { onFailure: () => notReady, onSuccess: () => commits.resumed() })
      }),
      queue: {
        pendingTenants: read(() => sql.selectPendingTenants.all().map((row) => row.tenant)),
        pendingAfter: (tenant, afterId, limit) => read(() => sql.selectPendingAfter.all(tenant, afterId, limit).map(decodeQueued)),
        pendingInLane: (tenant, room, limit) => read(() => sql.selectPendingInLane.all(tenant, room, limit).map(decodeQueued)),
        bodyOf: (id) => read(() => Option.fromNullable(sql.selectBody.get(id)?.body)),
        recordAttempts: (attempts) => write({ _tag: "RecordAttempts", attempts }),
        queueStats: read(() => {
          const row = sql.selectQueueStats.get()
          return { depth: row?.pending ?? 0, oldestQueuedAt: row?.oldest ?? undefined }
        }),
        requeue: (id, now) =>
          Effect.map(write({ _tag: "Requeue", id, now }), (outcome) => (outcome._tag === "Requeued" ? { _tag: "Requeued", delivery: decodeDelivery(outcome.row) } : outcome)),
        requeueFailed: (tenant, since, now) => write({ _tag: "RequeueFailed", tenant, since, now })
      },
      history: {
        deliveries: (q) =>
          read(() =>
            sql.selectDeliveries
              .all(q.status ?? null, q.tenant ?? null, q.before ?? null, q.limit, q.room ?? null, q.eventId ?? null, q.eventType ?? null, q.domain ?? null)
              .map(decodeDelivery)
          ),
        unroutableGroups: read(() =>
          sql.selectGroups.all().map((row) => {
            const [sampleEventId, xToIp, to, dialled] = JSON.parse(row.sample) as [string, string | null, string | null, string | null]
            return { domain: row.domain, reason: row.reason, count: row.count, firstSeen: row.first_seen, lastSeen: row.last_seen, sampleEventId, headers: { xToIp, to, dialled } }
          })
        ),
        changesAfter: (after, limit) =>
          read(() =>
            sql.selectChanges.all(Number(after) || 0, limit).map((row) => ({
              id: String(row.seq),
              deliveryId: row.delivery_id,
              tenant: row.tenant,
              eventId: row.event_id,
              eventType: row.event_type,
              room: row.room,
              status: row.status,
              attempts: row.attempts,
              at: row.at
            }))
          ),
        lastChange: read(() => String(sql.selectLastChange.get()?.seq ?? 0)),
        attemptMinutes: (first, last) =>
          read(() => sql.selectMinutes.all(first, last).map((row) => tallyOfCounts(row.minute!, TALLY_COLUMNS.map((column) => row[column])))),
        delivery: (id) =>
          read(() => {
            const row = sql.selectDelivery.get(id)
            if (!row) return Option.none()
            const history = sql.selectAttempts
              .all(id)
              .map((a) => ({ attempt: a.attempt, at: a.at, status: a.status, error: a.error, latencyMs: a.latency_ms }))
            return Option.some({ ...decodeDelivery(row), history })
          }),
        unroutable: (limit) =>
          read(() =>
            sql.selectUnroutable.all(limit).map((row) => ({
              at: row.at,
              eventId: row.event_id,
              eventType: row.event_type,
              room: row.room,
              headers: { xToIp: row.x_to_ip, to: row.to_header, dialled: row.dialled },
              domain: row.domain,
              reason: row.reason,
              call: row.call
            }))
          )
      },
      hooks: {
        apiHooks: read(() => sql.selectHooks.all().map((row) => row.hook)),
        putApiHook: (host, json) => write({ _tag: "PutApiHook", host, json }),
        removeApiHook: (host) => write({ _tag: "RemoveApiHook", host }),
        apiNumbers: read(() => sql.selectNumbers.all()),
        putApiNumber: (mapping) => write({ _tag: "PutApiNumber", mapping }),
        removeApiNumber: (number) => write({ _tag: "RemoveApiNumber", number }),
        // One process owns the file: nobody else changes the API entries.
        apiChanges: Stream.never,
        cached: (key) => read(() => Option.fromNullable(sql.selectCached.get(key)?.value)),
        cachedUnder: (prefix) =>
          read(() =>
            sql.selectCachedUnder.all(prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)).map((row) => [row.key, row.value] as const)
          ),
        cache: (key, value) => write({ _tag: "Cache", key, value })
      },
      tokens: {
        put: (id, hash, json) => write({ _tag: "PutToken", id, hash, json }),
        byHash: (hash) => read(() => Option.fromNullable(sql.selectToken.get(hash)?.record)),
        list: read(() => sql.selectTokens.all().map((row) => row.record)),
        remove: (id) => write({ _tag: "RemoveToken", id })
      },
      expiring: {
        put: (kind, hash, json, expiresAt, now) => write({ _tag: "PutExpiring", kind, hash, json, expiresAt, now }),
        get: (kind, hash, now) => read(() => Option.fromNullable(sql.selectExpiring.get(kind, hash, now)?.record)),
        take: (kind, hash, now) => Effect.map(write({ _tag: "TakeExpiring", kind, hash, now }), Option.fromNullable),
        remove: (kind, hash) => write({ _tag: "RemoveExpiring", kind, hash })
      },
      // Nor does anybody else hold deliveries.
      leases: { renewLeases: Effect.void, claimStale: Effect.succeed([]) },
      pruneSlice: (target, before, limit) => write({ _tag: "PruneSlice", target, before, limit }),
      reseal: (reseal) => resealAll(reseal, read),
      snapshot: (into) => Effect.tryPromise({ try: () => writer.snapshot(into), catch: unavailable })
    }
    return backend
  })
