import { Context, type Effect } from "effect"
import type { Pin, UnroutedEvent } from "../domain/Delivery.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { Acceptance, AcceptResult } from "./Store.ts"

/**
 * Where accepted events are kept: dedupe ids, room pins, and what each event
 * queues or records, written together. Used by the inbound pipeline (Ingest,
 * Router), by readiness and by alerts. Like every store tag, it fails only
 * with StoreUnavailable, so callers decide what a store outage means (for the
 * webhook: 503, so LiveKit retries).
 */
export class EventStore extends Context.Tag("EventStore")<
  EventStore,
  {
    /**
     * Records each event with its pin change, delivery or unroutable record
     * atomically, all of them in one write; a repeated id is a Duplicate and
     * writes nothing. Results come in the order of the acceptances.
     */
    readonly acceptAll: (acceptances: ReadonlyArray<Acceptance>) => Effect.Effect<ReadonlyArray<AcceptResult>, StoreUnavailable>
    /** The pins of these rooms, in one read; rooms without one are absent. */
    readonly pinsOf: (rooms: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Pin>, StoreUnavailable>
    /** Succeeds when the store can be read. */
    readonly ping: Effect.Effect<void, StoreUnavailable>
    /**
     * The events kept for a replay (see Acceptance.unroutedBody) of the calls with an unroutable
     * event of this domain since `since` (tenant conflicts aside), in order per call.
     */
    readonly unrouted: (domain: string, since: number) => Effect.Effect<ReadonlyArray<UnroutedEvent>, StoreUnavailable>
    /** Drops the kept events of these calls: they were replayed. */
    readonly forgetUnrouted: (calls: ReadonlyArray<string>) => Effect.Effect<void, StoreUnavailable>
  }
>() {}
