import { Effect, Runtime } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { DeliveryError, StoreUnavailable } from "../domain/Errors.ts"
import { DeliveryQueue } from "../store/DeliveryQueue.ts"
import type { QueuedDelivery } from "../store/Store.ts"
import { EngineClock, nextTurn, toMono, type Timer } from "./EngineClock.ts"

/**
 * A delivery in the window, with what the engine knows of it beyond the
 * store: its times on the engine's monotonic clock (set once, as it enters),
 * and its retry progress.
 */
export interface Held {
  readonly delivery: QueuedDelivery
  /** When its event happened (LiveKit's `createdAt`, else its acceptance): its age is measured from here. */
  readonly bornAt: number
  attempts: number
  readonly attemptsAtStart: number
  /** The delivery's retry schedule, from its first failure here: when to try again after a failure, or undefined when spent. */
  retry: ((now: number, failure: DeliveryError) => number | undefined) | undefined
  /** Set when its lane was woken before the retry was due, to expire it on time: the retry's due time. */
  retryDueAt: number | undefined
}

/** What a lane does after an attempt at its head: move on, or wait until `at` (monotonic) to try the head again. */
export type Next = { readonly _tag: "Finished" } | { readonly _tag: "RetryAt"; readonly at: number }

export const FINISHED: Next = { _tag: "Finished" }

/** One attempt at the head of a lane; undefined when shutdown stopped it (the delivery stays pending). */
export type AttemptHead = (held: Held) => Promise<Next | undefined>

/**
 * A call's deliveries to one tenant, sent one at a time in arrival order. The
 * lane holds the call's next few; `more` says the store may hold others
 * (they arrived while it was full, or were requeued), so it refills from there.
 */
interface Lane {
  readonly key: string
  readonly room: string | null
  readonly deliveries: Array<Held>
  more: boolean
  /** Bumped whenever `more` is set, so a refill that raced with an arrival does not clear it. */
  version: number
}

/**
 * A tenant's window on its queue: at most `window.lanes` lanes, the ready ones
 * taken in turn by at most `concurrencyPerTenant` workers. Everything else the
 * tenant is owed waits in the store, found by scanning its pending deliveries
 * in id order from `scannedTo`.
 */
interface TenantQueue {
  readonly tenant: string
  readonly lanes: Map<string, Lane>
  readonly ready: Array<Lane>
  workers: number
  /** Every pending delivery of this tenant with an id up to here belongs to a lane in the window. */
  scannedTo: number
  /** Whether the store may hold deliveries past `scannedTo` of calls not in the window. */
  unscanned: boolean
  /** Bumped whenever `unscanned` is set, so a scan that raced with an arrival does not clear it. */
  version: number
  scanning: boolean
}

const laneKey = (delivery: QueuedDelivery) => (delivery.room === null ? `#${delivery.id}` : delivery.room)

// Rows read per step of a scan; a scan stops early once the window is full.
const SCAN_PAGE = 256

// How long a lane waits to try again after the store could not be read, or the engine failed.
export const BACKOFF_MS = 1_000

/**
 * Which delivery is attempted next, per tenant: the store is the queue, and
 * this holds a bounded window of it per tenant, refilled from the store, so a
 * tenant that is down for days costs disk, not memory. Each call (room) has
 * its own lane, so a retrying event holds back only later events of the same
 * call; lanes are taken in turn by at most `concurrencyPerTenant` workers per
 * tenant, so a slow tenant never delays another and one busy call cannot
 * starve the tenant's others. A lane waiting for a retry holds no worker.
 * What an attempt is, the window does not know: the forwarder hands it one.
 */
export class LaneWindow extends Effect.Service<LaneWindow>()("LaneWindow", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const store = yield* DeliveryQueue
    const clock = yield* EngineClock
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const { lanes: maxLanes, perLane } = config.delivery.window
    const queues = new Map<string, TenantQueue>()
    /** Ids of the deliveries in the window, so one handed over twice (an arrival racing a scan, a claim) runs once. */
    const held = new Set<number>()
    /** Lanes waiting for a retry, by tenant, with their timers, so a disable can wake them. */
    const parked = new Map<string, Map<Lane, Timer>>()
    const timers = new Set<Timer>()
    let attemptHead: AttemptHead | undefined
    let hurries: (tenant: string) => boolean = () => false
    let stopped = false

    const later = (ms: number, task: () => void) => {
      const timer = clock.after(ms, () => {
        timers.delete(timer)
        if (!stopped) task()
      })
      timers.add(timer)
    }
    /** A store read; a failure is logged and answered with `orElse`. */
    const read = <A>(effect: Effect.Effect<A, StoreUnavailable>, orElse: A): Promise<A> =>
      run(effect.pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.as(Effect.logWarning("could not read the delivery queue; will retry", e.cause), orElse))))

    const queueOf = (tenant: string): TenantQueue => {
      let queue = queues.get(tenant)
      if (!queue) {
        queue = { tenant, lanes: new Map(), ready: [], workers: 0, scannedTo: 0, unscanned: false, version: 0, scanning: false }
        queues.set(tenant, queue)
      }
      return queue
    }

    /** Puts a lane in its tenant's ready list, starting a worker if the tenant has fewer than its cap. */
    const ready = (queue: TenantQueue, lane: Lane) => {
      queue.ready.push(lane)
      startWorker(queue)
    }
    const startWorker = (queue: TenantQueue) => {
      if (queue.workers >= config.delivery.concurrencyPerTenant || attemptHead === undefined) return
      queue.workers++
      void work(queue, attemptHead)
    }

    /** A lane waiting for its head's next attempt holds no worker: a timer puts it back. */
    const park = (queue: TenantQueue, lane: Lane, at: number) => {
      const wait = at - clock.monoMs()
      // A disabled tenant's deliveries wait for nothing: they end failed now.
      if (wait <= 0 || hurries(queue.tenant)) return ready(queue, lane)
      let lanes = parked.get(queue.tenant)
      if (!lanes) parked.set(queue.tenant, (lanes = new Map()))
      const timer = clock.after(wait, () => {
        timers.delete(timer)
        parked.get(queue.tenant)?.delete(lane)
        if (!stopped) ready(queue, lane)
      })
      timers.add(timer)
      lanes.set(lane, timer)
    }

    const take = (lane: Lane, deliveries: ReadonlyArray<QueuedDelivery>) => {
      for (const delivery of deliveries) {
        if (held.has(delivery.id)) continue
        held.add(delivery.id)
        // The store's times are wall times: they enter the engine's monotonic clock here, once.
        lane.deliveries.push({
          delivery,
          bornAt: toMono(clock, delivery.eventCreatedAt ?? delivery.createdAt),
          attempts: delivery.attempts,
          attemptsAtStart: delivery.attempts,
          retry: undefined,
          retryDueAt: undefined
        })
      }
    }

    /** When the lane's head is due, on the monotonic clock. */
    const headDue = (lane: Lane) => toMono(clock, lane.deliveries[0]!.delivery.nextAttemptAt)

    /** Reads the call's next deliveries into its empty lane; false when the store could not be read. */
    const fillLane = async (queue: TenantQueue, lane: Lane): Promise<boolean> => {
      const version = lane.version
      const next = await read(store.pendingInLane(queue.tenant, lane.room!, perLane + 1), undefined)
      if (next === undefined) return false
      take(lane, next.slice(0, perLane))
      if (lane.version === version) lane.more = next.length > perLane
      return true
    }

    /** A lane opened on the first pending delivery of its call; a call with more than a lane holds reads the rest later. */
    const openLane = async (queue: TenantQueue, first: QueuedDelivery) => {
      const lane: Lane = { key: laneKey(first), room: first.room, deliveries: [], more: first.room !== null, version: 0 }
      queue.lanes.set(lane.key, lane)
      if (first.room === null) take(lane, [first])
      else if (!(await fillLane(queue, lane))) take(lane, [first])
      if (lane.deliveries.length === 0) queue.lanes.delete(lane.key)
      else park(queue, lane, headDue(lane))
    }

    /**
     * Fills the tenant's window from the store: its pending deliveries in id
     * order from `scannedTo`, each call not yet in the window opened on its
     * first, until the window is full or nothing is left.
     */
    const scan = async (queue: TenantQueue): Promise<void> => {
      if (queue.scanning || !queue.unscanned || queue.lanes.size >= maxLanes || stopped) return
      queue.scanning = true
      try {
        for (;;) {
          const version = queue.version
          const rows = await read(store.pendingAfter(queue.tenant, queue.scannedTo, SCAN_PAGE), undefined)
          if (rows === undefined) return later(BACKOFF_MS, () => void scan(queue))
          for (const row of rows) {
            const lane = queue.lanes.get(laneKey(row))
            if (lane) {
              if (!held.has(row.id)) (lane.more = true), lane.version++
            } else if (queue.lanes.size >= maxLanes) return
            else {
              // A restart opens many lanes at once: give the event loop a turn between them, so the
              // server keeps answering (reads settle as microtasks, which would otherwise starve it).
              await nextTurn()
              await openLane(queue, row)
            }
            queue.scannedTo = row.id
          }
          if (rows.length < SCAN_PAGE) {
            // Read to the end: unless something arrived meanwhile, the store holds nothing past the window.
            if (queue.version === version) queue.unscanned = false
            else continue
            return
          }
        }
      } finally {
        queue.scanning = false
      }
    }

    /** After the head is done: the lane's next delivery, from the lane or the store; an empty lane leaves the window. */
    const advance = async (queue: TenantQueue, lane: Lane, next: Next) => {
      if (next._tag === "RetryAt") return park(queue, lane, next.at)
      const done = lane.deliveries.shift()!
      held.delete(done.delivery.id)
      if (lane.deliveries.length > 0) return ready(queue, lane)
      if (lane.more && lane.room !== null) return refill(queue, lane)
      queue.lanes.delete(lane.key)
      await scan(queue)
    }

    /** An emptied lane whose call has more in the store: its next deliveries, or it leaves the window. */
    const refill = async (queue: TenantQueue, lane: Lane): Promise<void> => {
      if (!(await fillLane(queue, lane))) return later(BACKOFF_MS, () => void refill(queue, lane))
      if (lane.deliveries.length > 0) return ready(queue, lane)
      queue.lanes.delete(lane.key)
      await scan(queue)
    }

    /** A tenant's worker: attempts the head of one lane at a time, taking lanes in turn, until none is due. */
    const work = async (queue: TenantQueue, attempt: AttemptHead) => {
      try {
        for (let lane = queue.ready.shift(); lane !== undefined; lane = queue.ready.shift()) {
          const next = await attempt(lane.deliveries[0]!).catch(
            // A bug must not strand the lane: it is logged, and the lane tried again shortly.
            (cause): Next => (void run(Effect.logError("delivery engine failed", cause)), { _tag: "RetryAt", at: clock.monoMs() + BACKOFF_MS })
          )
          if (next === undefined) return
          // A lane back in the ready list goes behind the others, so one busy call cannot starve the tenant's other calls.
          await advance(queue, lane, next)
        }
      } finally {
        queue.workers--
      }
    }

    /** A delivery just accepted: into its call's lane if the window has room for it, else it waits in the store. */
    const enqueue = (delivery: QueuedDelivery) => {
      if (held.has(delivery.id) || stopped) return
      const queue = queueOf(delivery.tenant)
      const lane = queue.lanes.get(laneKey(delivery))
      if (lane) {
        if (!lane.more && lane.deliveries.length < perLane) take(lane, [delivery])
        else (lane.more = true), lane.version++
        return
      }
      if (!queue.unscanned && queue.lanes.size < maxLanes) {
        // Nothing of this tenant waits outside the window, so this delivery is its call's first.
        const opened: Lane = { key: laneKey(delivery), room: delivery.room, deliveries: [], more: false, version: 0 }
        queue.lanes.set(opened.key, opened)
        take(opened, [delivery])
        queue.scannedTo = Math.max(queue.scannedTo, delivery.id)
        return park(queue, opened, headDue(opened))
      }
      queue.unscanned = true
      queue.version++
      void scan(queue)
    }

    /**
     * Deliveries that are pending again from `fromId` on (requeued, or taken
     * over from a dead instance): the tenant's scan goes back to them, and the
     * calls in the window look in the store again.
     */
    const resume = (tenant: string, fromId: number) => {
      const queue = queueOf(tenant)
      queue.scannedTo = Math.min(queue.scannedTo, fromId - 1)
      queue.unscanned = true
      queue.version++
      for (const lane of queue.lanes.values()) (lane.more = true), lane.version++
      void scan(queue)
    }

    return {
      /**
       * Starts the workers: `attempt` is what they do with a lane's head, and `hurry` says a
       * tenant's deliveries should not wait for their retries (it is disabled: they end now).
       * Whatever a previous run left pending resumes; only each tenant's window is read, in the background.
       */
      start: (attempt: AttemptHead, hurry: (tenant: string) => boolean) =>
        Effect.gen(function* () {
          attemptHead = attempt
          hurries = hurry
          // Lanes that became ready before the workers could start (nothing should arrive that early).
          for (const queue of queues.values()) for (const _ of queue.ready.slice(0, config.delivery.concurrencyPerTenant)) startWorker(queue)
          for (const tenant of yield* Effect.orElseSucceed(store.pendingTenants, () => [])) {
            const queue = queueOf(tenant)
            queue.unscanned = true
            void scan(queue)
          }
        }),
      /** Queues deliveries just accepted, in id order; one already in the window is ignored. */
      enqueueAll: (deliveries: ReadonlyArray<QueuedDelivery>) => deliveries.forEach(enqueue),
      resume,
      /** Deliveries taken over from a dead instance, which this instance now holds. */
      resumeClaimed: (claimed: ReadonlyArray<QueuedDelivery>) => {
        const firstOf = new Map<string, number>()
        for (const { tenant, id } of claimed) firstOf.set(tenant, Math.min(id, firstOf.get(tenant) ?? id))
        for (const [tenant, id] of firstOf) resume(tenant, id)
      },
      /** A tenant just disabled: its lanes waiting for a retry wake now, so their deliveries end at once. */
      wake: (tenant: string) => {
        const lanes = parked.get(tenant)
        const queue = queues.get(tenant)
        if (!lanes || !queue) return
        parked.delete(tenant)
        for (const [lane, timer] of lanes) {
          timer.cancel()
          timers.delete(timer)
          ready(queue, lane)
        }
      },
      /** No more waking, scanning or queueing: what is pending stays in the store for the next start. */
      stop: () => {
        stopped = true
        for (const timer of timers) timer.cancel()
        timers.clear()
      }
    }
  })
}) {}
