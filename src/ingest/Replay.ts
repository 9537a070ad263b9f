import { Effect } from "effect"
import { Conflict, type StoreUnavailable } from "../domain/Errors.ts"
import { parseLiveKitEvent } from "../domain/LiveKitEvent.ts"
import { HookTable, matchHost } from "../hooks/HookTable.ts"
import { EventStore } from "../store/EventStore.ts"
import { EngineClock } from "../delivery/EngineClock.ts"
import { Ingest, type Verified } from "./Ingest.ts"

/**
 * Routes again what reached no tenant, once a hook for its domain exists: the
 * stored unroutable events of the domain, with the other events of their calls
 * that reached no tenant, through today's table, in their original order per
 * call, as if they had just arrived (their calls are pinned and started; each
 * hook's maxAge applies, measured from LiveKit's createdAt). Each event is
 * replayed once; its deliveries keep its id, so tenants deduplicate as usual.
 */
export class Replay extends Effect.Service<Replay>()("Replay", {
  effect: Effect.gen(function* () {
    const store = yield* EventStore
    const hooks = yield* HookTable
    const ingest = yield* Ingest
    const clock = yield* EngineClock
    return {
      replay: (domain: string, since: number): Effect.Effect<{ readonly replayed: number; readonly tenant: string }, Conflict | StoreUnavailable> =>
        Effect.gen(function* () {
          const hook = matchHost(hooks.inForce(), domain)
          if (hook === undefined) return yield* new Conflict({ message: `${domain} still routes to no hook: add one for it, then replay` })
          const kept = yield* store.unrouted(domain, since)
          const receivedAt = clock.wallMs()
          // Kept bodies were verified when they arrived; one that no longer parses is skipped.
          const batch = kept.flatMap(({ body }): Array<Verified> => {
            const parsed = parseLiveKitEvent(body)
            return parsed._tag === "Right" ? [{ event: parsed.right, raw: body, receivedAt, span: ingest.begin() }] : []
          })
          const outcomes = batch.length === 0 ? [] : yield* ingest.receiveAll(batch, true)
          batch.forEach(({ span }) => span.end(200))
          yield* store.forgetUnrouted([...new Set(kept.map((k) => k.call))])
          return { replayed: outcomes.filter((o) => o === "accepted").length, tenant: hook.host }
        })
    }
  })
}) {}
