import { Cause, Clock, Duration, Effect, Option } from "effect"
import { standardWebhookHeaders } from "../delivery/WebhookSender.ts"
import type { DeliveryChange } from "../domain/Delivery.ts"
import { commentFrame, eventFrame, streamEvent } from "../domain/DeliveryStream.ts"
import { ShuttingDown } from "../domain/Errors.ts"
import { deliverySecrets } from "../domain/Hook.ts"
import { entryFor, HookTable } from "../hooks/HookTable.ts"
import { Lifecycle } from "../Lifecycle.ts"
import { DeliveryHistory } from "../store/DeliveryHistory.ts"
import type { Principal } from "./Api.ts"
import { mayAccess } from "./Authorization.ts"

/** Whose changes a stream shows, fixed when it opens: every tenant's, one tenant's, or a tenant token's own hosts. */
export type StreamScope = { readonly _tag: "All" } | { readonly _tag: "Tenant"; readonly tenant: string } | { readonly _tag: "Hosts"; readonly principal: Principal }

/** How often the feed is read while anyone is connected. */
const POLL = Duration.millis(250)
/** A comment to every stream this often: Bun closes a connection idle for `idleTimeout` (30 s here). */
export const HEARTBEAT_EVERY = Duration.seconds(15)
/** Changes read at a time, for the live feed and for each resume. */
const PAGE = 500
/** Pages one poll reads, for the live feed and for each stream resuming: the rest waits for the next poll. */
const PAGES_PER_POLL = 20
/**
 * What one stream may hold unsent when a poll begins: a stream holding more
 * did not drain what the last poll gave it, and is dropped (its client
 * resumes with Last-Event-ID). One poll's burst may take it to four times
 * this; past that it is dropped at once.
 */
const QUEUE_BYTES = 1024 * 1024
const BURST_BYTES = 4 * QUEUE_BYTES

const encoder = new TextEncoder()
const OPENED = encoder.encode(commentFrame("stream open"))
const HEARTBEAT = encoder.encode(commentFrame("heartbeat"))
const CLOSING = encoder.encode(commentFrame("shutting down"))

/** One open stream. `from`: while it resumes, the last change it was given; undefined once it takes the live feed. */
interface Subscriber {
  readonly scope: StreamScope
  readonly bodies: boolean
  readonly controller: ReadableStreamDefaultController<Uint8Array>
  from: string | undefined
  closed: boolean
}

const inScope = (scope: StreamScope, tenant: string) =>
  scope._tag === "All" || (scope._tag === "Tenant" ? scope.tenant === tenant : mayAccess(scope.principal, tenant))

/** Room left in a stream's queue, in bytes (negative once it holds more than its bound). */
const room = (subscriber: Subscriber) => subscriber.controller.desiredSize ?? 0

/**
 * The live stream's one reader of the store. While anyone is connected, a
 * single poller reads the feed of delivery changes (`changesAfter`) from the
 * last change it saw, a bounded page at a time, and hands each change to the
 * streams whose scope holds it: the store is read once per change, however
 * many streams are open, and each change is framed once (once more, with its
 * body signed now, if a stream asked for bodies). A stream that resumes reads
 * the store for itself, inside the poller's turn, up to the change the live
 * feed stopped at, and then joins it: no gap, no duplicate. Each stream's
 * queue is bounded (QUEUE_BYTES): a stream that outgrows it is closed, and
 * its client reconnects with Last-Event-ID, losing nothing the store still
 * holds. Handing a change out is plain code; the Effect runtime is entered
 * once per poll (and once per change whose body a stream asked for: a read).
 */
export class StreamHub extends Effect.Service<StreamHub>()("StreamHub", {
  scoped: Effect.gen(function* () {
    const history = yield* DeliveryHistory
    const hooks = yield* HookTable
    const lifecycle = yield* Lifecycle
    const wake = yield* Effect.makeLatch(false)

    const everyone = new Set<Subscriber>()
    /** Opened since the last poll began: they resume in the next one (whose live read has passed what they asked for). */
    const arriving = new Set<Subscriber>()
    /** Reading what they missed, before joining the live feed. */
    const resuming = new Set<Subscriber>()
    const live = { all: new Set<Subscriber>(), byTenant: new Map<string, Set<Subscriber>>(), byHosts: new Set<Subscriber>() }
    /** The last change the live feed handed out; undefined while no one is connected. */
    let cursor: string | undefined
    let lastBeat = 0
    let failing = false

    const forget = (subscriber: Subscriber) => {
      subscriber.closed = true
      everyone.delete(subscriber)
      arriving.delete(subscriber)
      resuming.delete(subscriber)
      live.all.delete(subscriber)
      live.byHosts.delete(subscriber)
      if (subscriber.scope._tag === "Tenant") {
        const set = live.byTenant.get(subscriber.scope.tenant)
        set?.delete(subscriber)
        if (set?.size === 0) live.byTenant.delete(subscriber.scope.tenant)
      }
    }

    /**
     * Ends a stream. What it holds unsent stays for its client to read (Bun
     * frees it with the connection, at the latest after `idleTimeout`), then
     * the stream ends cleanly: the client resumes after the last event it saw.
     */
    const end = (subscriber: Subscriber, last?: Uint8Array) => {
      if (subscriber.closed) return
      forget(subscriber)
      try {
        if (last) subscriber.controller.enqueue(last)
        subscriber.controller.close()
      } catch {
        // Already cancelled by its client.
      }
    }

    /** Streams dropped for not keeping up, since the last poll logged them. */
    let dropped: Array<Subscriber> = []
    const drop = (subscriber: Subscriber) => {
      end(subscriber)
      dropped.push(subscriber)
    }

    /** Queues a frame; a stream whose burst outgrew its bound is dropped instead. */
    const send = (subscriber: Subscriber, frame: Uint8Array) => {
      if (subscriber.closed) return
      if (room(subscriber) <= QUEUE_BYTES - BURST_BYTES) return drop(subscriber)
      try {
        subscriber.controller.enqueue(frame)
      } catch {
        forget(subscriber)
      }
    }

    const joinLive = (subscriber: Subscriber) => {
      resuming.delete(subscriber)
      subscriber.from = undefined
      const { scope } = subscriber
      if (scope._tag === "All") live.all.add(subscriber)
      else if (scope._tag === "Hosts") live.byHosts.add(subscriber)
      else {
        const set = live.byTenant.get(scope.tenant) ?? new Set()
        live.byTenant.set(scope.tenant, set.add(subscriber))
      }
    }

    /** The live streams a change goes to. */
    const audience = (change: DeliveryChange): Array<Subscriber> => {
      const out = [...live.all]
      for (const subscriber of live.byTenant.get(change.tenant) ?? []) out.push(subscriber)
      for (const subscriber of live.byHosts) if (inScope(subscriber.scope, change.tenant)) out.push(subscriber)
      return out
    }

    const plainFrame = (change: DeliveryChange) => encoder.encode(eventFrame(change.id, streamEvent(change)))

    /**
     * Changes framed with their delivery's body and Standard Webhooks headers,
     * signed at `now` as an attempt would be: with the hook's current secrets
     * while it points where the delivery goes, else the pinned destination's.
     * Never the hook's own headers or credentials.
     */
    const withBodies = (changes: ReadonlyArray<DeliveryChange>, now: number) =>
      Effect.forEach(
        changes,
        (change) =>
          Effect.map(history.delivery(change.deliveryId), (found) => {
            const delivery = Option.getOrUndefined(found)
            const secrets = delivery && deliverySecrets(entryFor(hooks.inForce(), delivery.tenant), delivery, hooks.inForce().signing, now)
            const headers = delivery && secrets && secrets.length > 0 ? standardWebhookHeaders(secrets, delivery.eventId, now, delivery.body) : null
            return encoder.encode(eventFrame(change.id, { ...streamEvent(change), body: delivery?.body ?? null, headers }))
          }),
        { concurrency: 8 }
      )

    /** One page of the live feed to the streams that hold each change; bodies are read and signed once per change. */
    const fanOut = (page: ReadonlyArray<DeliveryChange>, now: number) =>
      Effect.gen(function* () {
        const audiences = page.map(audience)
        const wanted = page.filter((_, i) => audiences[i]!.some((subscriber) => subscriber.bodies))
        const signed = wanted.length === 0 ? [] : yield* withBodies(wanted, now)
        const withBody = new Map(wanted.map((change, i) => [change, signed[i]!]))
        page.forEach((change, i) => {
          let plain: Uint8Array | undefined
          for (const subscriber of audiences[i]!) send(subscriber, subscriber.bodies ? withBody.get(change)! : (plain ??= plainFrame(change)))
        })
      })

    /**
     * What a resuming stream missed, read for it alone: from its last change
     * up to the one the live feed stopped at, then it joins the live feed. It
     * is given no more than half its queue holds; the rest waits for a later
     * poll, so a long resume is paced by its client rather than dropped.
     */
    const resume = (subscriber: Subscriber, now: number) =>
      Effect.gen(function* () {
        for (let pages = 0; pages < PAGES_PER_POLL; pages++) {
          if (subscriber.from === cursor) return joinLive(subscriber)
          if (subscriber.closed || room(subscriber) < QUEUE_BYTES / 2) return
          const page = yield* history.changesAfter(subscriber.from!, PAGE)
          const stop = page.findIndex((change) => change.id === cursor)
          const missed = stop === -1 ? page : page.slice(0, stop + 1)
          for (const change of missed) {
            if (subscriber.closed || room(subscriber) < QUEUE_BYTES / 2) return
            if (inScope(subscriber.scope, change.tenant)) {
              const frame = subscriber.bodies ? (yield* withBodies([change], now))[0]! : plainFrame(change)
              if (subscriber.closed) return
              subscriber.controller.enqueue(frame)
            }
            subscriber.from = change.id
          }
          // Up to the live feed's cursor, or the end of the store (after an id it never sent: it takes what follows).
          if (stop !== -1 || page.length < PAGE) return joinLive(subscriber)
        }
      })

    const heartbeat = (now: number) => {
      if (now - lastBeat < Duration.toMillis(HEARTBEAT_EVERY)) return
      lastBeat = now
      // A stream with a backlog is not idle: it needs no comment, and is not dropped for one.
      for (const subscriber of everyone) if (room(subscriber) > 0) send(subscriber, HEARTBEAT)
    }

    const logDropped = () => {
      if (dropped.length === 0) return Effect.void
      const scopes = dropped.map(({ scope }) => (scope._tag === "Tenant" ? scope.tenant : scope._tag === "All" ? "all" : "own hosts"))
      dropped = []
      return Effect.logWarning("live stream dropped: its client did not keep up").pipe(Effect.annotateLogs({ streams: scopes.length, scopes }))
    }

    const poll = Effect.gen(function* () {
      if (lifecycle.draining()) {
        for (const subscriber of everyone) end(subscriber, CLOSING)
        return
      }
      if (everyone.size === 0) {
        cursor = undefined
        return wake.unsafeClose()
      }
      // Taken before the live read, which then reaches past whatever they asked for.
      for (const subscriber of arriving) resuming.add(subscriber)
      arriving.clear()
      const now = yield* Clock.currentTimeMillis
      if (cursor === undefined) {
        lastBeat = now
        cursor = yield* history.lastChange
      }
      // A live stream still holding a full queue did not drain what the last poll gave it.
      for (const subscriber of everyone) if (subscriber.from === undefined && room(subscriber) <= 0) drop(subscriber)
      heartbeat(now)
      for (let pages = 0; pages < PAGES_PER_POLL; pages++) {
        const page: ReadonlyArray<DeliveryChange> = yield* history.changesAfter(cursor, PAGE)
        if (page.length === 0) break
        yield* fanOut(page, now)
        cursor = page[page.length - 1]!.id
        if (page.length < PAGE) break
        // A turn of the event loop between pages lets Bun write what the streams hold.
        yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      }
      for (const subscriber of resuming) yield* resume(subscriber, now)
      failing = false
    }).pipe(
      Effect.ensuring(Effect.suspend(() => logDropped())),
      Effect.catchAllCause((cause) => {
        // Streams stay open through a store outage and carry on from where the feed stopped.
        const first = !failing
        failing = true
        return first ? Effect.logWarning("live stream: could not read the feed of delivery changes; retrying", Cause.squash(cause)) : Effect.void
      })
    )

    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.zipRight(wake.await, poll), Effect.sleep(POLL))))
    yield* Effect.addFinalizer(() => Effect.sync(() => everyone.forEach((subscriber) => end(subscriber, CLOSING))))

    return {
      /**
       * A new stream of the changes in `scope`, as SSE bytes: a comment at
       * once, then the changes after `from` (a change's id), or, without it,
       * those after the latest. Refused while the router shuts down.
       */
      open: (scope: StreamScope, bodies: boolean, from: string | undefined) =>
        Effect.gen(function* () {
          if (lifecycle.draining()) return yield* new ShuttingDown()
          // Read even to resume: a store without the feed is a 503 now, not a silent stream.
          const latest = yield* history.lastChange
          const after = from ?? latest
          let subscriber: Subscriber | undefined
          const body = new ReadableStream<Uint8Array>(
            {
              start: (controller) => {
                subscriber = { scope, bodies, controller, from: after, closed: false }
                controller.enqueue(OPENED)
                everyone.add(subscriber)
                arriving.add(subscriber)
              },
              cancel: () => subscriber && forget(subscriber)
            },
            new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES })
          )
          wake.unsafeOpen()
          return body
        })
    }
  })
}) {}
