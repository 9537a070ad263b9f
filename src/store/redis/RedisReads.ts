import { Effect, Option, Schema } from "effect"
import { CallEventEntry, CallRecord, type CallQuery, type CallTimeline, type DeliveryCounts } from "../../domain/Call.ts"
import { Attempt, Delivery, DeliveryChange, UnroutableEvent, UnroutedEvent } from "../../domain/Delivery.ts"
import { StoreUnavailable } from "../../domain/Errors.ts"
import { isUnderWildcard } from "../../domain/Hook.ts"
import { decodeDelivery, decodeQueued, DELIVERY_FIELDS, QUEUED_FIELDS } from "../DeliveryRecord.ts"
import type { StoreBackend } from "../StoreBackend.ts"
import { reader } from "./RedisScripts.ts"

// The Redis store's reads of deliveries, calls, the feed and replays: the scripts (see RedisScripts.ts for the
// keys) and the decoding of what they return.

const enc = JSON.stringify
const luaList = (names: ReadonlyArray<string>) => `{${names.map((n) => `'${n}'`).join(", ")}}`

/**
 * A record from its hash's values for `fields` (as HMGET returns them), each JSON; a field
 * a hash from before it was kept lacks reads as null. None when the hash is gone.
 */
const fromValues =
  <A>(fields: ReadonlyArray<string>, decode: (row: unknown) => A) =>
  (values: ReadonlyArray<string | null>): A | undefined =>
    values.every((value) => value == null) ? undefined : decode(Object.fromEntries(fields.map((field, i) => [field, JSON.parse(values[i] ?? "null")])))

export const toDelivery = fromValues(DELIVERY_FIELDS, decodeDelivery)
export const toQueued = fromValues(QUEUED_FIELDS, decodeQueued)

/** A reply read by `f`; what does not decode is a store failure, as on SQLite, not a defect. */
export const decoding = <A>(reply: Effect.Effect<unknown, StoreUnavailable>, f: (reply: unknown) => A) =>
  Effect.flatMap(reply, (r) => Effect.try({ try: () => f(r), catch: (cause) => new StoreUnavailable({ cause }) }))

// Attempts, unroutable events, timeline entries and kept events are kept as JSON, decoded as they are read.
export const decodeAttempt = Schema.decodeSync(Schema.parseJson(Attempt))
export const decodeUnroutable = Schema.decodeSync(Schema.parseJson(UnroutableEvent))
const decodeEntry = Schema.decodeSync(Schema.parseJson(CallEventEntry))
const decodeKept = Schema.decodeUnknownSync(UnroutedEvent)
const decodeChange = Schema.decodeUnknownSync(DeliveryChange)
const TimelineDelivery = Delivery.pick("id", "eventId", "eventType", "status", "updatedAt")
const TIMELINE_FIELDS = Object.keys(TimelineDelivery.fields)
const toTimelineDelivery = fromValues(TIMELINE_FIELDS, Schema.decodeUnknownSync(TimelineDelivery))

const CALL_FIELDS = Object.keys(CallRecord.fields)
/** A call as the shared layer decodes it (CallListing): its record's fields, and its deliveries counted. */
const listingOf = (values: ReadonlyArray<string | null>, [pending, delivered, failed, expired]: readonly [number, number, number, number]) =>
  fromValues(CALL_FIELDS, (record) => ({ ...(record as CallRecord), deliveries: { pending, delivered, failed, expired } satisfies DeliveryCounts }))(values)

const CALLS_LIB = `
local CALL_FIELDS = ${luaList(CALL_FIELDS)}
local STATUSES = {PENDING, '"delivered"', FAILED, EXPIRED}
-- A call's deliveries (those still kept) by status, in STATUSES order.
local function counts(key)
  local n = {}
  for _, s in ipairs(STATUSES) do n[s] = 0 end
  for _, id in ipairs(redis.call('ZRANGE', P .. 'cd:' .. key, 0, -1)) do
    local s = redis.call('HGET', dkey(id), 'status')
    if s and n[s] then n[s] = n[s] + 1 end
  end
  local out = {}
  for i, s in ipairs(STATUSES) do out[i] = n[s] end
  return out
end
local function record(key) return redis.call('HMGET', P .. 'c:' .. key, unpack(CALL_FIELDS)) end
`

/** ARGV[4]: index, [5] max and [6] min (lex bounds), [7] count. Per call, in the listing's order: {member, record values, counts}. */
const CALLS_PAGE = reader(`${CALLS_LIB}
local out = {}
for _, m in ipairs(redis.call('ZRANGE', P .. ARGV[4], ARGV[5], ARGV[6], 'BYLEX', 'REV', 'LIMIT', 0, ARGV[7])) do
  local key = string.sub(m, 18)
  out[#out + 1] = {m, record(key), counts(key)}
end
return out
`)

/**
 * ARGV[4]: a room sid or name. The call of that key, else the newest of that room: {record values, counts, its
 * timeline entries, per delivery {its id, eventId, eventType, status and updatedAt, its history}}; false for none.
 */
const CALL_DETAIL = reader(`${CALLS_LIB}
local key = ARGV[4]
if redis.call('EXISTS', P .. 'c:' .. key) == 0 then
  local newest = redis.call('ZRANGE', P .. 'calls:r:' .. key, '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)
  if not newest[1] then return false end
  key = string.sub(newest[1], 18)
end
local deliveries = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'cd:' .. key, 0, -1)) do
  local f = redis.call('HMGET', dkey(id), ${luaList(TIMELINE_FIELDS).slice(1, -1)})
  if f[1] then deliveries[#deliveries + 1] = {f, redis.call('LRANGE', P .. 'h:' .. id, 0, -1)} end
end
return {record(key), counts(key), redis.call('LRANGE', P .. 'ce:' .. key, 0, -1), deliveries}
`)

/**
 * ARGV[4]: a stream id, [5] limit, [6] how many changes to look at. The changes after it whose delivery is kept:
 * {the last id looked at ('' for none), 1 when the feed ran out, per change {id, delivery id, status, attempts, at,
 * tenant, eventId, eventType, room}}.
 */
const FEED_AFTER = reader(`
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local entries = redis.call('XRANGE', P .. 'feed', '(' .. ARGV[4], '+', 'COUNT', budget)
local out, last = {}, ''
for _, e in ipairs(entries) do
  last = e[1]
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  local d = redis.call('HMGET', dkey(f.d), 'tenant', 'eventId', 'eventType', 'room')
  if d[1] then
    out[#out + 1] = {e[1], f.d, f.s, f.n, f.at, d[1], d[2], d[3], d[4]}
    if #out == limit then return {last, 0, out} end
  end
end
return {last, #entries < budget and 1 or 0, out}
`)

/**
 * ARGV[4]: index, [5] max id ('+inf', or '(' and an id), [6] how many are wanted, [7] how many ids to look at,
 * [8..11] room, eventId, eventType, domain (JSON, as the hashes keep them; '' for any). Returns {the last id
 * looked at ('' for none), 1 when the index ran out, the matches' DELIVERY_FIELDS values}.
 */
const DELIVERIES_PAGE = reader(`
local wanted, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local filters = {{'room', ARGV[8]}, {'eventId', ARGV[9]}, {'eventType', ARGV[10]}, {'domain', ARGV[11]}}
local ids = redis.call('ZREVRANGEBYSCORE', P .. ARGV[4], ARGV[5], '-inf', 'LIMIT', 0, budget)
local found, last = {}, ''
for _, id in ipairs(ids) do
  last = id
  local match = true
  for _, f in ipairs(filters) do
    if f[2] ~= '' and redis.call('HGET', dkey(id), f[1]) ~= f[2] then match = false; break end
  end
  if match then
    found[#found + 1] = stored(id)
    if #found == wanted then return {last, 0, found} end
  end
end
return {last, #ids < budget and 1 or 0, found}
`)

/** Per group, most recently seen first: {count, first seen, last seen, the latest record's JSON}. */
const GROUPS = reader(`
local out = {}
for _, group in ipairs(redis.call('ZREVRANGE', P .. 'ug', 0, -1)) do
  local records = P .. 'ug:' .. group
  local first = redis.call('ZRANGE', records, 0, 0, 'WITHSCORES')
  local last = redis.call('ZRANGE', records, -1, -1, 'WITHSCORES')
  if last[2] then
    -- Of the records seen last, the last written.
    local sample = 0
    for _, n in ipairs(redis.call('ZRANGEBYSCORE', records, last[2], last[2])) do if tonumber(n) > sample then sample = tonumber(n) end end
    out[#out + 1] = {redis.call('ZCARD', records), first[2], last[2], redis.call('GET', P .. 'u:' .. sample)}
  end
end
return out
`)

/** ARGV[4]: domain, [5] since. Per call with a replayable unroutable event of the domain since then, and events kept: {call, kept entries}. */
const UNROUTED = reader(`
local out = {}
for _, call in ipairs(redis.call('ZRANGEBYSCORE', P .. 'ur:d:' .. ARGV[4], ARGV[5], '+inf')) do
  local kept = redis.call('LRANGE', P .. 'cu:' .. call, 0, -1)
  if #kept > 0 then out[#out + 1] = {call, kept} end
end
return out
`)

type Script = (...args: ReadonlyArray<string | number>) => Effect.Effect<unknown, StoreUnavailable>

/** A time as a listing's lex bound: an integer, at least 0, zero-padded as the members are (see `lex` in the scripts). */
const padded = (time: number) => String(Math.min(Math.max(Math.ceil(time), 0), Number.MAX_SAFE_INTEGER)).padStart(16, "0")

/** Whether a call passes the filters the listing's bounds do not apply (the time and page are its bounds; see CallQuery). */
const passes = (q: CallQuery, c: CallRecord) =>
  (q.tenant === undefined || c.tenant === q.tenant) &&
  (q.scope === undefined || (c.tenant !== null && q.scope.some((host) => c.tenant === host || isUnderWildcard(c.tenant!, host)))) &&
  (q.status === undefined || c.status === q.status) &&
  (q.number === undefined || c.from === q.number || c.to === q.number) &&
  (q.domain === undefined || c.domain === q.domain)

/** A change as FEED_AFTER returns it: the feed entry's fields, then its delivery's (each JSON). */
const changeOf = ([id, deliveryId, status, attempts, at, tenant, eventId, eventType, room]: Array<string | number | null>) =>
  decodeChange({
    id,
    deliveryId: Number(deliveryId),
    status: JSON.parse(String(status)),
    attempts: Number(attempts),
    at: Number(at),
    tenant: JSON.parse(String(tenant)),
    eventId: JSON.parse(String(eventId)),
    eventType: JSON.parse(String(eventType)),
    room: JSON.parse(String(room ?? "null"))
  })

/** Changes looked at per script call while the ones of pruned deliveries are skipped. */
const FEED_PAGE_SIZE = 1_000
/** Calls looked at per script call while a listing's filters pass fewer than it wants. */
const CALLS_PAGE_SIZE = 200
/** Deliveries looked at per script call, the same way. */
const DELIVERIES_PAGE_SIZE = 500

const byTime = <A extends { readonly at: number }>(a: A, b: A) => a.at - b.at
/** An id given by another store (or by nobody) starts at the beginning, as SQLite reads an id it cannot parse. */
const streamId = (id: string) => (/^\d+(-\d+)?$/.test(id) ? id : "0")

/** The reads over the scripts above; `run` makes a script callable, `send` sends one command. */
export const makeRedisReads = (
  run: (source: string) => Script,
  send: (command: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, StoreUnavailable>,
  P: string
) => {
  const callsPage = run(CALLS_PAGE)
  const callDetail = run(CALL_DETAIL)
  const feedAfter = run(FEED_AFTER)
  const deliveriesPage = run(DELIVERIES_PAGE)
  const groups = run(GROUPS)
  const unrouted = run(UNROUTED)

  const calls: StoreBackend["calls"] = {
    calls: (q) =>
      Effect.gen(function* () {
        const index = q.tenant === undefined ? "calls" : `calls:t:${q.tenant}`
        const after = q.after !== undefined && (q.until === undefined || q.after.sortAt < q.until) ? q.after : undefined
        let max = after !== undefined ? `(${padded(after.sortAt)}|${after.key}` : q.until !== undefined ? `(${padded(q.until)}` : "+"
        const min = q.since === undefined ? "-" : `[${padded(q.since)}`
        const out: Array<unknown> = []
        for (;;) {
          const rows = yield* decoding(callsPage(index, max, min, CALLS_PAGE_SIZE), (reply) =>
            (reply as Array<[string, Array<string | null>, [number, number, number, number]]>).map(([member, values, counts]) => [member, listingOf(values, counts)] as const)
          )
          for (const [, listing] of rows) {
            if (listing !== undefined && passes(q, listing)) out.push(listing)
            if (out.length === q.limit) return out
          }
          if (rows.length < CALLS_PAGE_SIZE) return out
          max = `(${rows[rows.length - 1]![0]}`
        }
      }),
    call: (ref) =>
      decoding(callDetail(ref), (reply) => {
        if (reply == null) return Option.none()
        const [values, counts, entries, deliveries] = reply as [Array<string | null>, [number, number, number, number], Array<string>, Array<[Array<string | null>, Array<string>]>]
        const record = listingOf(values, counts)
        if (record === undefined) return Option.none()
        const timed = deliveries.flatMap(([fields, history]) => {
          const d = toTimelineDelivery(fields)
          return d === undefined ? [] : [{ d, history: history.map((h) => decodeAttempt(h)) }]
        })
        const timeline: CallTimeline = {
          events: entries.map((e) => decodeEntry(e)).sort(byTime),
          // Deliveries come in id order and each history in order: a stable sort by time keeps both for ties.
          attempts: timed
            .flatMap(({ d, history }) => history.map((a) => ({ deliveryId: d.id, eventId: d.eventId, eventType: d.eventType, ...a })))
            .sort(byTime),
          expiries: timed
            .filter(({ d }) => d.status === "expired")
            .map(({ d }) => ({ at: d.updatedAt, deliveryId: d.id, eventId: d.eventId, eventType: d.eventType }))
            .sort(byTime)
        }
        return Option.some({ record, timeline })
      })
  }

  const history: Pick<StoreBackend["history"], "deliveries" | "unroutableGroups" | "changesAfter" | "lastChange"> = {
    deliveries: (q) =>
      Effect.gen(function* () {
        const index =
          q.tenant !== undefined && q.status !== undefined
            ? `ix:ts:${enc(q.tenant)}|${enc(q.status)}`
            : q.tenant !== undefined
              ? `ix:t:${enc(q.tenant)}`
              : q.status !== undefined
                ? `ix:s:${enc(q.status)}`
                : "ix"
        const filters = [q.room, q.eventId, q.eventType, q.domain].map((value) => (value === undefined ? "" : enc(value)))
        const out: Array<Delivery> = []
        let max = q.before === undefined ? "+inf" : `(${q.before}`
        for (;;) {
          const wanted = q.limit - out.length
          const [last, exhausted, found] = yield* decoding(deliveriesPage(index, max, wanted, Math.max(wanted, DELIVERIES_PAGE_SIZE), ...filters), (reply) => {
            const [last, exhausted, rows] = reply as [string, number, Array<Array<string | null>>]
            return [last, exhausted, rows.flatMap((values) => toDelivery(values) ?? [])] as const
          })
          out.push(...found)
          if (out.length >= q.limit || exhausted === 1 || last === "") return out
          max = `(${last}`
        }
      }),
    unroutableGroups: decoding(groups(), (reply) =>
      (reply as Array<[number, string, string, string | null]>).flatMap(([count, first, last, sample]) => {
        if (sample === null) return []
        const u = decodeUnroutable(sample)
        return [{ domain: u.domain, reason: u.reason, count: Number(count), firstSeen: Number(first), lastSeen: Number(last), sampleEventId: u.eventId, headers: u.headers }]
      })
    ),
    changesAfter: (after, limit) =>
      Effect.gen(function* () {
        const out: Array<DeliveryChange> = []
        // The changes of deliveries pruned meanwhile are skipped, a page at a time, however many there are.
        for (let from = streamId(after); ; ) {
          const [last, exhausted, changes] = yield* decoding(feedAfter(from, limit - out.length, Math.max(limit, FEED_PAGE_SIZE)), (reply) => {
            const [last, exhausted, rows] = reply as [string, number, Array<Array<string | number | null>>]
            return [last, exhausted, rows.map(changeOf)] as const
          })
          out.push(...changes)
          if (out.length >= limit || exhausted === 1 || last === "") return out
          from = last
        }
      }),
    // Where a new stream starts: the feed's last entry, or before every entry when there is none.
    lastChange: Effect.map(send("XREVRANGE", [`${P}feed`, "+", "-", "COUNT", "1"]), (reply) => (reply as Array<[string, unknown]>)[0]?.[0] ?? "0-0")
  }

  const replays: Pick<StoreBackend, "unrouted" | "forgetUnrouted"> = {
    unrouted: (domain, since) =>
      decoding(unrouted(domain, since), (reply) =>
        (reply as Array<[string, Array<string>]>)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .flatMap(([call, kept]) => kept.map((entry) => decodeKept({ call, ...JSON.parse(entry) })).sort(byTime))
      ),
    forgetUnrouted: (calls) => Effect.asVoid(send("DEL", calls.map((call) => `${P}cu:${call}`)))
  }

  return { calls, history, replays }
}
