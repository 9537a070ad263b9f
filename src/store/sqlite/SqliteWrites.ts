import type { Database } from "bun:sqlite"
import { MINUTE_TALLY_KEPT, tallyAttempts, tallyCounts } from "../../domain/AttemptMinutes.ts"
import type { Delivery, NewDelivery } from "../../domain/Delivery.ts"
import type { DeliveryStatus } from "../../domain/Delivery.ts"
import type { NumberMapping } from "../../domain/Hook.ts"
import { NEW_FIELDS } from "../DeliveryRecord.ts"
import { prepareCallWrites } from "./SqliteCalls.ts"
import { DELIVERY_COLUMNS, NEW_COLUMNS, TALLY_COLUMNS } from "./SqliteSchema.ts"
import type { PruneTarget } from "../Retention.ts"
import type { RecordedAttempt, Requeued } from "../Store.ts"
import type { AcceptOutcome, EncodedAcceptance, ExpiringKind } from "../StoreBackend.ts"

/**
 * Every change the SQLite store makes, as plain data: the writer may be another
 * thread, so a write is a message, not a closure.
 */
export type WriteOp =
  | { readonly _tag: "Accept"; readonly acceptances: ReadonlyArray<EncodedAcceptance> }
  | { readonly _tag: "RecordAttempts"; readonly attempts: ReadonlyArray<RecordedAttempt> }
  | { readonly _tag: "Requeue"; readonly id: number; readonly now: number }
  | { readonly _tag: "RequeueFailed"; readonly tenant: string; readonly since: number; readonly now: number }
  | { readonly _tag: "PruneSlice"; readonly target: PruneTarget; readonly before: number; readonly limit: number }
  | { readonly _tag: "PutApiHook"; readonly host: string; readonly json: string }
  | { readonly _tag: "ForgetUnrouted"; readonly calls: ReadonlyArray<string> }
  | { readonly _tag: "RemoveApiHook"; readonly host: string }
  | { readonly _tag: "PutApiNumber"; readonly mapping: NumberMapping }
  | { readonly _tag: "RemoveApiNumber"; readonly number: string }
  | { readonly _tag: "Cache"; readonly key: string; readonly value: string }
  | { readonly _tag: "PutToken"; readonly id: string; readonly hash: string; readonly json: string }
  | { readonly _tag: "RemoveToken"; readonly id: string }
  | { readonly _tag: "PutExpiring"; readonly kind: ExpiringKind; readonly hash: string; readonly json: string; readonly expiresAt: number; readonly now: number }
  | { readonly _tag: "TakeExpiring"; readonly kind: ExpiringKind; readonly hash: string; readonly now: number }
  | { readonly _tag: "RemoveExpiring"; readonly kind: ExpiringKind; readonly hash: string }
  /** Writes nothing new but commits a page: whether a write can land now (after a full disk, say). */
  | { readonly _tag: "Probe" }
  | { readonly _tag: "Reseal"; readonly changes: ReadonlyArray<ResealChange> }

/** A value re-encryption rewrites (see SqliteReseal.ts): by its row's key, only if it still holds `from`. */
export interface ResealChange {
  readonly place: "delivery" | "pin" | "hook" | "cache"
  readonly key: string
  readonly from: string
  readonly to: string
}

export interface WriteResults {
  Accept: ReadonlyArray<AcceptOutcome>
  RecordAttempts: void
  Requeue: RequeueOutcome
  RequeueFailed: Requeued
  PruneSlice: number
  PutApiHook: void
  ForgetUnrouted: void
  RemoveApiHook: boolean
  PutApiNumber: void
  RemoveApiNumber: boolean
  Cache: void
  PutToken: void
  RemoveToken: boolean
  PutExpiring: void
  TakeExpiring: string | undefined
  RemoveExpiring: void
  Probe: void
  Reseal: number
}

export type WriteResult<Op extends WriteOp> = WriteResults[Op["_tag"]]

/** A requeue as the writer answers it: the row undecoded (see Requeue below). */
export type RequeueOutcome =
  | { readonly _tag: "Requeued"; readonly row: unknown }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "NotFailed"; readonly status: DeliveryStatus }

/** One write's outcome in a batch: a failing write is rolled back alone. */
export type Settled =
  | { readonly ok: true; readonly value: unknown }
  /** `commit`: the transaction itself failed (a full disk, say), not this write alone. */
  | { readonly ok: false; readonly error: string; readonly commit?: true }

/** Prepares every write statement once and returns the function that applies a batch in one transaction. */
export const prepareWrites = (db: Database) => {
  const q = {
    insertEvent: db.query<unknown, [string, number]>("INSERT OR IGNORE INTO events (id, received_at) VALUES (?, ?)"),
    // A pin of another room instance of the same name is replaced: that room is gone, this is a new call.
    setPin: db.query<unknown, [string, string | null, string, string, string | null, number]>(
      `INSERT INTO pins (room, room_sid, destination, call, start, pinned_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
       ON CONFLICT (room) DO UPDATE SET room_sid = excluded.room_sid, destination = excluded.destination, call = excluded.call,
         start = excluded.start, ended_at = NULL, pinned_at = excluded.pinned_at
       WHERE pins.room_sid IS NOT NULL AND excluded.room_sid IS NOT NULL AND pins.room_sid != excluded.room_sid`
    ),
    touchPin: db.query<unknown, [number, string]>("UPDATE pins SET pinned_at = ? WHERE room = ?"),
    endPin: db.query<unknown, [number, number, string]>(
      "UPDATE pins SET ended_at = ?, pinned_at = ? WHERE room = ? AND ended_at IS NULL"
    ),
    reseal: {
      delivery: db.query<unknown, [string, string, string]>("UPDATE deliveries SET secret = ?3 WHERE id = CAST(?1 AS INTEGER) AND secret = ?2"),
      pin: db.query<unknown, [string, string, string]>("UPDATE pins SET destination = ?3 WHERE room = ?1 AND destination = ?2"),
      hook: db.query<unknown, [string, string, string]>("UPDATE hooks SET hook = ?3 WHERE host = ?1 AND hook = ?2"),
      cache: db.query<unknown, [string, string, string]>("UPDATE cache SET value = ?3 WHERE key = ?1 AND value = ?2")
    },
    clearPin: db.query<{ open: number }, [string]>("DELETE FROM pins WHERE room = ? RETURNING ended_at IS NULL AS open"),
    // The new delivery's fields, then the time of acceptance as every timestamp, then its call's number.
    insertDelivery: db.query<unknown, Array<string | number | null>>(
      `INSERT INTO deliveries (${NEW_COLUMNS}, next_attempt_at, created_at, queued_at, updated_at, call_id)
       VALUES (${NEW_FIELDS.map((_, i) => `?${i + 1}`).join(", ")}, ${Array(4).fill(`?${NEW_FIELDS.length + 1}`).join(", ")}, ?${NEW_FIELDS.length + 2})`
    ),
    insertUnroutable: db.query<
      unknown,
      [number, string, string, string | null, string | null, string | null, string | null, string | null, string, string | null]
    >(
      `INSERT INTO unroutable (at, event_id, event_type, room, x_to_ip, to_header, dialled, domain, reason, call)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
    ),
    // What the live stream resumes from: every change of a delivery, in order.
    feed: db.query<unknown, [number, string, number, number]>("INSERT INTO feed (delivery_id, status, attempts, at) VALUES (?, ?, ?, ?)"),
    feedRequeued: db.query<unknown, [number, string, number]>(
      "INSERT INTO feed (delivery_id, status, attempts, at) SELECT id, 'pending', 0, ?1 FROM deliveries WHERE tenant = ?2 AND status = 'failed' AND created_at >= ?3 ORDER BY id"
    ),
    forgetUnrouted: db.query<unknown, [string]>("UPDATE call_events SET body = NULL WHERE body IS NOT NULL AND call_id IN (SELECT id FROM calls WHERE key IN (SELECT value FROM json_each(?)))"),
    pruneCalls: db.query<unknown, [number, number]>(
      `DELETE FROM calls WHERE id IN (SELECT id FROM calls INDEXED BY calls_by_sort WHERE sort_at < ?1 AND updated_at < ?1 LIMIT ?2) RETURNING id`
    ),
    pruneCallEvents: db.query<unknown, [string]>("DELETE FROM call_events WHERE call_id IN (SELECT value FROM json_each(?))"),
    // Oldest first: a slice that finds a change too young to go has reached the changes to keep.
    pruneFeed: db.query<unknown, [number, number]>("DELETE FROM feed WHERE seq IN (SELECT seq FROM feed ORDER BY seq LIMIT ?2) AND at < ?1"),
    insertAttempt: db.query<unknown, [number, number, number, number | null, string | null, number]>(
      "INSERT INTO attempts (delivery_id, attempt, at, status, error, latency_ms) VALUES (?, ?, ?, ?, ?, ?)"
    ),
    updateAttempt: db.query<unknown, [string, number, number | null, string | null, number, number, number]>(
      `UPDATE deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
       WHERE id = ?`
    ),
    // An expiry is no attempt: the last status (of the last real attempt) stays, and no history row is added.
    expireOne: db.query<unknown, [number, string | null, number, number, number]>(
      `UPDATE deliveries SET status = 'expired', attempts = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
       WHERE id = ? AND status = 'pending'`
    ),
    // The minute's tally grows by the batch's; a tally kept long enough goes in the same write (the table stays a few hours' rows).
    addToMinute: db.query<unknown, Array<number>>(
      `INSERT INTO attempt_minutes (minute, ${TALLY_COLUMNS.join(", ")}) VALUES (?${", ?".repeat(TALLY_COLUMNS.length)})
       ON CONFLICT (minute) DO UPDATE SET ${TALLY_COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(", ")}`
    ),
    pruneMinutes: db.query<unknown, [number]>("DELETE FROM attempt_minutes WHERE minute < ?"),
    selectStatus: db.query<{ status: Delivery["status"] }, [number]>("SELECT status FROM deliveries WHERE id = ?"),
    requeueOne: db.query<unknown, [number, number, number]>(
      `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, queued_at = ?1, updated_at = ?2
       WHERE id = ?3 AND status = 'failed' RETURNING ${DELIVERY_COLUMNS}`
    ),
    firstFailed: db.query<{ id: number | null }, [string, number]>(
      "SELECT MIN(id) AS id FROM deliveries WHERE tenant = ? AND status = 'failed' AND created_at >= ?"
    ),
    requeueTenant: db.query<unknown, [number, number, string, number]>(
      `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, queued_at = ?1, updated_at = ?2
       WHERE tenant = ?3 AND status = 'failed' AND created_at >= ?4`
    ),
    upsertHook: db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO hooks (host, hook, updated_at) VALUES (?, ?, ?)"),
    deleteHook: db.query<unknown, [string]>("DELETE FROM hooks WHERE host = ?"),
    upsertNumber: db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO numbers (number, host, updated_at) VALUES (?, ?, ?)"),
    deleteNumber: db.query<unknown, [string]>("DELETE FROM numbers WHERE number = ?"),
    upsertCached: db.query<unknown, [string, string, number]>("INSERT OR REPLACE INTO cache (key, value, updated_at) VALUES (?, ?, ?)"),
    insertToken: db.query<unknown, [string, string, string]>("INSERT INTO tokens (id, hash, record) VALUES (?, ?, ?)"),
    deleteToken: db.query<unknown, [string]>("DELETE FROM tokens WHERE id = ?"),
    pruneExpiring: db.query<unknown, [number]>("DELETE FROM expiring WHERE expires_at <= ?"),
    insertExpiring: db.query<unknown, [string, string, string, number]>("INSERT OR REPLACE INTO expiring (kind, hash, record, expires_at) VALUES (?, ?, ?, ?)"),
    takeExpiring: db.query<{ record: string }, [string, string, number]>("DELETE FROM expiring WHERE kind = ? AND hash = ? AND expires_at > ? RETURNING record"),
    deleteExpiring: db.query<unknown, [string, string]>("DELETE FROM expiring WHERE kind = ? AND hash = ?"),
    probe: db.query<unknown, []>("UPDATE queue_depth SET pending = pending"),
    expiredDeliveries: db.query<{ id: number }, [string, number, number]>("SELECT id FROM deliveries WHERE status = ? AND updated_at < ? LIMIT ?"),
    deleteAttemptsOf: db.query<unknown, [string]>("DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))"),
    deleteDeliveries: db.query<unknown, [string]>("DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"),
    pruneEvents: db.query<unknown, [number, number]>("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_at < ? LIMIT ?)"),
    pruneUnroutable: db.query<unknown, [number, number]>("DELETE FROM unroutable WHERE id IN (SELECT id FROM unroutable WHERE at < ? LIMIT ?)"),
    prunePins: db.query<unknown, [number, number]>("DELETE FROM pins WHERE room IN (SELECT room FROM pins WHERE pinned_at < ? LIMIT ?)")
  }

  /** Applies the change; true when it started the call (created the pin) or ended it (found it not yet ended). */
  const applyPinChange = (change: EncodedAcceptance["pinChange"], at: number): boolean => {
    switch (change?._tag) {
      case undefined:
        return false
      case "Set": {
        const { room, roomSid, destination, call, start } = change.pin
        if (q.setPin.run(room, roomSid ?? null, JSON.stringify(destination), JSON.stringify(call), start ? JSON.stringify(start) : null, at).changes > 0) return true
        // Pinned meanwhile by another event: the call stays where that one put it.
        q.touchPin.run(at, room)
        return false
      }
      case "Touch":
        q.touchPin.run(at, change.room)
        return false
      case "End":
        if (q.endPin.run(change.at, at, change.room).changes > 0) return true
        q.touchPin.run(at, change.room)
        return false
      case "Clear":
        return q.clearPin.get(change.room)?.open === 1
    }
  }

  const writeCall = prepareCallWrites(db)

  const insertDelivery = (d: typeof NewDelivery.Encoded, at: number, callId: number | null) =>
    Number(q.insertDelivery.run(...NEW_FIELDS.map((field) => d[field]), at, callId).lastInsertRowid)

  const accept = (a: EncodedAcceptance): AcceptOutcome => {
    if (q.insertEvent.run(a.eventId, a.receivedAt).changes === 0) return { _tag: "Duplicate" }
    const callChanged = applyPinChange(a.pinChange, a.receivedAt)
    const u = a.unroutable
    if (u) q.insertUnroutable.run(u.at, u.eventId, u.eventType, u.room, u.headers.xToIp, u.headers.to, u.headers.dialled, u.domain, u.reason, u.call ?? null)
    const callId = a.call ? writeCall({ change: a.call, body: a.unroutedBody, keepBody: a.replayable }) : null
    const deliveryId = a.delivery ? insertDelivery(a.delivery, a.receivedAt, callId) : undefined
    const callEventId = a.callEvent && callChanged ? insertDelivery(a.callEvent, a.receivedAt, callId) : undefined
    for (const id of [deliveryId, callEventId]) if (id !== undefined) q.feed.run(id, "pending", 0, a.receivedAt)
    return { _tag: "Accepted", deliveryId, callEventId }
  }

  // A delivery's attempt history goes in the same slice as the delivery, found by its index.
  const pruneDeliveries = (status: Delivery["status"], before: number, limit: number) => {
    const ids = JSON.stringify(q.expiredDeliveries.all(status, before, limit).map((row) => row.id))
    q.deleteAttemptsOf.run(ids)
    return q.deleteDeliveries.run(ids).changes
  }

  // Slices are short, so the write lock is never held for long.
  const pruneSlice = (target: PruneTarget, before: number, limit: number): number => {
    switch (target) {
      case "delivered":
      case "failed":
      case "expired":
        return pruneDeliveries(target, before, limit)
      case "events":
        return q.pruneEvents.run(before, limit).changes
      case "unroutable":
        return q.pruneUnroutable.run(before, limit).changes
      case "pins":
        return q.prunePins.run(before, limit).changes
      case "calls": {
        // A call's timeline goes in the same slice as the call.
        const ids = (q.pruneCalls.all(before, limit) as Array<{ id: number }>).map((row) => row.id)
        q.pruneCallEvents.run(JSON.stringify(ids))
        return ids.length
      }
      case "feed":
        return q.pruneFeed.run(before, limit).changes
    }
  }

  const recordAttempt = ({ id, record: r }: RecordedAttempt) => {
    if (r.final === "expired") {
      if (q.expireOne.run(r.attempt, r.error, r.nextAttemptAt, r.at, id).changes > 0) q.feed.run(id, "expired", r.attempt, r.at)
      return
    }
    q.insertAttempt.run(id, r.attempt, r.at, r.status, r.error, r.latencyMs)
    q.updateAttempt.run(r.final ?? "pending", r.attempt, r.status, r.error, r.nextAttemptAt, r.at, id)
    q.feed.run(id, r.final ?? "pending", r.attempt, r.at)
  }

  const apply = (op: WriteOp): unknown => {
    switch (op._tag) {
      case "Accept":
        return op.acceptances.map(accept)
      case "RecordAttempts": {
        op.attempts.forEach(recordAttempt)
        const tallies = tallyAttempts(op.attempts.map((a) => a.record))
        for (const tally of tallies) q.addToMinute.run(tally.minute, ...tallyCounts(tally))
        if (tallies.length > 0) q.pruneMinutes.run(Math.max(...tallies.map((t) => t.minute)) - MINUTE_TALLY_KEPT)
        return undefined
      }
      case "Requeue": {
        const row = q.requeueOne.get(op.now, op.now, op.id)
        // The row goes back as it is: decoded where it is used, since a decoded secret does not survive the trip between threads.
        if (row) {
          q.feed.run(op.id, "pending", 0, op.now)
          return { _tag: "Requeued", row } satisfies RequeueOutcome
        }
        const existing = q.selectStatus.get(op.id)
        return (existing ? { _tag: "NotFailed", status: existing.status } : { _tag: "NotFound" }) satisfies RequeueOutcome
      }
      case "RequeueFailed": {
        const firstId = q.firstFailed.get(op.tenant, op.since)?.id ?? undefined
        q.feedRequeued.run(op.now, op.tenant, op.since)
        const { changes } = q.requeueTenant.run(op.now, op.now, op.tenant, op.since)
        return { count: changes, firstId } satisfies Requeued
      }
      case "PruneSlice":
        return pruneSlice(op.target, op.before, op.limit)
      case "ForgetUnrouted":
        q.forgetUnrouted.run(JSON.stringify(op.calls))
        return undefined
      case "PutApiHook":
        q.upsertHook.run(op.host, op.json, Date.now())
        return undefined
      case "RemoveApiHook":
        return q.deleteHook.run(op.host).changes > 0
      case "PutApiNumber":
        q.upsertNumber.run(op.mapping.number, op.mapping.host, Date.now())
        return undefined
      case "RemoveApiNumber":
        return q.deleteNumber.run(op.number).changes > 0
      case "Cache":
        q.upsertCached.run(op.key, op.value, Date.now())
        return undefined
      case "PutToken":
        q.insertToken.run(op.id, op.hash, op.json)
        return undefined
      case "RemoveToken":
        return q.deleteToken.run(op.id).changes > 0
      case "PutExpiring":
        // Few and short-lived: what has expired goes whenever another is written.
        q.pruneExpiring.run(op.now)
        q.insertExpiring.run(op.kind, op.hash, op.json, op.expiresAt)
        return undefined
      case "TakeExpiring":
        return q.takeExpiring.get(op.kind, op.hash, op.now)?.record
      case "RemoveExpiring":
        q.deleteExpiring.run(op.kind, op.hash)
        return undefined
      case "Probe":
        q.probe.run()
        return undefined
      case "Reseal":
        return op.changes.reduce((n, c) => n + q.reseal[c.place].run(c.key, c.from, c.to).changes, 0)
    }
  }

  const inSavepoint = db.transaction(<A>(write: () => A): A => write())
  /**
   * Group commit: the whole batch is one transaction, so one fsync covers it.
   * Each write runs in its own savepoint, so a failing one is rolled back alone;
   * if the commit itself fails, every write in the batch fails.
   */
  const commit = db.transaction((batch: ReadonlyArray<WriteOp>): Array<Settled> =>
    batch.map((op) => {
      try {
        return { ok: true, value: inSavepoint(() => apply(op)) }
      } catch (cause) {
        return { ok: false, error: describe(cause) }
      }
    })
  )
  return (batch: ReadonlyArray<WriteOp>): Array<Settled> => {
    try {
      return commit.immediate(batch)
    } catch (cause) {
      const error = describe(cause)
      return batch.map(() => ({ ok: false, error, commit: true }))
    }
  }
}

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))
