/**
 * The Redis store's multi-key changes, as Lua scripts so each is atomic. Every
 * script takes ARGV[1] = key prefix, ARGV[2] = this instance's consumer name,
 * ARGV[3] = the lease in ms, then its own arguments; keys are derived from the
 * prefix, so the store needs one Redis (or a primary with replicas), not a
 * Redis Cluster. ACCEPT is in RedisAccept.ts, the reads of calls, the feed and
 * replays in RedisReads.ts; they share LIB below.
 *
 * Delivery hashes `d:<id>` and call hashes `c:<K>` hold JSON-encoded field
 * values written by the caller, so the scripts compare and copy them without
 * decoding; delivery index keys embed the same encodings (e.g. `ix:s:"pending"`).
 * Raw fields, not part of the record: a delivery's `owner` (the consumer holding
 * it while pending), a call's `reasoned` (set while its routing has a reason).
 *
 * Keys, after the prefix:
 *   d:<id>  h:<id>                       a delivery and its attempt history (a list)
 *   seq                                  the last delivery id
 *   ix  ix:t:<T>  ix:s:<S>  ix:ts:<T>|<S>  every delivery by id: all, per tenant, per status, both
 *   age:<S>                              finished deliveries by last change, for pruning
 *   queued                               pending deliveries by queuedAt, for the oldest one's age
 *   e:<event id>  events                 an accepted event's id (dedupe, with a TTL), and the ids by time, for pruning
 *   pin:<room>  ended:<room>  pins       a room's pin (JSON), when its call ended, and pins by last use
 *   feed  feed:age                       every change of a delivery (a stream: id, status, attempts, time; at most
 *                                        FEED_MAX entries) and its entries by time, for pruning
 *   am:<minute>                          the tally of the attempts that ended in a minute (a hash of counts, see
 *                                        TALLY_FIELDS in RedisStore.ts), expiring MINUTE_TALLY_KEPT minutes after its last write
 * Calls, K a call's key (room sid, or `name:` and the room), as is:
 *   c:<K>                                a call's record
 *   ce:<K>  cu:<K>  cd:<K>               its LiveKit events (a list of timeline entries), the events kept for a replay
 *                                        (a list of {eventId, at, body}), the ids of its deliveries (sorted set)
 *   calls  calls:t:<tenant>  calls:r:<room>  calls by sort time then key (members `<sortAt, 16 digits>|<K>`, read by
 *                                        lex): all, a tenant's, a room name's (tenant and room as is)
 *   calls:age                            calls by last event, for pruning
 * Unroutable events, n a record's number:
 *   u:<n>  useq  ur  ur:age              a record (JSON), the last number, records by number and by time
 *   ug  ug:<G>  ug-of                    groups (G: JSON [domain, reason]) by last seen; a group's records by time; n -> G
 *   ur:d:<domain>  ur-of                 calls with a replayable unroutable event of the domain (as is), by the latest
 *                                        one's time; n -> domain
 *   hooks  numbers  cache  api           the API's hooks and numbers (hashes), cached values, and the API's change channel
 * Per consumer C (one per process), what it holds: the queue reads answer from these.
 *   o:<C>                                its pending deliveries by id (take-over pages through it)
 *   o:<C>|t:<T>                          the same per tenant
 *   o:<C>|l:<T>|<R>                      the same per call (tenant and room), for deliveries with a room
 *   o:<C>|tenants                        the tenants it holds something of (a set)
 *   hb:<C>                               its heartbeat, set with the lease as TTL
 *   consumers                            every consumer that may hold something (a set)
 *   suspects                             consumer -> when (Redis time, ms) it was first seen without a heartbeat
 * T, R and S are JSON-encoded where a delivery index names them, so `"a"|"b"` cannot be read two ways.
 *
 * Times are integer milliseconds, at least 0. Scripts start with `#!lua` so
 * Redis refuses a script at once when it is out of memory, instead of failing
 * it halfway through its writes.
 */

import { MINUTE_MS, MINUTE_TALLY_KEPT } from "../../domain/AttemptMinutes.ts"
import { DELIVERY_FIELDS, NEW_FIELDS, QUEUED_FIELDS } from "../DeliveryRecord.ts"

/** How many ARGV values one attempt takes in RECORD_ATTEMPTS. */
export const ATTEMPT_WIDTH = 8

/** The feed's bound: past it, the oldest changes go (a stream resumes within the last FEED_MAX changes). */
export const FEED_MAX = 100_000

/** Key names the store reads directly, the same as the scripts' below. */
export const keys = (P: string, consumer: string) => ({
  tenants: `${P}o:${consumer}|tenants`,
  delivery: (id: number | string) => `${P}d:${id}`,
  history: (id: number | string) => `${P}h:${id}`,
  pin: (room: string) => `${P}pin:${room}`,
  ended: (room: string) => `${P}ended:${room}`
})

const luaList = (names: ReadonlyArray<string>) => `{${names.map((n) => `'${n}'`).join(", ")}}`

const LIB = `
local P, ME, LEASE = ARGV[1], ARGV[2], ARGV[3]
local PENDING, FAILED, EXPIRED = '"pending"', '"failed"', '"expired"'
local NEW_FIELDS = ${luaList(NEW_FIELDS)}
local QUEUED_FIELDS = ${luaList(QUEUED_FIELDS)}
local DELIVERY_FIELDS = ${luaList(DELIVERY_FIELDS)}
local function dkey(id) return P .. 'd:' .. id end
local function byStatus(tenant, status) return P .. 'ix:s:' .. status, P .. 'ix:ts:' .. tenant .. '|' .. status end
-- Moves a delivery between the status indexes; finished ones are also indexed by age, for pruning.
local function move(id, tenant, from, to, at)
  local s, ts = byStatus(tenant, from)
  redis.call('ZREM', s, id); redis.call('ZREM', ts, id); redis.call('ZREM', P .. 'age:' .. from, id)
  s, ts = byStatus(tenant, to)
  redis.call('ZADD', s, id, id); redis.call('ZADD', ts, id, id)
  if to ~= PENDING then redis.call('ZADD', P .. 'age:' .. to, at, id) end
end

-- Ownership. room is JSON ('null' for none): a delivery without a room is a lane of its own, never read by lane.
local function owned(c) return P .. 'o:' .. c end
local function ownedOf(c, tenant) return P .. 'o:' .. c .. '|t:' .. tenant end
local function lane(c, tenant, room) return P .. 'o:' .. c .. '|l:' .. tenant .. '|' .. room end
local function tenantsOf(c) return P .. 'o:' .. c .. '|tenants' end
local function hold(c, id, tenant, room)
  redis.call('ZADD', owned(c), id, id)
  redis.call('ZADD', ownedOf(c, tenant), id, id)
  if room ~= 'null' then redis.call('ZADD', lane(c, tenant, room), id, id) end
  redis.call('SADD', tenantsOf(c), tenant)
  redis.call('HSET', dkey(id), 'owner', c)
end
local function release(c, id, tenant, room)
  redis.call('ZREM', owned(c), id)
  redis.call('ZREM', ownedOf(c, tenant), id)
  if room ~= 'null' then redis.call('ZREM', lane(c, tenant, room), id) end
  -- Redis deletes an emptied sorted set, so EXISTS says whether c holds anything more of the tenant.
  if redis.call('EXISTS', ownedOf(c, tenant)) == 0 then redis.call('SREM', tenantsOf(c), tenant) end
  redis.call('HDEL', dkey(id), 'owner')
end
-- Whoever is handed deliveries is alive: its heartbeat starts (or restarts) here, so nothing it was
-- just handed can look abandoned before its first renewal.
local function alive()
  redis.call('SET', P .. 'hb:' .. ME, '1', 'PX', LEASE)
  redis.call('SADD', P .. 'consumers', ME)
  redis.call('HDEL', P .. 'suspects', ME)
end
-- Redis's own clock, the one key expiry follows, so the instances' clocks need not agree.
local function serverTime()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function queued(id) return redis.call('HMGET', dkey(id), unpack(QUEUED_FIELDS)) end
local function stored(id) return redis.call('HMGET', dkey(id), unpack(DELIVERY_FIELDS)) end
-- The feed: a change of a delivery as of now, and its time for pruning. Past FEED_MAX (and a hundred), the oldest go.
local function changed(id, status, attempts, at)
  local entry = redis.call('XADD', P .. 'feed', '*', 'd', id, 's', status, 'n', attempts, 'at', at)
  redis.call('ZADD', P .. 'feed:age', at, entry)
  local excess = redis.call('XLEN', P .. 'feed') - ${FEED_MAX}
  if excess > 100 then
    for _, e in ipairs(redis.call('XRANGE', P .. 'feed', '-', '+', 'COUNT', excess)) do redis.call('ZREM', P .. 'feed:age', e[1]) end
    redis.call('XTRIM', P .. 'feed', 'MAXLEN', ${FEED_MAX})
  end
end
local function requeue(id, now)
  local key = dkey(id)
  redis.call('HSET', key, 'status', PENDING, 'attempts', '0', 'nextAttemptAt', now, 'queuedAt', now, 'updatedAt', now)
  local f = redis.call('HMGET', key, 'tenant', 'room')
  move(id, f[1], FAILED, PENDING, now)
  redis.call('ZADD', P .. 'queued', now, id)
  hold(ME, id, f[1], f[2])
  changed(id, PENDING, 0, now)
end
-- A call's member in its listings: the sort time (an integer string) zero-padded, so members order by it, then the key.
local function lex(sortAt, key) return string.rep('0', 16 - #sortAt) .. sortAt .. '|' .. key end
local function sortMember(call, key)
  local f = redis.call('HMGET', call, 'startedAt', 'firstSeenAt')
  return lex(f[1] ~= 'null' and f[1] or f[2], key)
end
`

export const script = (body: string) => `#!lua\n${LIB}${body}`
/** A script that only reads: Redis may run it while writes are refused (out of memory). */
export const reader = (body: string) => `#!lua flags=no-writes\n${LIB}${body}`

/**
 * ARGV[4]: how many minutes' tallies follow, each as: minute, n, then n field and increment pairs.
 * Then ATTEMPT_WIDTH values per attempt: id, attempt JSON, encoded new status, attempts,
 * encoded last status, encoded last error, next attempt at, at. Applied in order; an unknown id is skipped.
 *
 * Only a pending delivery changes state. An attempt at a finished one can come from an instance
 * that was taken over mid-attempt while the new holder finished the delivery: it joins the
 * history, but must not make the delivery pending again, held by nobody.
 */
export const RECORD_ATTEMPTS = script(`
local first = 5
for _ = 1, tonumber(ARGV[4]) do
  local tally, n = P .. 'am:' .. ARGV[first], tonumber(ARGV[first + 1])
  for i = first + 2, first + 2 * n, 2 do redis.call('HINCRBY', tally, ARGV[i], ARGV[i + 1]) end
  redis.call('PEXPIRE', tally, ${MINUTE_TALLY_KEPT * MINUTE_MS})
  first = first + 2 + 2 * n
end
for base = first, #ARGV, ${ATTEMPT_WIDTH} do
  local id, status, at = ARGV[base], ARGV[base + 2], ARGV[base + 7]
  local key = dkey(id)
  local from = redis.call('HGET', key, 'status')
  -- An expiry is no attempt: no history entry, and the last status (of the last real attempt) stays.
  local expiry = status == EXPIRED
  if from then
    if not expiry then redis.call('RPUSH', P .. 'h:' .. id, ARGV[base + 1]) end
    if from == PENDING then
      if expiry then
        redis.call('HSET', key, 'status', status, 'attempts', ARGV[base + 3], 'lastError', ARGV[base + 5], 'nextAttemptAt', ARGV[base + 6], 'updatedAt', at)
      else
        redis.call('HSET', key, 'status', status, 'attempts', ARGV[base + 3], 'lastStatus', ARGV[base + 4], 'lastError', ARGV[base + 5],
          'nextAttemptAt', ARGV[base + 6], 'updatedAt', at)
      end
      if status ~= PENDING then
        local f = redis.call('HMGET', key, 'tenant', 'room', 'owner')
        move(id, f[1], PENDING, status, at)
        redis.call('ZREM', P .. 'queued', id)
        -- Released from whoever holds it now, which after a take-over need not be the recording instance.
        if f[3] then release(f[3], id, f[1], f[2]) end
      end
      changed(id, status, ARGV[base + 3], at)
    elseif not expiry then
      -- An attempt joins the history whatever the delivery's state, so the feed has it, with the state it left.
      changed(id, from, redis.call('HGET', key, 'attempts'), at)
    end
  end
end
return 0
`)

/** ARGV[4]: id, ARGV[5]: now. Returns {0} not found, {1, encoded status} not failed, {2, DELIVERY_FIELDS values} requeued, held by this consumer. */
export const REQUEUE = script(`
local id, now = ARGV[4], ARGV[5]
local status = redis.call('HGET', dkey(id), 'status')
if not status then return {0} end
if status ~= FAILED then return {1, status} end
requeue(id, now)
alive()
return {2, stored(id)}
`)

/**
 * One page of requeueFailed. ARGV[4]: encoded tenant, [5] since, [6] now, [7] cursor (the last id
 * looked at), [8] page size. Walks the tenant's failed deliveries in id order after the cursor and
 * requeues those created at or after `since`. Returns {requeued, lowest id requeued or 0, new cursor, ids looked at}.
 */
export const REQUEUE_FAILED = script(`
local tenant, since, now, cursor, page = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local ids = redis.call('ZRANGEBYSCORE', P .. 'ix:ts:' .. tenant .. '|' .. FAILED, '(' .. cursor, '+inf', 'LIMIT', 0, page)
local count, first = 0, 0
for _, id in ipairs(ids) do
  local createdAt = tonumber(redis.call('HGET', dkey(id), 'createdAt'))
  if createdAt and createdAt >= since then
    requeue(id, now)
    count = count + 1
    if first == 0 then first = tonumber(id) end
  end
end
if count > 0 then alive() end
return {count, first, ids[#ids] or cursor, #ids}
`)

/** Renews this consumer's lease: one key, however much it holds. */
export const RENEW = script(`
alive()
return 0
`)

/**
 * ARGV[4]: page size, [5]: grace in ms. Takes over, in pages, what consumers whose heartbeat
 * expired (they died) held: each delivery moves to this consumer's indexes, in id order per
 * consumer, keeping its attempt count and next attempt time. A drained dead consumer is forgotten.
 *
 * A missing heartbeat alone is not proof of death: when Redis itself was down for longer than the
 * lease, every heartbeat has expired by the time it is back, though every instance lives. So a
 * consumer is first marked a suspect, and taken over only if it is still silent after the grace,
 * time enough for a live one to renew (which clears the mark). A consumer that stopped cleanly
 * marks itself long suspected, so it is taken over at once.
 * Returns each taken delivery's QUEUED_FIELDS.
 */
export const CLAIM = script(`
local budget, grace = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
alive()
local t = serverTime()
local function dead(c)
  if c == ME or redis.call('EXISTS', P .. 'hb:' .. c) == 1 then return false end
  local since = redis.call('HGET', P .. 'suspects', c)
  if not since then redis.call('HSET', P .. 'suspects', c, t); return false end
  return t - tonumber(since) >= grace
end
for _, c in ipairs(redis.call('SMEMBERS', P .. 'consumers')) do
  if budget <= 0 then break end
  if dead(c) then
    local ids = redis.call('ZRANGE', owned(c), 0, budget - 1)
    for _, id in ipairs(ids) do
      local f = redis.call('HMGET', dkey(id), 'status', 'tenant', 'room')
      if f[2] then release(c, id, f[2], f[3]) else redis.call('ZREM', owned(c), id) end
      if f[1] == PENDING then
        hold(ME, id, f[2], f[3])
        out[#out + 1] = queued(id)
      end
    end
    budget = budget - #ids
    if redis.call('EXISTS', owned(c)) == 0 then
      redis.call('DEL', tenantsOf(c)); redis.call('SREM', P .. 'consumers', c); redis.call('HDEL', P .. 'suspects', c)
    end
  end
end
return out
`)

/** This consumer stops cleanly: nothing of it is in flight any more, so the others may take over at once. */
export const RETIRE = script(`
redis.call('DEL', P .. 'hb:' .. ME)
if redis.call('SISMEMBER', P .. 'consumers', ME) == 1 then redis.call('HSET', P .. 'suspects', ME, 0) end
return 0
`)

/** ARGV[4]: encoded tenant, [5] after id (exclusive), [6] limit. This consumer's pending deliveries of the tenant, without bodies. */
export const PENDING_AFTER = reader(`
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ownedOf(ME, ARGV[4]), '(' .. ARGV[5], '+inf', 'LIMIT', 0, ARGV[6])) do out[#out + 1] = queued(id) end
return out
`)

/** ARGV[4]: encoded tenant, [5] encoded room, [6] limit. This consumer's first pending deliveries of the call, without bodies. */
export const PENDING_IN_LANE = reader(`
local out = {}
if tonumber(ARGV[6]) <= 0 then return out end
for _, id in ipairs(redis.call('ZRANGE', lane(ME, ARGV[4], ARGV[5]), 0, tonumber(ARGV[6]) - 1)) do out[#out + 1] = queued(id) end
return out
`)

/** The deployment's queue: {pending deliveries of every instance, queuedAt of the oldest or false}. */
export const QUEUE_STATS = reader(`
local oldest = redis.call('ZRANGE', P .. 'queued', 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', P .. 'ix:s:' .. PENDING), oldest[2] or false}
`)

/**
 * ARGV[4]: target, [5] cut-off (exclusive), [6] slice size. Returns how many records went. Pending deliveries are
 * never indexed by age, so never pruned. What indexes a record goes with it, in the same slice.
 */
export const PRUNE = script(`
local target, before, limit = ARGV[4], '(' .. ARGV[5], ARGV[6]
local function expired(key) return redis.call('ZRANGEBYSCORE', key, '-inf', before, 'LIMIT', 0, limit) end
local function drop(index, members, keyOf)
  for _, m in ipairs(members) do redis.call('DEL', keyOf(m)); redis.call('ZREM', index, m) end
  return #members
end
if target == 'events' then return drop(P .. 'events', expired(P .. 'events'), function(e) return P .. 'e:' .. e end) end
if target == 'pins' then
  local rooms = expired(P .. 'pins')
  for _, r in ipairs(rooms) do redis.call('DEL', P .. 'ended:' .. r) end
  return drop(P .. 'pins', rooms, function(r) return P .. 'pin:' .. r end)
end
if target == 'unroutable' then
  local ns = expired(P .. 'ur:age')
  for _, n in ipairs(ns) do
    redis.call('ZREM', P .. 'ur', n)
    local group = redis.call('HGET', P .. 'ug-of', n)
    if group then
      local records = P .. 'ug:' .. group
      redis.call('ZREM', records, n); redis.call('HDEL', P .. 'ug-of', n)
      local last = redis.call('ZRANGE', records, -1, -1, 'WITHSCORES')
      if last[2] then redis.call('ZADD', P .. 'ug', last[2], group) else redis.call('ZREM', P .. 'ug', group) end
    end
    local domain = redis.call('HGET', P .. 'ur-of', n)
    if domain then
      -- A call is scored by its latest replayable event of the domain: older than the cut-off, all of them go now.
      redis.call('ZREMRANGEBYSCORE', P .. 'ur:d:' .. domain, '-inf', before); redis.call('HDEL', P .. 'ur-of', n)
    end
  end
  return drop(P .. 'ur:age', ns, function(n) return P .. 'u:' .. n end)
end
if target == 'calls' then
  local keys = expired(P .. 'calls:age')
  for _, k in ipairs(keys) do
    local call = P .. 'c:' .. k
    local f = redis.call('HMGET', call, 'tenant', 'room')
    if f[2] then
      local m = sortMember(call, k)
      redis.call('ZREM', P .. 'calls', m); redis.call('ZREM', P .. 'calls:r:' .. cjson.decode(f[2]), m)
      if f[1] ~= 'null' then redis.call('ZREM', P .. 'calls:t:' .. cjson.decode(f[1]), m) end
    end
    redis.call('DEL', P .. 'ce:' .. k, P .. 'cu:' .. k, P .. 'cd:' .. k)
  end
  return drop(P .. 'calls:age', keys, function(k) return P .. 'c:' .. k end)
end
if target == 'feed' then
  local entries = expired(P .. 'feed:age')
  if #entries > 0 then redis.call('XDEL', P .. 'feed', unpack(entries)); redis.call('ZREM', P .. 'feed:age', unpack(entries)) end
  return #entries
end
local status = '"' .. target .. '"'
local ids = expired(P .. 'age:' .. status)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', dkey(id), 'tenant', 'call')
  if f[1] then
    local s, ts = byStatus(f[1], status)
    redis.call('ZREM', P .. 'ix:t:' .. f[1], id); redis.call('ZREM', s, id); redis.call('ZREM', ts, id)
  end
  if f[2] and f[2] ~= 'null' then redis.call('ZREM', P .. 'cd:' .. cjson.decode(f[2]), id) end
  redis.call('ZREM', P .. 'ix', id); redis.call('DEL', P .. 'h:' .. id)
end
return drop(P .. 'age:' .. status, ids, dkey)
`)

/** ARGV[4]: 'put' or 'del', [5] hash, [6] field, [7] value. Publishes on the API channel so every instance reloads. Returns the change count. */
export const API_CHANGE = script(`
local n
if ARGV[4] == 'put' then n = redis.call('HSET', P .. ARGV[5], ARGV[6], ARGV[7]) else n = redis.call('HDEL', P .. ARGV[5], ARGV[6]) end
redis.call('PUBLISH', P .. 'api', ARGV[5])
return n
`)
