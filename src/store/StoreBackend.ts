import type { Effect, Option } from "effect"
import type { CallChange, CallQuery, CallTimeline } from "../domain/Call.ts"
import type { NewDelivery, Pin } from "../domain/Delivery.ts"
import type { NotImplemented, StoreUnavailable } from "../domain/Errors.ts"
import type { DeliveryHistory } from "./DeliveryHistory.ts"
import type { DeliveryQueue } from "./DeliveryQueue.ts"
import type { EventStore } from "./EventStore.ts"
import type { HookStore } from "./HookStore.ts"
import type { Leases } from "./Leases.ts"
import type { PruneTarget } from "./Retention.ts"
import type { Acceptance, PinChange } from "./Store.ts"

/** What acceptance wrote for one event: the ids of what it queued, so the bodies need not be copied back. */
export type AcceptOutcome =
  | { readonly _tag: "Duplicate" }
  | { readonly _tag: "Accepted"; readonly deliveryId: number | undefined; readonly callEventId: number | undefined }

/**
 * An acceptance as a backend writes it: its deliveries and pin encoded by their schemas (secrets
 * in the clear, for the store alone), so nothing the backend writes depends on how a value prints,
 * and it crosses to SQLite's writer thread as plain data.
 */
export interface EncodedAcceptance extends Omit<Acceptance, "delivery" | "callEvent" | "pinChange" | "call"> {
  readonly delivery: typeof NewDelivery.Encoded | undefined
  readonly callEvent?: typeof NewDelivery.Encoded | undefined
  readonly pinChange: Exclude<PinChange, { readonly _tag: "Set" }> | { readonly _tag: "Set"; readonly pin: typeof Pin.Encoded } | undefined
  /** The call change; a backend creates its record with `callCreatedBy` when its room instance is new. */
  readonly call: CallChange | undefined
  /**
   * The event is itself unroutable for a reason a replay can mend (not a tenant conflict): its body
   * is kept whatever its call's record says, and its call is replayed with its domain's.
   */
  readonly replayable: boolean
}

/** The API hooks as a backend keeps them: each the JSON its schema encodes, by host. */
export interface BackendHooks extends Omit<HookStore["Type"], "apiHooks" | "putApiHook"> {
  readonly apiHooks: Effect.Effect<ReadonlyArray<string>, StoreUnavailable>
  readonly putApiHook: (host: string, json: string) => Effect.Effect<void, StoreUnavailable>
  /** The cached values whose keys start with `prefix`, with their keys, in any order. */
  readonly cachedUnder: (prefix: string) => Effect.Effect<ReadonlyArray<readonly [key: string, value: string]>, StoreUnavailable>
}

/** The admin API's tokens as a backend keeps them: each the JSON its schema encodes, by hash and by id. */
export interface BackendTokens {
  readonly put: (id: string, hash: string, json: string) => Effect.Effect<void, StoreUnavailable>
  readonly byHash: (hash: string) => Effect.Effect<Option.Option<string>, StoreUnavailable>
  /** In any order. */
  readonly list: Effect.Effect<ReadonlyArray<string>, StoreUnavailable>
  readonly remove: (id: string) => Effect.Effect<boolean, StoreUnavailable>
}

/** What expires by itself: console sessions and tenant portal links. */
export type ExpiringKind = "session" | "portal-link"

/** Records that expire, as a backend keeps them: each the JSON its schema encodes, by kind and the hash of its secret. */
export interface BackendExpiring {
  readonly put: (kind: ExpiringKind, hash: string, json: string, expiresAt: number, now: number) => Effect.Effect<void, StoreUnavailable>
  /** None once it has expired. */
  readonly get: (kind: ExpiringKind, hash: string, now: number) => Effect.Effect<Option.Option<string>, StoreUnavailable>
  /** Removes it and returns it, if it has not expired: of callers racing for one, only one gets it. */
  readonly take: (kind: ExpiringKind, hash: string, now: number) => Effect.Effect<Option.Option<string>, StoreUnavailable>
  readonly remove: (kind: ExpiringKind, hash: string) => Effect.Effect<void, StoreUnavailable>
}

/**
 * How re-encryption rewrites a stored value (see SecretsAtRest): the new text, or undefined to
 * leave it as it is. Each throws a SealError on a value it cannot open.
 */
export interface Resealing {
  /** A secret as kept: a delivery's, or a pin destination's. */
  readonly secret: (text: string) => string | undefined
  /** An API hook's JSON. */
  readonly hook: (json: string) => string | undefined
  readonly cached: (key: string, value: string) => string | undefined
}

/**
 * What keeps the data (SQLite's tables, Redis's keys), as the operations each
 * does in its own SQL or Lua. What the stores have in common is written once
 * over this, in StoreLive.ts: what acceptance answers, health kept in the
 * cache, how pruning proceeds, and the reads that need not reach the store.
 */
export interface StoreBackend {
  /** Writes each acceptance as EventStore.acceptAll says: atomically, in order, a repeated id writing nothing. */
  readonly accept: (acceptances: ReadonlyArray<EncodedAcceptance>) => Effect.Effect<ReadonlyArray<AcceptOutcome>, StoreUnavailable>
  /** The pins of these rooms (at least one), in one read, as stored. */
  readonly pinsOf: (rooms: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, typeof Pin.Encoded>, StoreUnavailable>
  readonly ping: Effect.Effect<void, StoreUnavailable>
  readonly unrouted: EventStore["Type"]["unrouted"]
  readonly forgetUnrouted: EventStore["Type"]["forgetUnrouted"]
  /** Call records as stored (decoded by the shared layer), and a call's timeline. */
  readonly calls: {
    readonly calls: (query: CallQuery) => Effect.Effect<ReadonlyArray<unknown>, StoreUnavailable>
    readonly call: (ref: string) => Effect.Effect<Option.Option<{ readonly record: unknown; readonly timeline: CallTimeline }>, StoreUnavailable>
  }
  /** Its reads are asked for at least one delivery. */
  readonly queue: DeliveryQueue["Type"]
  /** Its reads are asked for at least one record. */
  readonly history: DeliveryHistory["Type"]
  readonly hooks: BackendHooks
  readonly tokens: BackendTokens
  readonly expiring: BackendExpiring
  readonly leases: Leases["Type"]
  /** Deletes at most `limit` of the target's records last changed before `before` (never a pending delivery): how many went. */
  readonly pruneSlice: (target: PruneTarget, before: number, limit: number) => Effect.Effect<number, StoreUnavailable>
  /**
   * Rewrites the secrets of every delivery, pin, API hook and cached value with `reseal`, a slice
   * at a time, each only if it is still what was read (else a writer has just written it anew):
   * how many were rewritten.
   */
  readonly reseal: (reseal: Resealing) => Effect.Effect<number, StoreUnavailable>
  /** Writes a consistent copy of the store, as of its last commit, to the new file `into`; Redis is backed up on its own side. */
  readonly snapshot: (into: string) => Effect.Effect<void, StoreUnavailable | NotImplemented>
}
