import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { Clock, Context, Effect, Layer, Option, ParseResult, Redacted, Schema, type Scope } from "effect"
import { StoredToken } from "../domain/AdminToken.ts"
import { CallListing } from "../domain/Call.ts"
import { NewDelivery, numberedOn, Pin } from "../domain/Delivery.ts"
import { StoreUnavailable } from "../domain/Errors.ts"
import { StoredHook } from "../domain/Hook.ts"
import type { SecretKey } from "../domain/SecretBox.ts"
import { StoredPortalLink, StoredSession } from "../domain/Session.ts"
import { decodeTenantHealth, encodeTenantHealth } from "../domain/TenantHealth.ts"
import { Backups } from "./Backups.ts"
import { CallHistory } from "./CallHistory.ts"
import { DeliveryHistory } from "./DeliveryHistory.ts"
import { DeliveryQueue } from "./DeliveryQueue.ts"
import { EventStore } from "./EventStore.ts"
import { HealthStore } from "./HealthStore.ts"
import { HookStore, SECRET_CACHE_KEYS } from "./HookStore.ts"
import { Leases } from "./Leases.ts"
import { Retention, type PruneTarget } from "./Retention.ts"
import { SessionStore } from "./SessionStore.ts"
import { TokenStore } from "./TokenStore.ts"
import { healthKey, justQueued, type Acceptance, type AcceptResult, type RequeueResult } from "./Store.ts"
import type { AcceptOutcome, EncodedAcceptance, StoreBackend } from "./StoreBackend.ts"
import { makeRedisStore, type RedisStoreOptions } from "./redis/RedisStore.ts"
import { makeSqliteStore } from "./sqlite/SqliteStore.ts"
import { checkKeys, opening, secretsAtRest } from "./KeysInUse.ts"
import { deliverySecrets, destinationSecrets, hookSecrets, PLAIN, sealer, unopenable, type Sealer } from "./Sealing.ts"
import { SecretsAtRest } from "./SecretsAtRest.ts"

/** Every tag a store provides. */
export type StoreServices =
  | EventStore
  | DeliveryQueue
  | Leases
  | HealthStore
  | DeliveryHistory
  | HookStore
  | Retention
  | CallHistory
  | TokenStore
  | SessionStore
  | Backups
  | SecretsAtRest

/**
 * Every store tag over one backend, opened once and shared: what the stores have in common, written once.
 * Snapshots are written in `snapshotDir` (beside the database: the same disk, never a small tmpfs).
 */
const storeOver = (
  open: Effect.Effect<StoreBackend, StoreUnavailable, Scope.Scope>,
  snapshotDir: string,
  /** Undefined for a store that keeps nothing at rest: its values are plain, and nothing is checked. */
  sealing: Sealer | undefined
): Layer.Layer<StoreServices, StoreUnavailable> => {
  const box = sealing ?? PLAIN
  return Layer.scopedContext(
    Effect.map(Effect.tap(open, (backend) => (sealing === undefined ? Effect.void : checkKeys(backend.hooks, sealing))), (backend) =>
      Context.make(EventStore, events(backend, box)).pipe(
        Context.add(DeliveryQueue, queue(backend, box)),
        Context.add(Leases, { ...backend.leases, claimStale: opening(backend.leases.claimStale, box) }),
        Context.add(HealthStore, health(backend)),
        Context.add(DeliveryHistory, history(backend, box)),
        Context.add(HookStore, hooks(backend, box)),
        Context.add(SecretsAtRest, secretsAtRest(backend, box)),
        Context.add(CallHistory, calls(backend)),
        Context.add(TokenStore, tokens(backend)),
        Context.add(SessionStore, sessions(backend)),
        Context.add(Retention, retention(backend)),
        Context.add(Backups, backups(backend, snapshotDir))
      )
    )
  )
}

/** A read of at most `limit` records: asked for none, it reads nothing. */
const upTo = <A>(limit: number, read: () => Effect.Effect<ReadonlyArray<A>, StoreUnavailable>): Effect.Effect<ReadonlyArray<A>, StoreUnavailable> =>
  limit <= 0 ? Effect.succeed([]) : read()

/** What acceptance answers: the deliveries as written, built here so the store need not read them back. */
const accepted = ({ delivery, callEvent, receivedAt }: Acceptance, outcome: AcceptOutcome): AcceptResult =>
  outcome._tag === "Duplicate"
    ? outcome
    : {
        _tag: "Accepted",
        delivery: delivery && outcome.deliveryId !== undefined ? justQueued(delivery, outcome.deliveryId, receivedAt) : undefined,
        callEvent: callEvent && outcome.callEventId !== undefined ? justQueued(callEvent, outcome.callEventId, receivedAt) : undefined
      }

/**
 * A delivery and a pin as the stores write them, on the hot path: what `Schema.encodeSync` of
 * their schemas gives (a test holds them to it), in plain code, since a secret is their one
 * field that encodes to something else.
 */
export const encodeDelivery = (d: NewDelivery): typeof NewDelivery.Encoded => ({ ...d, secret: d.secret === null ? null : Redacted.value(d.secret) })
export const encodePin = (pin: Pin): typeof Pin.Encoded => {
  const { secret, ...destination } = pin.destination
  return { ...pin, destination: secret === undefined ? destination : { ...destination, secret: Redacted.value(secret) } }
}
const decodePins = Schema.decodeUnknown(Schema.ReadonlyMapFromSelf({ key: Schema.String, value: Pin }))
const decodeHooks = Schema.decodeUnknown(Schema.Array(StoredHook))
const encodeHook = Schema.encodeSync(StoredHook)

/** What a backend read that does not decode means to callers: the store cannot be read. */
const unreadable = (error: ParseResult.ParseError) => new StoreUnavailable({ cause: error.message })

/** An acceptance as written, its secrets sealed. */
const encoded = (a: Acceptance, { seal }: Sealer): EncodedAcceptance => ({
  ...a,
  delivery: a.delivery && deliverySecrets(encodeDelivery(a.delivery), seal),
  callEvent: a.callEvent && deliverySecrets(encodeDelivery(a.callEvent), seal),
  pinChange: a.pinChange?._tag === "Set" ? { _tag: "Set", pin: sealedPin(encodePin(a.pinChange.pin), seal) } : a.pinChange,
  call: a.call,
  replayable: a.unroutable !== undefined && a.unroutable.reason !== "tenant_conflict"
})

const sealedPin = (pin: typeof Pin.Encoded, f: (text: string) => string): typeof Pin.Encoded =>
  pin.destination.secret === undefined ? pin : { ...pin, destination: destinationSecrets(pin.destination, f) }

const events = (backend: StoreBackend, box: Sealer): EventStore["Type"] => ({
  acceptAll: (acceptances) =>
    Effect.map(backend.accept(acceptances.map((a) => encoded(a, box))), (outcomes) => outcomes.map((outcome, i) => accepted(acceptances[i]!, outcome))),
  pinsOf: (rooms) =>
    rooms.length === 0
      ? Effect.succeed(new Map())
      : Effect.flatMap(backend.pinsOf(rooms), (pins) =>
          Effect.flatMap(
            Effect.try({ try: () => new Map([...pins].map(([room, pin]) => [room, sealedPin(pin, box.open)])), catch: unopenable }),
            (opened) => Effect.mapError(decodePins(opened), unreadable)
          )
        ),
  ping: backend.ping,
  unrouted: backend.unrouted,
  forgetUnrouted: (calls) => (calls.length === 0 ? Effect.void : backend.forgetUnrouted(calls))
})

const decodeListings = Schema.decodeUnknown(Schema.Array(CallListing))
const decodeListing = Schema.decodeUnknown(CallListing)

const calls = ({ calls }: StoreBackend): CallHistory["Type"] => ({
  calls: (query) => upTo(query.limit, () => Effect.flatMap(calls.calls(query), (rows) => Effect.mapError(decodeListings(rows), unreadable))),
  call: (ref) =>
    Effect.flatMap(calls.call(ref), (found) =>
      Option.match(found, {
        onNone: () => Effect.succeedNone,
        onSome: ({ record, timeline }) =>
          Effect.mapError(
            Effect.map(decodeListing(record), (listing) =>
              Option.some({ ...listing, timeline: { ...timeline, attempts: numberedOn(timeline.attempts, (attempt) => attempt.deliveryId) } })
            ),
            unreadable
          )
      })
    )
})

/** API hooks with their secrets sealed, and the cached values that hold secrets sealed whole. */
const hooks = ({ hooks }: StoreBackend, box: Sealer): HookStore["Type"] => {
  const openCached = (key: string, value: string) => (SECRET_CACHE_KEYS.has(key) ? box.open(value) : value)
  return {
    ...hooks,
    apiHooks: Effect.flatMap(hooks.apiHooks, (stored) =>
      Effect.flatMap(Effect.try({ try: () => stored.map((json) => hookSecrets(JSON.parse(json), box.open)), catch: unopenable }), (opened) =>
        Effect.mapError(decodeHooks(opened), unreadable)
      )
    ),
    putApiHook: (hook) => hooks.putApiHook(hook.host, JSON.stringify(hookSecrets(encodeHook(hook), box.seal))),
    cached: (key) => Effect.flatMap(hooks.cached(key), (value) => Effect.try({ try: () => Option.map(value, (text) => openCached(key, text)), catch: unopenable })),
    cache: (key, value) => hooks.cache(key, SECRET_CACHE_KEYS.has(key) ? box.seal(value) : value)
  }
}

const decodeToken = Schema.decodeUnknown(Schema.parseJson(StoredToken))
const decodeTokens = Schema.decodeUnknown(Schema.Array(Schema.parseJson(StoredToken)))
const encodeToken = Schema.encodeSync(Schema.parseJson(StoredToken))

const tokens = ({ tokens }: StoreBackend): TokenStore["Type"] => ({
  putToken: (token) => tokens.put(token.id, token.hash, encodeToken(token)),
  tokenByHash: (hash) =>
    Effect.flatMap(tokens.byHash(hash), (json) =>
      Option.isNone(json) ? Effect.succeedNone : Effect.mapError(Effect.map(decodeToken(json.value), Option.some), unreadable)
    ),
  // Redis keeps no order: both stores list by age here.
  tokens: Effect.flatMap(tokens.list, (stored) =>
    Effect.mapError(
      Effect.map(decodeTokens(stored), (found) => [...found].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))),
      unreadable
    )
  ),
  removeToken: tokens.remove
})

const decodeSession = Schema.decodeUnknown(Schema.parseJson(StoredSession))
const decodeLink = Schema.decodeUnknown(Schema.parseJson(StoredPortalLink))
const encodeSession = Schema.encodeSync(Schema.parseJson(StoredSession))
const encodeLink = Schema.encodeSync(Schema.parseJson(StoredPortalLink))

const decodedIfFound = <A>(found: Option.Option<string>, decode: (json: string) => Effect.Effect<A, ParseResult.ParseError>) =>
  Option.isNone(found) ? Effect.succeedNone : Effect.mapError(Effect.map(decode(found.value), Option.some), unreadable)

const sessions = ({ expiring }: StoreBackend): SessionStore["Type"] => ({
  startSession: (hash, session) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => expiring.put("session", hash, encodeSession(session), session.expiresAt, now)),
  sessionByHash: (hash) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.flatMap(expiring.get("session", hash, now), (found) => decodedIfFound(found, decodeSession))),
  endSession: (hash) => expiring.remove("session", hash),
  putPortalLink: (hash, link) => Effect.flatMap(Clock.currentTimeMillis, (now) => expiring.put("portal-link", hash, encodeLink(link), link.expiresAt, now)),
  redeemPortalLink: (hash) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.flatMap(expiring.take("portal-link", hash, now), (found) => decodedIfFound(found, decodeLink)))
})

const queue = ({ queue }: StoreBackend, box: Sealer): DeliveryQueue["Type"] => ({
  ...queue,
  pendingAfter: (tenant, afterId, limit) => upTo(limit, () => opening(queue.pendingAfter(tenant, afterId, limit), box)),
  pendingInLane: (tenant, room, limit) => upTo(limit, () => opening(queue.pendingInLane(tenant, room, limit), box)),
  requeue: (id, now) =>
    Effect.flatMap(
      queue.requeue(id, now),
      (result): Effect.Effect<RequeueResult, StoreUnavailable> =>
        result._tag === "Requeued" ? Effect.map(opening(Effect.succeed([result.delivery]), box), ([delivery]) => ({ ...result, delivery: delivery! })) : Effect.succeed(result)
    )
})

const history = ({ history }: StoreBackend, box: Sealer): DeliveryHistory["Type"] => ({
  ...history,
  deliveries: (query) => upTo(query.limit, () => opening(history.deliveries(query), box)),
  delivery: (id) =>
    Effect.flatMap(history.delivery(id), (found) =>
      Option.isNone(found)
        ? Effect.succeedNone
        : Effect.map(opening(Effect.succeed([found.value]), box), ([opened]) => Option.some({ ...opened!, history: numberedOn(opened!.history) }))
    ),
  unroutable: (limit) => upTo(limit, () => history.unroutable(limit)),
  changesAfter: (after, limit) => upTo(limit, () => history.changesAfter(after, limit))
})

/** A tenant's health is one small value in the cache; none, or one that does not decode, is healthy. */
const health = ({ hooks }: StoreBackend): HealthStore["Type"] => ({
  tenantHealth: (tenant) => Effect.map(hooks.cached(healthKey(tenant)), (value) => decodeTenantHealth(Option.getOrUndefined(value))),
  recordedHealth: Effect.map(hooks.cachedUnder(healthKey("")), (entries) =>
    entries.map(([key, value]) => [key.slice(healthKey("").length), decodeTenantHealth(value)] as const)
  ),
  setTenantHealth: (tenant, health) => hooks.cache(healthKey(tenant), encodeTenantHealth(health))
})

/** Deletes go a slice at a time, each its own write, so events keep being accepted while a large prune runs. */
const PRUNE_SLICE = 2_000

const retention = ({ pruneSlice }: StoreBackend): Retention["Type"] => {
  /** Slices until one comes back short: then nothing older is left. */
  const pruneAll = (target: PruneTarget, before: number): Effect.Effect<number, StoreUnavailable> =>
    Effect.flatMap(pruneSlice(target, before, PRUNE_SLICE), (n) =>
      n < PRUNE_SLICE ? Effect.succeed(n) : Effect.map(pruneAll(target, before), (rest) => n + rest)
    )
  return {
    prune: (now, policy) =>
      Effect.all({
        // Expired deliveries are kept as long as failed ones: both are events the tenant never got.
        deliveries: Effect.map(
          Effect.all([pruneAll("delivered", now - policy.delivered), pruneAll("failed", now - policy.failed), pruneAll("expired", now - policy.failed)]),
          ([delivered, failed, expired]) => delivered + failed + expired
        ),
        events: pruneAll("events", now - policy.dedupe),
        unroutable: pruneAll("unroutable", now - policy.unroutable),
        pins: pruneAll("pins", now - policy.pins),
        // A call is kept as long as the longest kept of its deliveries; the stream resumes within the shortest.
        calls: pruneAll("calls", now - Math.max(policy.delivered, policy.failed)),
        feed: pruneAll("feed", now - policy.delivered)
      })
  }
}

/** A snapshot in a file of its own, removed with the scope, also when the snapshot fails halfway. */
const backups = ({ snapshot }: StoreBackend, snapshotDir: string): Backups["Type"] => ({
  snapshot: Effect.acquireRelease(
    Effect.sync(() => join(snapshotDir, `.backup-${crypto.randomUUID()}.db`)),
    (into) => Effect.promise(() => rm(into, { force: true }))
  ).pipe(Effect.tap(snapshot))
})

/**
 * The stores to choose from; each opens its backend once and provides every
 * store tag over it. The tags themselves know none of them.
 */
export const StoreLive = {
  /** The embedded default: SQLite in WAL mode, a file per deployment, committed by a writer thread. */
  sqlite: (path: string, keys: ReadonlyArray<SecretKey> = []): Layer.Layer<StoreServices, StoreUnavailable> =>
    storeOver(makeSqliteStore(path), dirname(path), sealer(keys)),
  /** Shared by every instance behind a load balancer: Redis with appendonly persistence. */
  redis: (options: RedisStoreOptions, keys: ReadonlyArray<SecretKey> = []): Layer.Layer<StoreServices, StoreUnavailable> =>
    storeOver(makeRedisStore(options), tmpdir(), sealer(keys)),
  /** Same code over a fresh in-memory database (a new one per call): nothing survives the process. */
  memory: (): Layer.Layer<StoreServices, StoreUnavailable> => storeOver(makeSqliteStore(":memory:"), tmpdir(), undefined)
}
