/**
 * The Redis store's multi-key changes, as Lua scripts so each is atomic. Every
 * script takes the key prefix as ARGV[1]; keys are derived from it, so the
 * store needs one Redis (or a primary with replicas), not a Redis Cluster.
 *
 * Delivery hashes hold JSON-encoded field values written by the caller, so the
 * scripts compare and copy them without decoding; index keys embed the same
 * encodings (e.g. `ix:s:"pending"`). `sid` (the stream entry) is stored raw.
 */

const LIB = `
local P = ARGV[1]
local STREAM, GROUP = P .. 'stream', 'forwarders'
local PENDING, FAILED = '"pending"', '"failed"'
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
-- Adds the delivery to the stream and takes it at once, so it is in this consumer's pending list (and claimable if this instance dies).
local function enqueue(id, consumer)
  local sid = redis.call('XADD', STREAM, '*', 'id', id)
  redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'STREAMS', STREAM, '>')
  redis.call('HSET', dkey(id), 'sid', sid)
  return sid
end
local function finish(id)
  local sid = redis.call('HGET', dkey(id), 'sid')
  if sid then redis.call('XACK', STREAM, GROUP, sid); redis.call('XDEL', STREAM, sid) end
end
local function requeue(id, now, consumer)
  local key = dkey(id)
  redis.call('HSET', key, 'status', PENDING, 'attempts', '0', 'nextAttemptAt', now, 'queuedAt', now, 'updatedAt', now)
  move(id, redis.call('HGET', key, 'tenant'), FAILED, PENDING, now)
  return enqueue(id, consumer)
end
`

const script = (body: string) => LIB + body

/**
 * ARGV: prefix, eventId, receivedAt, dedupe TTL ms, pin TTL ms, pin change tag ('' for none), room, pin JSON,
 * unroutable JSON ('' for none), consumer, encoded tenant ('' for no delivery), then the delivery's field/value pairs.
 * Returns {0} for a duplicate, {1} when accepted without a delivery, {1, id, sid} with one.
 */
export const ACCEPT = script(`
local eventId, at = ARGV[2], ARGV[3]
if not redis.call('SET', P .. 'e:' .. eventId, at, 'NX', 'PX', ARGV[4]) then return {0} end
redis.call('ZADD', P .. 'events', at, eventId)
local tag, room = ARGV[6], ARGV[7]
if tag == 'Set' then
  redis.call('SET', P .. 'pin:' .. room, ARGV[8], 'PX', ARGV[5]); redis.call('ZADD', P .. 'pins', at, room)
elseif tag == 'Touch' then
  if redis.call('PEXPIRE', P .. 'pin:' .. room, ARGV[5]) == 1 then redis.call('ZADD', P .. 'pins', at, room) end
elseif tag == 'Clear' then
  redis.call('DEL', P .. 'pin:' .. room); redis.call('ZREM', P .. 'pins', room)
end
if ARGV[9] ~= '' then
  local n = redis.call('INCR', P .. 'useq')
  redis.call('SET', P .. 'u:' .. n, ARGV[9]); redis.call('ZADD', P .. 'ur', n, n); redis.call('ZADD', P .. 'ur:age', at, n)
end
local tenant = ARGV[11]
if tenant == '' then return {1} end
local id = redis.call('INCR', P .. 'seq')
redis.call('HSET', dkey(id), 'id', id, unpack(ARGV, 12))
redis.call('ZADD', P .. 'ix', id, id); redis.call('ZADD', P .. 'ix:t:' .. tenant, id, id)
local s, ts = byStatus(tenant, PENDING)
redis.call('ZADD', s, id, id); redis.call('ZADD', ts, id, id)
return {1, id, enqueue(id, ARGV[10])}
`)

/** ARGV: prefix, id, attempt JSON, encoded new status, attempts, encoded last status, encoded last error, next attempt at, at. */
export const RECORD_ATTEMPT = script(`
local id, status, at = ARGV[2], ARGV[4], ARGV[9]
local key = dkey(id)
local from = redis.call('HGET', key, 'status')
if not from then return 0 end
redis.call('RPUSH', P .. 'h:' .. id, ARGV[3])
redis.call('HSET', key, 'status', status, 'attempts', ARGV[5], 'lastStatus', ARGV[6], 'lastError', ARGV[7], 'nextAttemptAt', ARGV[8], 'updatedAt', at)
move(id, redis.call('HGET', key, 'tenant'), from, status, at)
if status ~= PENDING then finish(id) end
return 1
`)

/** ARGV: prefix, id, next attempt at. Only a pending delivery moves. */
export const SCHEDULE_RETRY = script(`
local key = dkey(ARGV[2])
if redis.call('HGET', key, 'status') == PENDING then redis.call('HSET', key, 'nextAttemptAt', ARGV[3]) end
return 0
`)

/** ARGV: prefix, id, now, consumer. Returns {0} not found, {1, encoded status} not failed, {2, sid, fields} requeued. */
export const REQUEUE = script(`
local status = redis.call('HGET', dkey(ARGV[2]), 'status')
if not status then return {0} end
if status ~= FAILED then return {1, status} end
local sid = requeue(ARGV[2], ARGV[3], ARGV[4])
return {2, sid, redis.call('HGETALL', dkey(ARGV[2]))}
`)

/** ARGV: prefix, encoded tenant, since, now, consumer. Returns {sid, fields} per requeued delivery, in id order. */
export const REQUEUE_FAILED = script(`
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'ix:ts:' .. ARGV[2] .. '|' .. FAILED, 0, -1)) do
  if tonumber(redis.call('HGET', dkey(id), 'createdAt')) >= tonumber(ARGV[3]) then
    local sid = requeue(id, ARGV[4], ARGV[5])
    out[#out + 1] = {sid, redis.call('HGETALL', dkey(id))}
  end
end
return out
`)

/** ARGV: prefix, target, cut-off (exclusive), slice size. Returns how many records went. */
export const PRUNE_SLICE = script(`
local target, before, limit = ARGV[2], '(' .. ARGV[3], ARGV[4]
local function expired(key) return redis.call('ZRANGEBYSCORE', key, '-inf', before, 'LIMIT', 0, limit) end
local function drop(index, members, keyOf)
  for _, m in ipairs(members) do redis.call('DEL', keyOf(m)); redis.call('ZREM', index, m) end
  return #members
end
if target == 'events' then return drop(P .. 'events', expired(P .. 'events'), function(e) return P .. 'e:' .. e end) end
if target == 'pins' then return drop(P .. 'pins', expired(P .. 'pins'), function(r) return P .. 'pin:' .. r end) end
if target == 'unroutable' then
  local ns = expired(P .. 'ur:age')
  for _, n in ipairs(ns) do redis.call('ZREM', P .. 'ur', n) end
  return drop(P .. 'ur:age', ns, function(n) return P .. 'u:' .. n end)
end
local status = '"' .. target .. '"'
local ids = expired(P .. 'age:' .. status)
for _, id in ipairs(ids) do
  local tenant = redis.call('HGET', dkey(id), 'tenant')
  if tenant then
    local s, ts = byStatus(tenant, status)
    redis.call('ZREM', P .. 'ix:t:' .. tenant, id); redis.call('ZREM', s, id); redis.call('ZREM', ts, id)
  end
  redis.call('ZREM', P .. 'ix', id); redis.call('DEL', P .. 'h:' .. id)
end
return drop(P .. 'age:' .. status, ids, dkey)
`)

/** ARGV: prefix, 'put' or 'del', hash, field, value. Publishes on the API channel so every instance reloads. Returns the change count. */
export const API_CHANGE = script(`
local n
if ARGV[2] == 'put' then n = redis.call('HSET', P .. ARGV[3], ARGV[4], ARGV[5]) else n = redis.call('HDEL', P .. ARGV[3], ARGV[4]) end
redis.call('PUBLISH', P .. 'api', ARGV[3])
return n
`)

/**
 * ARGV: prefix, consumer, stream entry ids. Resets the idle time of the entries
 * this consumer still owns; one another instance already took is left to it.
 * Returns how many were renewed.
 */
export const RENEW = script(`
local n = 0
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', STREAM, GROUP, ARGV[i], ARGV[i], 1)[1]
  if entry and entry[2] == ARGV[2] then redis.call('XCLAIM', STREAM, GROUP, ARGV[2], 0, ARGV[i], 'JUSTID'); n = n + 1 end
end
return n
`)
