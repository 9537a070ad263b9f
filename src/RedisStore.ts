import { hostname } from "node:os"
import { Effect, Option } from "effect"
import type { Attempt, Delivery, DeliveryStatus, Pin, UnroutableEvent } from "./Domain/Delivery.ts"
import type { StoreUnavailable } from "./Domain/Errors.ts"
import type { NumberMapping, StoredHook } from "./Domain/Hook.ts"
import { openRedis } from "./RedisConnection.ts"
import * as Scripts from "./RedisScripts.ts"
import type { Store } from "./Store.ts"

export interface RedisStoreOptions {
  readonly url: string
  readonly prefix: string
  /** How long a delivery whose holder stopped renewing it waits before another instance may take it, in ms. */
  readonly leaseMs: number
  /** TTLs set at acceptance, in ms, so Redis forgets dedupe ids and idle pins even if no instance prunes. */
  readonly dedupeMs: number
  readonly pinsMs: number
}

const GROUP = "forwarders"
const PRUNE_SLICE = 2_000
// One claim pass takes at most this many entries; the next pass takes the rest.
const CLAIM_COUNT = "500"
const RENEW_BATCH = 500

const enc = JSON.stringify

/** A hash as Redis returns it: a map, or flat field/value pairs from a script. */
const entriesOf = (reply: unknown): Array<[string, string]> => {
  if (!Array.isArray(reply)) return Object.entries((reply ?? {}) as Record<string, string>)
  const pairs: Array<[string, string]> = []
  for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([reply[i], reply[i + 1]])
  return pairs
}

/** Every field but the stream entry id is JSON; an empty hash is a missing delivery. */
const toDelivery = (reply: unknown): Delivery | undefined => {
  const fields = entriesOf(reply).filter(([key]) => key !== "sid")
  return fields.length === 0 ? undefined : (Object.fromEntries(fields.map(([key, value]) => [key, JSON.parse(value)])) as Delivery)
}

const byText = <A>(key: (a: A) => string) => (a: A, b: A) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)

/**
 * The shared store for several instances: the same semantics as SQLite, with
 * deliveries also in a Redis stream whose consumer group tracks which instance
 * holds each one. An instance renews the leases of what it holds; what a dead
 * instance held is claimed by the others once its lease has run out.
 */
export const makeRedisStore = (options: RedisStoreOptions) =>
  Effect.gen(function* () {
    const P = options.prefix
    const stream = `${P}stream`
    // Per process, so a restarted instance never mistakes a dead one's entries for its own.
    const consumer = `${hostname()}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`
    const redis = yield* openRedis(options.url, async (send) => {
      // After a restart without persistence the group is gone; "0" so entries already in the stream are not skipped.
      await send("XGROUP", ["CREATE", stream, GROUP, "0", "MKSTREAM"]).catch((e) => {
        if (!String(e).includes("BUSYGROUP")) throw e
      })
    })
    const { send } = redis
    const run = (source: string) => {
      const call = redis.script(source)
      return (...args: ReadonlyArray<string | number>) => call([P, ...args.map(String)])
    }
    const accept = run(Scripts.ACCEPT)
    const recordAttempt = run(Scripts.RECORD_ATTEMPT)
    const scheduleRetry = run(Scripts.SCHEDULE_RETRY)
    const requeue = run(Scripts.REQUEUE)
    const requeueFailed = run(Scripts.REQUEUE_FAILED)
    const pruneSlice = run(Scripts.PRUNE_SLICE)
    const apiChange = run(Scripts.API_CHANGE)
    const renew = run(Scripts.RENEW)

    /** What this instance was handed (accepted, requeued or claimed) and has not finished: its stream entries, by delivery id. */
    const held = new Map<number, string>()
    const hold = (delivery: Delivery, sid: string) => {
      held.set(delivery.id, sid)
      return delivery
    }

    const load = (ids: ReadonlyArray<number | string>) =>
      Effect.map(
        Effect.forEach(ids, (id) => send("HGETALL", [`${P}d:${id}`]), { concurrency: "unbounded" }),
        (replies) => replies.map(toDelivery).filter((d): d is Delivery => d !== undefined)
      )

    /** Takes over entries idle for longer than the lease; ones whose delivery is finished or gone are acknowledged and dropped. */
    const claimStale = Effect.gen(function* () {
      const [, entries] = (yield* send("XAUTOCLAIM", [stream, GROUP, consumer, String(options.leaseMs), "0-0", "COUNT", CLAIM_COUNT])) as [
        string,
        Array<[string, Array<string>] | null>
      ]
      const claimed = entries.flatMap((entry) => (entry ? [{ sid: entry[0], id: Number(entry[1][1]) }] : []))
      const deliveries = new Map((yield* load(claimed.map((c) => c.id))).map((d) => [d.id, d]))
      const stale = claimed.filter((c) => deliveries.get(c.id)?.status !== "pending").map((c) => c.sid)
      if (stale.length > 0) yield* send("XACK", [stream, GROUP, ...stale])
      return claimed
        .flatMap(({ id, sid }) => {
          const delivery = deliveries.get(id)
          return delivery?.status === "pending" ? [hold(delivery, sid)] : []
        })
        .sort((a, b) => a.id - b.id)
    })

    const prune = (target: string, before: number): Effect.Effect<number, StoreUnavailable> =>
      Effect.flatMap(pruneSlice(target, before, PRUNE_SLICE), (n) =>
        Number(n) < PRUNE_SLICE ? Effect.succeed(Number(n)) : Effect.map(prune(target, before), (rest) => Number(n) + rest)
      )

    const readHash = (hash: string) => Effect.map(send("HGETALL", [P + hash]), entriesOf)
    const removeApi = (hash: string, field: string) => Effect.map(apiChange("del", hash, field), (n) => Number(n) > 0)

    const store: Store["Type"] = {
      accept: (a) =>
        Effect.gen(function* () {
          const d = a.delivery
          const at = a.receivedAt
          const record = d && { ...d, status: "pending", attempts: 0, lastStatus: null, lastError: null, nextAttemptAt: at, createdAt: at, queuedAt: at, updatedAt: at }
          const change = a.pinChange
          const reply = (yield* accept(
            a.eventId,
            at,
            options.dedupeMs,
            options.pinsMs,
            change?._tag ?? "",
            change === undefined ? "" : change._tag === "Set" ? change.pin.room : change.room,
            change?._tag === "Set" ? enc({ destination: change.pin.destination, call: change.pin.call }) : "",
            a.unroutable ? enc(a.unroutable) : "",
            consumer,
            record ? enc(record.tenant) : "",
            ...(record ? Object.entries(record).flatMap(([key, value]) => [key, enc(value)]) : [])
          )) as [number, number?, string?]
          if (reply[0] === 0) return { _tag: "Duplicate" }
          const [, id, sid] = reply
          return { _tag: "Accepted", delivery: record && id !== undefined && sid ? hold({ ...record, id } as Delivery, sid) : undefined }
        }),
      ping: Effect.asVoid(send("PING", [])),
      pinOf: (room) =>
        Effect.map(send("GET", [`${P}pin:${room}`]), (value) =>
          typeof value === "string" ? Option.some<Pin>({ room, ...JSON.parse(value) }) : Option.none()
        ),
      pending: Effect.gen(function* () {
        const mine = yield* load([...held.keys()])
        const claimed = yield* claimStale
        return [...mine.filter((d) => d.status === "pending"), ...claimed].sort((a, b) => a.id - b.id)
      }),
      recordAttempt: (id, r) => {
        // The Forwarder is done with a finished delivery even if the record fails: renewing it would pin it to an instance that no longer tries.
        if (r.final) held.delete(id)
        const attempt: Attempt = { attempt: r.attempt, at: r.at, status: r.status, error: r.error, latencyMs: r.latencyMs }
        return Effect.asVoid(
          recordAttempt(id, enc(attempt), enc(r.final ?? "pending"), r.attempt, enc(r.status), enc(r.error), r.nextAttemptAt, r.at)
        )
      },
      scheduleRetry: (id, nextAttemptAt) => Effect.asVoid(scheduleRetry(id, nextAttemptAt)),
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
          if (q.limit <= 0) return []
          const ids = (yield* send("ZREVRANGEBYSCORE", [P + index, q.before === undefined ? "+inf" : `(${q.before}`, "-inf", "LIMIT", "0", String(q.limit)])) as Array<string>
          return yield* load(ids)
        }),
      delivery: (id) =>
        Effect.gen(function* () {
          const [delivery] = yield* load([id])
          if (!delivery) return Option.none()
          const history = (yield* send("LRANGE", [`${P}h:${id}`, "0", "-1"])) as Array<string>
          return Option.some({ ...delivery, history: history.map((h) => JSON.parse(h) as Attempt) })
        }),
      requeue: (id, now) =>
        Effect.map(requeue(id, now, consumer), (reply) => {
          const [tag, a, fields] = reply as [number, string?, unknown?]
          if (tag === 0) return { _tag: "NotFound" }
          if (tag === 1) return { _tag: "NotFailed", status: JSON.parse(a!) as DeliveryStatus }
          return { _tag: "Requeued", delivery: hold(toDelivery(fields)!, a!) }
        }),
      requeueFailed: (tenant, since, now) =>
        Effect.map(requeueFailed(enc(tenant), since, now, consumer), (reply) =>
          (reply as Array<[string, unknown]>).map(([sid, fields]) => hold(toDelivery(fields)!, sid))
        ),
      unroutable: (limit) =>
        Effect.gen(function* () {
          if (limit <= 0) return []
          const ns = (yield* send("ZREVRANGE", [`${P}ur`, "0", String(limit - 1)])) as Array<string>
          if (ns.length === 0) return []
          const values = (yield* send("MGET", ns.map((n) => `${P}u:${n}`))) as Array<string | null>
          return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as UnroutableEvent]))
        }),
      prune: (now, policy) =>
        Effect.all({
          deliveries: Effect.zipWith(prune("delivered", now - policy.delivered), prune("failed", now - policy.failed), (a, b) => a + b),
          events: prune("events", now - policy.dedupe),
          unroutable: prune("unroutable", now - policy.unroutable),
          pins: prune("pins", now - policy.pins)
        }),
      apiHooks: Effect.map(readHash("hooks"), (entries) => entries.map(([, hook]) => JSON.parse(hook) as StoredHook).sort(byText((h) => h.host))),
      putApiHook: (hook) => Effect.asVoid(apiChange("put", "hooks", hook.host, enc(hook))),
      removeApiHook: (host) => removeApi("hooks", host),
      apiNumbers: Effect.map(readHash("numbers"), (entries) =>
        entries.map(([number, host]) => ({ number, host }) as NumberMapping).sort(byText((m) => m.number))
      ),
      putApiNumber: (mapping) => Effect.asVoid(apiChange("put", "numbers", mapping.number, mapping.host)),
      removeApiNumber: (number) => removeApi("numbers", number),
      cached: (key) => Effect.map(send("HGET", [`${P}cache`, key]), (value) => Option.fromNullable(value as string | null)),
      cache: (key, value) => Effect.asVoid(send("HSET", [`${P}cache`, key, value])),
      apiChanges: redis.changes(`${P}api`),
      renewLeases: Effect.suspend(() => {
        const sids = [...held.values()]
        const batches = Array.from({ length: Math.ceil(sids.length / RENEW_BATCH) }, (_, i) => sids.slice(i * RENEW_BATCH, (i + 1) * RENEW_BATCH))
        return Effect.forEach(batches, (batch) => renew(consumer, ...batch), { discard: true })
      }),
      claimStale
    }
    return store
  })
