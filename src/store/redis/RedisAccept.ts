import type { NewDelivery } from "../../domain/Delivery.ts"
import { NEW_FIELDS } from "../DeliveryRecord.ts"
import type { EncodedAcceptance } from "../StoreBackend.ts"
import { script } from "./RedisScripts.ts"

/** How many ARGV values one acceptance takes in ACCEPT (its delivery and its call event). */
export const ACCEPT_WIDTH = 6 + 2 * NEW_FIELDS.length

const enc = JSON.stringify

/** One acceptance as ACCEPT reads it: ACCEPT_WIDTH values. */
export const acceptArgs = (a: EncodedAcceptance): Array<string> => {
  const change = a.pinChange
  const fieldsOf = (d: typeof NewDelivery.Encoded | undefined) => NEW_FIELDS.map((field) => (d ? enc(d[field] ?? null) : ""))
  return [
    a.eventId,
    String(a.receivedAt),
    change?._tag ?? "",
    change === undefined ? "" : change._tag === "Set" ? change.pin.room : change.room,
    change?._tag === "Set"
      ? enc({ destination: change.pin.destination, call: change.pin.call, start: change.pin.start })
      : change?._tag === "End"
        ? String(change.at)
        : "",
    a.unroutable ? enc(a.unroutable) : "",
    ...fieldsOf(a.delivery),
    ...fieldsOf(a.callEvent)
  ]
}

/**
 * ARGV[4], ARGV[5]: dedupe and pin TTLs in ms; then ACCEPT_WIDTH values per event: eventId, receivedAt,
 * pin change tag ('' for none), room, the pin JSON (Set) or when the call ended (End), unroutable
 * JSON ('' for none), then the new delivery's fields in NEW_FIELDS order, JSON-encoded ('' for each
 * when the event has no delivery), then the call event's the same way.
 * Events are applied in order, so a repeated id within one call is a duplicate too.
 * Returns a pair per event: {0, 0} duplicate, else the delivery's id and the call event's (-1 for none).
 * The call event is queued only if the pin change started the call (Set created the pin) or
 * ended it (End or Clear found it not yet ended): the call starts and ends once.
 */
export const ACCEPT = script(`
local dedupeMs, pinsMs = ARGV[4], ARGV[5]
local out, held = {}, false
local function touch(room, at)
  if redis.call('PEXPIRE', P .. 'pin:' .. room, pinsMs) == 1 then redis.call('ZADD', P .. 'pins', at, room) end
  redis.call('PEXPIRE', P .. 'ended:' .. room, pinsMs)
end
-- Applies a pin change; true when it started or ended the call.
local function changePin(tag, room, value, at)
  local pin, ended = P .. 'pin:' .. room, P .. 'ended:' .. room
  if tag == 'Set' then
    -- A pin is never replaced: a call pinned meanwhile stays where it was put.
    if redis.call('SET', pin, value, 'NX', 'PX', pinsMs) then redis.call('ZADD', P .. 'pins', at, room); return true end
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
  hold(ME, id, d.tenant, d.room)
  held = true
  return id
end
for base = 6, #ARGV, ${ACCEPT_WIDTH} do
  local eventId, at = ARGV[base], ARGV[base + 1]
  if not redis.call('SET', P .. 'e:' .. eventId, at, 'NX', 'PX', dedupeMs) then
    out[#out + 1] = {0, 0}
  else
    redis.call('ZADD', P .. 'events', at, eventId)
    local callChanged = changePin(ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], at)
    if ARGV[base + 5] ~= '' then
      local n = redis.call('INCR', P .. 'useq')
      redis.call('SET', P .. 'u:' .. n, ARGV[base + 5]); redis.call('ZADD', P .. 'ur', n, n); redis.call('ZADD', P .. 'ur:age', at, n)
    end
    local id = queue(base + 5, at)
    local callId = callChanged and queue(base + 5 + #NEW_FIELDS, at) or -1
    out[#out + 1] = {id, callId}
  end
end
if held then alive() end
return out
`)

