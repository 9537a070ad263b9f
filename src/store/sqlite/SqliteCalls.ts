import type { Database } from "bun:sqlite"
import { callCreatedBy, type CallQuery } from "../../domain/Call.ts"
import type { EncodedAcceptance } from "../StoreBackend.ts"

/** What a call change writes besides the call: the event's timeline entry, with its body while the call is unrouted for a reason. */
export interface CallWrite {
  readonly change: NonNullable<EncodedAcceptance["call"]>
  readonly body: string | undefined
  /** See EncodedAcceptance.replayable: the body is kept whatever the call's record says. */
  readonly keepBody: boolean
}

/** Applies call changes inside the acceptance's transaction (see CallChange for the rules). */
export const prepareCallWrites = (db: Database) => {
  const q = {
    // One statement for what every event does to its call: create it, keep its first start, touch it.
    // What it answers says whether an identity has anything left to fill.
    upsert: db.query<{ id: number; untenanted: number; reasoned: number }, Array<string | number | null>>(
      `INSERT INTO calls (key, room, room_sid, tenant, status, domain, from_number, to_number, sip_call_id, routing, sip,
         first_seen_at, started_at, sort_at, updated_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, coalesce(?13, ?12), ?12)
       ON CONFLICT (key) DO UPDATE SET
         sort_at = CASE WHEN calls.started_at IS NULL AND excluded.started_at IS NOT NULL THEN excluded.started_at ELSE calls.sort_at END,
         started_at = coalesce(calls.started_at, excluded.started_at),
         updated_at = excluded.updated_at
       RETURNING id, tenant IS NULL AS untenanted, json_extract(routing, '$.reason') IS NOT NULL AS reasoned`
    ),
    // A record with no tenant takes the first routed identity, or (while it has no reason yet) the first unrouted one.
    // A call that ended before it found its tenant (its events arrived out of order) is ended once it has one.
    identify: db.query<unknown, Array<string | number | null>>(
      `UPDATE calls SET tenant = ?2, status = CASE WHEN ?2 IS NULL THEN status WHEN ended_at IS NOT NULL THEN 'ended' ELSE 'active' END,
         domain = ?3, from_number = ?4, to_number = ?5, sip_call_id = ?6, routing = ?7, sip = ?8
       WHERE id = ?1 AND tenant IS NULL AND (?2 IS NOT NULL OR json_extract(routing, '$.reason') IS NULL)`
    ),
    // First wins, as call.ended does; a call that never found a tenant stays unrouted.
    end: db.query<unknown, [number, number, string, string | null]>(
      `UPDATE calls SET ended_at = ?2, ended_by = ?3, disconnect_reason = ?4, status = CASE WHEN tenant IS NULL THEN 'unrouted' ELSE 'ended' END
       WHERE id = ?1 AND ended_at IS NULL`
    ),
    event: db.query<unknown, [number, string, string, number, number | null, string | null]>(
      "INSERT INTO call_events (call_id, event_id, event_type, at, created_at, body) VALUES (?, ?, ?, ?, ?, ?)"
    )
  }
  /** Writes the change and answers its call's number, which the event's deliveries are filed under. */
  return ({ change: c, body, keepBody }: CallWrite): number => {
    const id = c.identity
    const json = (value: unknown) => (value === undefined || value === null ? null : JSON.stringify(value))
    const r = callCreatedBy(c)
    const routing = JSON.stringify(r.routing)
    const sip = json(r.sip)
    const call = q.upsert.get(r.key, r.room, r.roomSid, r.tenant, r.status, r.domain, r.from, r.to, r.sipCallId, routing, sip, r.firstSeenAt, r.startedAt)!
    // A record without a tenant takes the identity by the rule in `identify` (a new one holds it already: nothing left to fill).
    if (id && call.untenanted && (id.tenant !== null || !call.reasoned)) {
      q.identify.run(call.id, id.tenant, id.domain, id.from, id.to, id.sipCallId, JSON.stringify(id.routing), json(id.sip))
    }
    if (c.ended) q.end.run(call.id, c.ended.at, c.ended.by, c.ended.disconnectReason)
    // The body is kept while the call is unrouted for a reason (as it stands after this event's identity).
    const unroutedForAReason = call.untenanted && !id?.tenant && (call.reasoned || (id !== undefined && id.routing.reason !== null))
    q.event.run(call.id, c.event.eventId, c.event.eventType, c.event.at, c.event.createdAt, body !== undefined && (keepBody || unroutedForAReason) ? body : null)
    return call.id
  }
}

/** A call row as read: JSON columns as text, counts as a JSON object of status → n. */
export interface CallRow {
  readonly key: string
  readonly room: string
  readonly room_sid: string | null
  readonly tenant: string | null
  readonly status: string
  readonly domain: string | null
  readonly from_number: string | null
  readonly to_number: string | null
  readonly sip_call_id: string | null
  readonly routing: string
  readonly sip: string | null
  readonly first_seen_at: number
  readonly started_at: number | null
  readonly ended_at: number | null
  readonly ended_by: string | null
  readonly disconnect_reason: string | null
  readonly counts: string | null
}

/** A row as the call record's fields, for the shared layer to decode. */
export const recordOf = (row: CallRow) => ({
  key: row.key,
  room: row.room,
  roomSid: row.room_sid,
  tenant: row.tenant,
  status: row.status,
  domain: row.domain,
  from: row.from_number,
  to: row.to_number,
  sipCallId: row.sip_call_id,
  routing: JSON.parse(row.routing),
  sip: row.sip === null ? null : JSON.parse(row.sip),
  firstSeenAt: row.first_seen_at,
  startedAt: row.started_at,
  endedAt: row.ended_at,
  endedBy: row.ended_by,
  disconnectReason: row.disconnect_reason,
  deliveries: { pending: 0, delivered: 0, failed: 0, expired: 0, ...(row.counts === null ? {} : JSON.parse(row.counts)) }
})

const COUNTS = `(SELECT json_group_object(status, n) FROM (SELECT status, COUNT(*) AS n FROM deliveries WHERE call_id = c.id GROUP BY status)) AS counts`

/** Whether a call's tenant is one of the hosts in scope, or lies under one of their wildcards. */
const IN_SCOPE = `EXISTS (SELECT 1 FROM json_each(?) AS s WHERE c.tenant = s.value
  OR (substr(s.value, 1, 2) = '*.' AND length(c.tenant) > length(s.value) - 1 AND substr(c.tenant, 1 - length(s.value)) = substr(s.value, 2)))`

/** The reads the calls API needs, prepared once. */
export const prepareCallReads = (db: Database) => {
  const list = db.query<CallRow, Array<string | number | null>>(
    `SELECT c.*, ${COUNTS} FROM calls AS c
     WHERE (?1 IS NULL OR c.tenant = ?1) AND (?2 IS NULL OR c.status = ?2) AND (?3 IS NULL OR c.from_number = ?3 OR c.to_number = ?3)
       AND (?4 IS NULL OR c.domain = ?4) AND (?5 IS NULL OR c.sort_at >= ?5) AND (?6 IS NULL OR c.sort_at < ?6)
       AND (?7 IS NULL OR c.sort_at < ?7 OR (c.sort_at = ?7 AND c.key < ?8))
       AND (?9 IS NULL OR ${IN_SCOPE.replace("json_each(?)", "json_each(?9)")})
     ORDER BY c.sort_at DESC, c.key DESC LIMIT ?10`
  )
  const one = db.query<CallRow, [string]>(
    `SELECT c.*, ${COUNTS} FROM calls AS c WHERE c.key = ?1 OR c.room = ?1 ORDER BY c.key = ?1 DESC, c.sort_at DESC, c.key DESC LIMIT 1`
  )
  const events = db.query<{ event_id: string; event_type: string; at: number; created_at: number | null }, [string]>(
    "SELECT event_id, event_type, at, created_at FROM call_events WHERE call_id = (SELECT id FROM calls WHERE key = ?) ORDER BY at, rowid"
  )
  const attempts = db.query<
    { delivery_id: number; event_id: string; event_type: string; attempt: number; at: number; status: number | null; error: string | null; latency_ms: number },
    [string]
  >(
    `SELECT a.delivery_id, d.event_id, d.event_type, a.attempt, a.at, a.status, a.error, a.latency_ms
     FROM deliveries AS d JOIN attempts AS a ON a.delivery_id = d.id WHERE d.call_id = (SELECT id FROM calls WHERE key = ?) ORDER BY a.at, a.delivery_id, a.rowid`
  )
  // An expiry finishes a delivery without an attempt: its time is the delivery's last change. (A disable is in the history.)
  const expiries = db.query<{ id: number; event_id: string; event_type: string; updated_at: number }, [string]>(
    "SELECT id, event_id, event_type, updated_at FROM deliveries WHERE call_id = (SELECT id FROM calls WHERE key = ?) AND status = 'expired' ORDER BY updated_at, id"
  )
  return {
    calls: (query: CallQuery) =>
      list.all(
        query.tenant ?? null,
        query.status ?? null,
        query.number ?? null,
        query.domain ?? null,
        query.since ?? null,
        query.until ?? null,
        query.after?.sortAt ?? null,
        query.after?.key ?? null,
        query.scope === undefined ? null : JSON.stringify(query.scope),
        query.limit
      ),
    call: (ref: string) => one.get(ref),
    timeline: (key: string) => ({
      events: events.all(key).map((e) => ({ eventId: e.event_id, eventType: e.event_type, at: e.at, createdAt: e.created_at })),
      attempts: attempts.all(key).map((a) => ({
        deliveryId: a.delivery_id,
        eventId: a.event_id,
        eventType: a.event_type,
        attempt: a.attempt,
        at: a.at,
        status: a.status,
        error: a.error,
        latencyMs: a.latency_ms
      })),
      expiries: expiries.all(key).map((d) => ({ at: d.updated_at, deliveryId: d.id, eventId: d.event_id, eventType: d.event_type }))
    })
  }
}
