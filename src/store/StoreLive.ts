import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { Clock, Context, Effect, Layer, Option, ParseResult, Redacted, Schema, type Scope } from "effect"
import { StoredToken } from "../domain/AdminToken.ts"
import { CallListing } from "../domain/Call.ts"
import { NewDelivery, numberedOn, Pin } from "../domain/Delivery.ts"
import { StoreUnavailable } from "../domain/Errors.ts"
import { StoredHookJson } from "../domain/Hook.ts"
import { StoredPortalLink, StoredSession } from "../domain/Session.ts"
import { decodeTenantHealth, encodeTenantHealth } from "../domain/TenantHealth.ts"
import { Backups } from "./Backups.ts"
import { CallHistory } from "./CallHistory.ts"
import { DeliveryHistory } from "./DeliveryHistory.ts"
import { DeliveryQueue } from "./DeliveryQueue.ts"
import { EventStore } from "./EventStore.ts"
import { HealthStore } from "./HealthStore.ts"
import { HookStore } from "./HookStore.ts"
import { Leases } from "./Leases.ts"
import { Retention, type PruneTarget } from "./Retention.ts"
import { SessionStore } from "./SessionStore.ts"
import { TokenStore } from "./TokenStore.ts"
import { healthKey, justQueued, type Acceptance, type AcceptResult } from "./Store.ts"
import type { AcceptOutcome, EncodedAcceptance, StoreBackend } from "./StoreBackend.ts"
import { makeRedisStore, type RedisStoreOptions } from "./redis/RedisStore.ts"
import { makeSqliteStore } from "./sqlite/SqliteStore.ts"

/** Every tag a store provides. */
export type StoreServices = EventStore | DeliveryQueue | Leases | HealthStore | DeliveryHistory | HookStore | Retention | CallHistory | TokenStore | SessionStore | Backups

/**
 * Every store tag over one backend, opened once and shared: what the stores have in common, written once.
 * Snapshots are written in `snapshotDir` (beside the database: the same disk, never a small tmpfs).
 */
const storeOver = (open: Effect.Effect<StoreBackend, StoreUnavailable, Scope.Scope>, snapshotDir: string): Layer.Layer<StoreServices, StoreUnavailable> =>
  Layer.scopedContext(
    Effect.map(open, (backend) =>
      Context.make(EventStore, events(backend)).pipe(
        Context.add(DeliveryQueue, queue(backend)),
        Context.add(Leases, backend.leases),
        Context.add(HealthStore, health(backend)),
        Context.add(DeliveryHistory, history(backend)),
        Context.add(HookStore, hooks(backend)),
        Context.add(CallHistory, calls(backend)),
        Context.add(TokenStore, tokens(backend)),
        Context.add(SessionStore, sessions(backend)),
        Context.add(Retention, retention(backend)),
        Context.add(Backups, backups(backend, snapshotDir))
      )
    )
  )

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
const decodeHooks = Schema.decodeUnknown(Schema.Array(StoredHookJson))
const encodeHook = Schema.encodeSync(StoredHookJson)

/** What a backend read that does not decode means to callers: the store cannot be read. */
const unreadable = (error: ParseResult.ParseError) => new StoreUnavailable({ cause: error.message })

const encoded = (a: Acceptance): EncodedAcceptance => ({
  ...a,
  delivery: a.delivery && encodeDelivery(a.delivery),
  callEvent: a.callEvent && encodeDelivery(a.callEvent),
  pinChange: a.pinChange?._tag === "Set" ? { _tag: "Set", pin: encodePin(a.pinChange.pin) } : a.pinChange,
  call: a.call,
  replayable: a.unroutable !== undefined && a.unroutable.reason !== "tenant_conflict"
})

const events = (backend: StoreBackend): EventStore["Type"] => ({
  acceptAll: (acceptances) =>
    Effect.map(backend.accept(acceptances.map(encoded)), (outcomes) => outcomes.map((outcome, i) => accepted(acceptances[i]!, outcome))),
  pinsOf: (rooms) => (rooms.length === 0 ? Effect.succeed(new Map()) : Effect.flatMap(backend.pinsOf(rooms), (pins) => Effect.mapError(decodePins(pins), unreadable))),
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

const hooks = ({ hooks }: StoreBackend): HookStore["Type"] => ({
  ...hooks,
  apiHooks: Effect.flatMap(hooks.apiHooks, (stored) => Effect.mapError(decodeHooks(stored), unreadable)),
  putApiHook: (hook) => hooks.putApiHook(hook.host, encodeHook(hook))
})

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

const queue = ({ queue }: StoreBackend): DeliveryQueue["Type"] => ({
  ...queue,
  pendingAfter: (tenant, afterId, limit) => upTo(limit, () => queue.pendingAfter(tenant, afterId, limit)),
  pendingInLane: (tenant, room, limit) => upTo(limit, () => queue.pendingInLane(tenant, room, limit))
})

const history = ({ history }: StoreBackend): DeliveryHistory["Type"] => ({
  ...history,
  deliveries: (query) => upTo(query.limit, () => history.deliveries(query)),
  delivery: (id) => Effect.map(history.delivery(id), Option.map((found) => ({ ...found, history: numberedOn(found.history) }))),
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
  sqlite: (path: string): Layer.Layer<StoreServices, StoreUnavailable> => storeOver(makeSqliteStore(path), dirname(path)),
  /** Shared by every instance behind a load balancer: Redis with appendonly persistence. */
  redis: (options: RedisStoreOptions): Layer.Layer<StoreServices, StoreUnavailable> => storeOver(makeRedisStore(options), tmpdir()),
  /** Same code over a fresh in-memory database (a new one per call): nothing survives the process. */
  memory: (): Layer.Layer<StoreServices, StoreUnavailable> => storeOver(makeSqliteStore(":memory:"), tmpdir())
}
