import { callCreatedBy, type CallIdentity } from "../../domain/Call.ts"
import type { NewDelivery } from "../../domain/Delivery.ts"
import { NEW_FIELDS } from "../DeliveryRecord.ts"
import type { EncodedAcceptance } from "../StoreBackend.ts"
import { script } from "./RedisScripts.ts"

/** How many ARGV values one acceptance takes in ACCEPT. */
export const ACCEPT_WIDTH = 13 + 2 * NEW_FIELDS.length

const enc = JSON.stringify

/** Each field as its JSON, as hashes keep them. */
const encodedFields = (record: object) => Object.fromEntries(Object.entries(record).map(([field, value]) => [field, enc(value)]))

/** The call change as ACCEPT's writeCall reads it: a JSON object whose values are strings (most of them JSON), so Lua copies them as they are. */
const callArg = (a: EncodedAcceptance): string => {
  const c = a.call
  if (c === undefined) return ""
  const identity: CallIdentity | undefined = c.identity
  const created = callCreatedBy(c)
  return enc({
    key: c.key,
    room: c.room,
    at: String(c.at),
    event: enc(c.event),
    created: encodedFields(created),
    reasoned: (identity ?? created).routing.reason !== null,
    identity: identity && encodedFields(identity),
    startedAt: c.startedAt === undefined ? undefined : String(c.startedAt),
    ended: c.ended && { endedAt: enc(c.ended.at), endedBy: enc(c.ended.by), disconnectReason: enc(c.ended.disconnectReason) },
    keep: a.replayable
  })
}

/** One acceptance as ACCEPT reads it: ACCEPT_WIDTH values. */
export const acceptArgs = (a: EncodedAcceptance): Array<string> => {
  const change = a.pinChange
  const u = a.unroutable
  const fieldsOf = (d: typeof NewDelivery.Encoded | undefined) => NEW_FIELDS.map((field) => (d ? enc(d[field] ?? null) : ""))
  return [
    a.eventId,
    String(a.receivedAt),
    change?._tag ?? "",
    change === undefined ? "" : change._tag === "Set" ? change.pin.room : change.room,
    change?._tag === "Set"
      ? enc({ roomSid: change.pin.roomSid, destination: change.pin.destination, call: change.pin.call, start: change.pin.start })
      : change?._tag === "End"
        ? String(change.at)
        : "",
    change?._tag === "Set" ? (change.pin.roomSid ?? "") : "",
    u ? enc(u) : "",
    u ? String(u.at) : "",
    u ? enc([u.domain, u.reason]) : "",
    u && a.replayable && u.domain !== null && u.call !== null ? u.domain : "",
    u?.call ?? "",
    ...fieldsOf(a.delivery),
    ...fieldsOf(a.callEvent),
    callArg(a),
    a.call && a.unroutedBody !== undefined ? enc({ eventId: a.call.event.eventId, at: a.call.event.at, body: a.unroutedBody }) : ""
  ]
}

/**
 * ARGV[4], ARGV[5]: dedupe and pin TTLs in ms; then ACCEPT_WIDTH values per event (see acceptArgs): eventId,
 * receivedAt; the pin change: its tag ('' for none), room, the pin JSON (Set) or when the call ended (End), the
 * pin's room sid (Set; '' for none); the unroutable record: its JSON ('' for none), time, group, replay domain
 * ('' unless replayable) and call; the new delivery's fields in NEW_FIELDS order, JSON-encoded ('' for each when
 * the event has no delivery), then the call event's the same way; the call change ('' for none) and the entry
 * kept for a replay ('' for none).
 * Events are applied in order, so a repeated id within one call is a duplicate too.
 * Returns a pair per event: {0, 0} duplicate, else the delivery's id and the call event's (-1 for none).
 * The call event is queued only if the pin change started the call (Set created the pin, or replaced one of
 * another room instance) or ended it (End or Clear found it not yet ended): the call starts and ends once.
 */
export const ACCEPT = script(`
local dedupeMs, pinsMs = ARGV[4], ARGV[5]
local out, held = {}, false
local function touch(room, at)
  if redis.call('PEXPIRE', P .. 'pin:' .. room, pinsMs) == 1 then redis.call('ZADD', P .. 'pins', at, room) end
  redis.call('PEXPIRE', P .. 'ended:' .. room, pinsMs)
end
-- Applies a pin change; true when it started or ended the call.
local function changePin(tag, room, value, sid, at)
  local pin, ended = P .. 'pin:' .. room, P .. 'ended:' .. room
  if tag == 'Set' then
    if redis.call('SET', pin, value, 'NX', 'PX', pinsMs) then redis.call('ZADD', P .. 'pins', at, room); return true end
    -- A pin is never replaced (a call pinned meanwhile stays where it was put), unless it is of another instance of the room.
    local old = sid ~= '' and cjson.decode(redis.call('GET', pin)).roomSid
    if type(old) == 'string' and old ~= sid then
      redis.call('SET', pin, value, 'PX', pinsMs); redis.call('DEL', ended); redis.call('ZADD', P .. 'pins', at, room)
      return true
    end
    touch(room, at)
  elseif tag == 'Touch' then
    touch(room, at)
  elseif tag == 'End' then
    local open = redis.call('EXISTS', pin) == 1 and redis.call('SET', ended, value, 'NX', 'PX', pinsMs)
    touch(room, at)
    return open and true or false
  elseif tag == 'Clear' then
    local open = redis.call('EXISTS', pin) == 1 and redis.call('EXISTS', ended) == 0
    redis.call('DEL', pin, ended); redis.call('ZREM', P .. 'pins', room)
    return open
  end
  return false
end
-- An unroutable record, counted in its group (by domain and reason) and, replayable, indexing its call by its domain.
local function unroutable(json, at, group, domain, call)
  local n = redis.call('INCR', P .. 'useq')
  redis.call('SET', P .. 'u:' .. n, json); redis.call('ZADD', P .. 'ur', n, n); redis.call('ZADD', P .. 'ur:age', at, n)
  redis.call('ZADD', P .. 'ug:' .. group, at, n); redis.call('ZADD', P .. 'ug', 'GT', at, group); redis.call('HSET', P .. 'ug-of', n, group)
  if domain ~= '' then redis.call('ZADD', P .. 'ur:d:' .. domain, 'GT', at, call); redis.call('HSET', P .. 'ur-of', n, domain) end
end
local function pairsOf(fields)
  local out = {}
  for name, value in pairs(fields) do out[#out + 1] = name; out[#out + 1] = value end
  return out
end
-- What the event does to its call's record (see CallChange), then its timeline entry, and the body kept while the call is unrouted for a reason.
local function writeCall(c, kept)
  local call = P .. 'c:' .. c.key
  local function indexes(tenant)
    local keys = {P .. 'calls', P .. 'calls:r:' .. c.room}
    if tenant ~= 'null' then keys[#keys + 1] = P .. 'calls:t:' .. cjson.decode(tenant) end
    return keys
  end
  if redis.call('EXISTS', call) == 0 then
    redis.call('HSET', call, unpack(pairsOf(c.created)))
    if c.reasoned then redis.call('HSET', call, 'reasoned', '1') end
    local m = sortMember(call, c.key)
    for _, index in ipairs(indexes(c.created.tenant)) do redis.call('ZADD', index, 0, m) end
  end
  local reasoned = redis.call('HEXISTS', call, 'reasoned') == 1
  if c.identity and redis.call('HGET', call, 'tenant') == 'null' and (c.identity.tenant ~= 'null' or not reasoned) then
    redis.call('HSET', call, unpack(pairsOf(c.identity)))
    if c.reasoned then redis.call('HSET', call, 'reasoned', '1') else redis.call('HDEL', call, 'reasoned') end
    if c.identity.tenant ~= 'null' then
      -- A call that ended before it found its tenant is ended.
      redis.call('HSET', call, 'status', redis.call('HGET', call, 'endedAt') == 'null' and '"active"' or '"ended"')
      redis.call('ZADD', P .. 'calls:t:' .. cjson.decode(c.identity.tenant), 0, sortMember(call, c.key))
    end
  end
  if c.startedAt and redis.call('HGET', call, 'startedAt') == 'null' then
    local old = sortMember(call, c.key)
    redis.call('HSET', call, 'startedAt', c.startedAt)
    local new = sortMember(call, c.key)
    for _, index in ipairs(indexes(redis.call('HGET', call, 'tenant'))) do redis.call('ZREM', index, old); redis.call('ZADD', index, 0, new) end
  end
  local tenant = redis.call('HGET', call, 'tenant')
  if c.ended and redis.call('HGET', call, 'endedAt') == 'null' then
    redis.call('HSET', call, 'endedAt', c.ended.endedAt, 'endedBy', c.ended.endedBy, 'disconnectReason', c.ended.disconnectReason,
      'status', tenant == 'null' and '"unrouted"' or '"ended"')
  end
  redis.call('ZADD', P .. 'calls:age', c.at, c.key)
  redis.call('RPUSH', P .. 'ce:' .. c.key, c.event)
  if kept ~= '' and (c.keep or (tenant == 'null' and redis.call('HEXISTS', call, 'reasoned') == 1)) then redis.call('RPUSH', P .. 'cu:' .. c.key, kept) end
end
-- Queues the delivery whose fields start after ARGV[from]; -1 when there is none.
local function queue(from, at)
  local d, fields = {}, {}
  for i, name in ipairs(NEW_FIELDS) do
    d[name] = ARGV[from + i]
    fields[#fields + 1] = name; fields[#fields + 1] = d[name]
  end
  if d.tenant == '' then return -1 end
  local id = redis.call('INCR', P .. 'seq')
  redis.call('HSET', dkey(id), 'id', id, 'status', PENDING, 'attempts', '0', 'lastStatus', 'null', 'lastError', 'null',
    'nextAttemptAt', at, 'createdAt', at, 'queuedAt', at, 'updatedAt', at, unpack(fields))
  redis.call('ZADD', P .. 'ix', id, id); redis.call('ZADD', P .. 'ix:t:' .. d.tenant, id, id)
  local s, ts = byStatus(d.tenant, PENDING)
  redis.call('ZADD', s, id, id); redis.call('ZADD', ts, id, id)
  redis.call('ZADD', P .. 'queued', at, id)
  if d.call ~= 'null' then redis.call('ZADD', P .. 'cd:' .. cjson.decode(d.call), id, id) end
  hold(ME, id, d.tenant, d.room)
  changed(id, PENDING, 0, at)
  held = true
  return id
end
local N = #NEW_FIELDS
for base = 6, #ARGV, ${ACCEPT_WIDTH} do
  local eventId, at = ARGV[base], ARGV[base + 1]
  if not redis.call('SET', P .. 'e:' .. eventId, at, 'NX', 'PX', dedupeMs) then
    out[#out + 1] = {0, 0}
  else
    redis.call('ZADD', P .. 'events', at, eventId)
    local callChanged = changePin(ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], at)
    if ARGV[base + 6] ~= '' then unroutable(ARGV[base + 6], ARGV[base + 7], ARGV[base + 8], ARGV[base + 9], ARGV[base + 10]) end
    if ARGV[base + 11 + 2 * N] ~= '' then writeCall(cjson.decode(ARGV[base + 11 + 2 * N]), ARGV[base + 12 + 2 * N]) end
    local id = queue(base + 10, at)
    local callId = callChanged and queue(base + 10 + N, at) or -1
    out[#out + 1] = {id, callId}
  end
end
if held then alive() end
return out
`)
