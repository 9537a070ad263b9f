import { hostname } from "node:os"
import { Effect, Exit, Option } from "effect"
import type { Attempt, DeliveryStatus, Pin } from "../../domain/Delivery.ts"
import { LATENCY_BUCKETS, tallyAttempts, tallyCounts, tallyOfCounts } from "../../domain/AttemptMinutes.ts"
import { NotImplemented, StoreUnavailable } from "../../domain/Errors.ts"
import type { NumberMapping } from "../../domain/Hook.ts"
import { answeredPerTurn } from "../../TurnBatch.ts"
import { openRedis } from "./RedisConnection.ts"
import { ACCEPT, acceptArgs } from "./RedisAccept.ts"
import { decodeAttempt, decodeUnroutable, decoding, makeRedisReads, toDelivery, toQueued } from "./RedisReads.ts"
import * as Scripts from "./RedisScripts.ts"
import { makeRedisExpiring } from "./RedisExpiring.ts"
import { makeRedisTokens } from "./RedisTokens.ts"
import { makeRedisReseal } from "./RedisReseal.ts"
import { DELIVERY_FIELDS } from "../DeliveryRecord.ts"
import type { RecordedAttempt } from "../Store.ts"
import type { AcceptOutcome, EncodedAcceptance, StoreBackend } from "../StoreBackend.ts"

export interface RedisStoreOptions {
  readonly url: string
  readonly prefix: string
  /** How long an instance that stopped renewing its heartbeat (it died) keeps its deliveries before another may take them, in ms. */
  readonly leaseMs: number
  /** TTLs set at acceptance, in ms, so Redis forgets dedupe ids and idle pins even if no instance prunes. */
  readonly dedupeMs: number
  readonly pinsMs: number
}

/** One take-over pass moves at most this many deliveries; the Reclaimer asks again while passes come back full. */
/** Redis is backed up by Redis: the router's answer to a backup request says how. */
const REDIS_BACKUP =
  "the router streams backups of its SQLite store only: back up Redis itself, from its AOF (appendonly, with BGREWRITEAOF) or an RDB snapshot (BGSAVE, then copy dump.rdb); see docs/operations.md, Backup and restore"

export const CLAIM_PAGE = 200
/** Failed deliveries looked at per requeueFailed script call, so a huge requeue never blocks Redis for long. */
const REQUEUE_PAGE = 250
/** Calls of one event-loop turn share a script call up to this many items (a single larger call still goes whole). */
const MAX_GROUP = 1_000

const enc = JSON.stringify

const queuedList = (reply: unknown) => (reply as Array<Array<string | null>>).flatMap((values) => toQueued(values) ?? [])

const members = (reply: unknown): Array<string> => (Array.isArray(reply) ? reply : [...((reply ?? []) as Iterable<string>)])

const byText = <A>(key: (a: A) => string) => (a: A, b: A) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)

/**
 * Groups the calls made in one event-loop turn into one script call, as the
 * SQLite store groups writes into one commit: `run` gets every call's items
 * in call order and answers one result per item; each call gets its slice. A
 * failed script call fails every call in its group.
 */
const grouping = <I, O>(run: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, StoreUnavailable>) => {
  const submit = answeredPerTurn(
    (calls: ReadonlyArray<ReadonlyArray<I>>) =>
      Effect.runPromiseExit(run(calls.flat())).then((exit) => {
        let from = 0
        return calls.map((call) => {
          const start = from
          const end = (from += call.length)
          return Exit.map(exit, (results) => results.slice(start, end))
        })
      }),
    { maxSize: MAX_GROUP, sizeOf: (call) => call.length }
  )
  return (call: ReadonlyArray<I>): Effect.Effect<ReadonlyArray<O>, StoreUnavailable> =>
    call.length === 0 ? Effect.succeed([]) : Effect.flatten(Effect.promise(() => submit(call)))
}

/** One attempt as RECORD_ATTEMPTS reads it: ATTEMPT_WIDTH values. */
const attemptArgs = ({ id, record: r }: RecordedAttempt): Array<string> => {
  const attempt: Attempt = { attempt: r.attempt, at: r.at, status: r.status, error: r.error, latencyMs: r.latencyMs }
  return [String(id), enc(attempt), enc(r.final ?? "pending"), String(r.attempt), enc(r.status), enc(r.error), String(r.nextAttemptAt), String(r.at)]
}

/** A minute's tally fields (hash `am:<minute>`), in the order of the domain's tallyCounts. */
const TALLY_FIELDS = ["succeeded", "failed", ...Array.from({ length: LATENCY_BUCKETS }, (_, i) => `b${i}`)]

/** The tallies of these attempts as RECORD_ATTEMPTS reads them: how many minutes, then each with the counts it adds to. */
const tallyArgs = (attempts: ReadonlyArray<RecordedAttempt>): Array<string | number> => {
  const tallies = tallyAttempts(attempts.map((a) => a.record))
  return [
    tallies.length,
    ...tallies.flatMap((tally) => {
      const added = tallyCounts(tally).flatMap((n, i) => (n === 0 ? [] : [TALLY_FIELDS[i]!, n]))
      return [tally.minute, added.length / 2, ...added]
    })
  ]
}

/**
 * The shared store for several instances: the same semantics as SQLite. Each
 * pending delivery is held by one instance (the one that accepted, requeued or
 * took it over), recorded in per-instance indexes that the queue reads answer
 * from, so two instances never work the same delivery. An instance proves it
 * is alive with one heartbeat key whose TTL is the lease; what an instance
 * whose heartbeat expired, and stayed expired for a grace after another saw
 * it, held is taken over by the others, a page at a time. Nothing here grows
 * with the backlog: the process keeps no per-delivery state.
 */
export const makeRedisStore = (options: RedisStoreOptions) =>
  Effect.gen(function* () {
    const P = options.prefix
    // Per process, so a restarted instance never mistakes a dead one's deliveries for its own.
    const consumer = `${hostname().replace(/[^A-Za-z0-9.-]/g, "_")}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`
    const key = Scripts.keys(P, consumer)
    const redis = yield* openRedis(options.url)
    const { send } = redis
    // The scripts declare their flags (`#!lua`), which Redis reads from 7.0 on; older servers would refuse every write.
    const version = /redis_version:(\d+)/.exec(String(yield* send("INFO", ["server"])))?.[1]
    if (version !== undefined && Number(version) < 7) {
      return yield* new StoreUnavailable({ cause: `Redis 7.0 or later is required; the server runs ${version}.x` })
    }
    const run = (source: string) => {
      const call = redis.script(source)
      return (...args: ReadonlyArray<string | number>) => call([P, consumer, String(options.leaseMs), ...args.map(String)])
    }
    const accept = run(ACCEPT)
    const recordAttempts = run(Scripts.RECORD_ATTEMPTS)
    const requeue = run(Scripts.REQUEUE)
    const requeueFailedPage = run(Scripts.REQUEUE_FAILED)
    const claim = run(Scripts.CLAIM)
    const pendingAfter = run(Scripts.PENDING_AFTER)
    const pendingInLane = run(Scripts.PENDING_IN_LANE)
    const queueStats = run(Scripts.QUEUE_STATS)
    const prune = run(Scripts.PRUNE)
    const apiChange = run(Scripts.API_CHANGE)
    const renew = run(Scripts.RENEW)
    const retire = run(Scripts.RETIRE)
    // Time for a live instance to renew once Redis is back: more than the renewal interval (a third of the lease).
    const graceMs = Math.ceil(options.leaseMs / 2)

    // Stopping cleanly: nothing of ours is in flight any more (the Forwarder, which uses this store, has
    // stopped first), so the others may take over at once instead of waiting out the lease.
    yield* Effect.addFinalizer(() => Effect.ignore(retire()))

    const acceptGrouped = grouping((acceptances: ReadonlyArray<EncodedAcceptance>) =>
      Effect.map(accept(options.dedupeMs, options.pinsMs, ...acceptances.flatMap(acceptArgs)), (reply) =>
        (reply as Array<[number, number]>).map(
          ([id, callId]): AcceptOutcome =>
            id === 0 ? { _tag: "Duplicate" } : { _tag: "Accepted", deliveryId: id > 0 ? id : undefined, callEventId: callId > 0 ? callId : undefined }
        )
      )
    )

    const recordGrouped = grouping((attempts: ReadonlyArray<RecordedAttempt>) =>
      Effect.as(recordAttempts(...tallyArgs(attempts), ...attempts.flatMap(attemptArgs)), attempts.map(() => undefined))
    )

    const load = (ids: ReadonlyArray<number | string>) =>
      decoding(Effect.forEach(ids, (id) => send("HMGET", [key.delivery(id), ...DELIVERY_FIELDS]), { concurrency: "unbounded" }), (replies) =>
        (replies as Array<Array<string | null>>).flatMap((values) => toDelivery(values) ?? [])
      )

    // The client speaks RESP3, so HGETALL answers a map.
    const readHash = (hash: string) => Effect.map(send("HGETALL", [P + hash]), (reply) => Object.entries(reply as Record<string, string>))
    const removeApi = (hash: string, field: string) => Effect.map(apiChange("del", hash, field), (n) => Number(n) > 0)

    const reads = makeRedisReads(run, send, P)

    const backend: StoreBackend = {
      accept: acceptGrouped,
      ...reads.replays,
      calls: reads.calls,
      pinsOf: (rooms) =>
        Effect.map(send("MGET", [...rooms.map(key.pin), ...rooms.map(key.ended)]), (values) => {
          const pins = new Map<string, typeof Pin.Encoded>()
          const found = values as Array<string | null>
          rooms.forEach((room, i) => {
            const value = found[i]
            const ended = found[rooms.length + i]
            if (typeof value === "string") pins.set(room, { room, ...JSON.parse(value), endedAt: typeof ended === "string" ? Number(ended) : undefined })
          })
          return pins
        }),
      ping: Effect.asVoid(send("PING", [])),
      queue: {
        pendingTenants: Effect.map(send("SMEMBERS", [key.tenants]), (reply) => members(reply).map((t) => JSON.parse(t) as string).sort()),
        pendingAfter: (tenant, afterId, limit) => decoding(pendingAfter(enc(tenant), afterId, limit), queuedList),
        pendingInLane: (tenant, room, limit) => decoding(pendingInLane(enc(tenant), enc(room), limit), queuedList),
        bodyOf: (id) =>
          Effect.map(send("HGET", [key.delivery(id), "body"]), (value) => (typeof value === "string" ? Option.some(JSON.parse(value) as string) : Option.none())),
        recordAttempts: (attempts) => Effect.asVoid(recordGrouped(attempts)),
        queueStats: Effect.map(queueStats(), (reply) => {
          const [depth, oldest] = reply as [number, string | null]
          return { depth: Number(depth), oldestQueuedAt: oldest == null ? undefined : Number(oldest) }
        }),
        requeue: (id, now) =>
          decoding(requeue(id, now), (reply) => {
            const [tag, value] = reply as [number, unknown?]
            if (tag === 0) return { _tag: "NotFound" }
            if (tag === 1) return { _tag: "NotFailed", status: JSON.parse(value as string) as DeliveryStatus }
            return { _tag: "Requeued", delivery: toDelivery(value as Array<string | null>)! }
          }),
        requeueFailed: (tenant, since, now) =>
          Effect.gen(function* () {
            let cursor = "0"
            let count = 0
            let firstId: number | undefined
            for (;;) {
              const [n, first, next, seen] = (yield* requeueFailedPage(enc(tenant), since, now, cursor, REQUEUE_PAGE)) as [number, number, string | number, number]
              count += n
              // Pages run in id order, so the first page that requeued anything has the lowest id.
              if (firstId === undefined && first > 0) firstId = first
              cursor = String(next)
              if (seen < REQUEUE_PAGE) return { count, firstId }
            }
          })
      },
      history: {
        ...reads.history,
        // At most an hour's hashes, sent together (the client pipelines them).
        attemptMinutes: (first, last) =>
          Effect.map(
            Effect.forEach(
              Array.from({ length: last - first + 1 }, (_, i) => first + i),
              (minute) => Effect.map(send("HMGET", [`${P}am:${minute}`, ...TALLY_FIELDS]), (counts) => ({ minute, counts: counts as Array<string | null> })),
              { concurrency: "unbounded" }
            ),
            (found) => found.filter(({ counts }) => counts.some((n) => n !== null)).map(({ minute, counts }) => tallyOfCounts(minute, counts.map(Number)))
          ),
        delivery: (id) =>
          Effect.gen(function* () {
            const [delivery] = yield* load([id])
            if (!delivery) return Option.none()
            const history = yield* decoding(send("LRANGE", [key.history(id), "0", "-1"]), (reply) => (reply as Array<string>).map((h) => decodeAttempt(h)))
            return Option.some({ ...delivery, history })
          }),
        unroutable: (limit) =>
          Effect.gen(function* () {
            const ns = (yield* send("ZREVRANGE", [`${P}ur`, "0", String(limit - 1)])) as Array<string>
            if (ns.length === 0) return []
            return yield* decoding(send("MGET", ns.map((n) => `${P}u:${n}`)), (reply) =>
              (reply as Array<string | null>).flatMap((v) => (v === null ? [] : [decodeUnroutable(v)]))
            )
          })
      },
      hooks: {
        apiHooks: Effect.map(readHash("hooks"), (entries) => entries.sort(byText(([host]) => host)).map(([, json]) => json)),
        putApiHook: (host, json) => Effect.asVoid(apiChange("put", "hooks", host, json)),
        removeApiHook: (host) => removeApi("hooks", host),
        apiNumbers: Effect.map(readHash("numbers"), (entries) =>
          entries.map(([number, host]) => ({ number, host }) as NumberMapping).sort(byText((m) => m.number))
        ),
        putApiNumber: (mapping) => Effect.asVoid(apiChange("put", "numbers", mapping.number, mapping.host)),
        removeApiNumber: (number) => removeApi("numbers", number),
        apiChanges: redis.changes(`${P}api`),
        cached: (key) => Effect.map(send("HGET", [`${P}cache`, key]), (value) => Option.fromNullable(value as string | null)),
        cache: (key, value) => Effect.asVoid(send("HSET", [`${P}cache`, key, value])),
        // Redis matches the keys, a page at a time: the cache's other values (a whole hook table, say) never travel.
        cachedUnder: (prefix) =>
          Effect.gen(function* () {
            const found: Array<readonly [string, string]> = []
            let cursor = "0"
            do {
              const [next, page] = (yield* send("HSCAN", [`${P}cache`, cursor, "MATCH", `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`, "COUNT", "1000"])) as [string, Array<string>]
              for (let i = 0; i < page.length; i += 2) found.push([page[i]!, page[i + 1]!])
              cursor = String(next)
            } while (cursor !== "0")
            return found
          })
      },
      tokens: makeRedisTokens(run, send, P),
      expiring: makeRedisExpiring(send, P),
      leases: {
        // One key, whatever this instance holds: while it exists, nobody takes over what this instance holds.
        renewLeases: Effect.asVoid(renew()),
        claimStale: decoding(claim(CLAIM_PAGE, graceMs), (reply) => queuedList(reply).sort((a, b) => a.id - b.id))
      },
      pruneSlice: (target, before, limit) => Effect.map(prune(target, before, limit), Number),
      reseal: makeRedisReseal(run, send, P, (f) => Effect.try({ try: f, catch: (cause) => new StoreUnavailable({ cause }) })),
      snapshot: () => Effect.fail(new NotImplemented({ message: REDIS_BACKUP }))
    }
    return backend
  })
