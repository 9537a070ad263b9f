/**
 * The backlog run: one tenant down (the farm answers 503 for it) while
 * BENCH_BACKLOG deliveries pile up for it, healthy tenants sending throughout.
 *
 * 1. An empty router: start to /readyz, then resident memory after a warm-up.
 * 2. Tenant DOWN goes down; 64 clients post BENCH_BACKLOG events for it, with
 *    a paced healthy stream alongside; memory sampled at 0, ⅓, ⅔ and full.
 * 3. SIGTERM, restart on the same store: start to /readyz; a healthy-only phase.
 * 4. Healthy events at full speed, kill -9 of the router once half of them are
 *    acknowledged, restart on the same store: start to /readyz.
 * 5. Tenant DOWN comes back up: the drain, with the healthy stream alongside.
 * 6. Accounting: every acknowledged event must have arrived exactly once, save
 *    duplicates whose first arrival fell just before the kill -9 (a tenant's 2xx
 *    the router could not record).
 * Every loop is bounded by a count and every wait by a deadline.
 */
import { rmSync } from "node:fs"
import {
  epochNow,
  isRouterProcess,
  load,
  percentile,
  post,
  presign,
  readyAfter,
  residentBytes,
  signEvent,
  spawnRouter,
  TENANTS,
  type Farm,
  type RouterProcess,
  type Signed
} from "./harness.ts"

export const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 300_000)
/** The tenant that goes down. */
const DOWN = 7
const HEALTHY_RATE = 100
const HEALTHY_IN_FLIGHT = 16
const CLIENTS = 64
const WARMUP = 2_000
const AFTER_RESTART_MS = 5_000
const CRASH_EVENTS = 2_000
/** A duplicate is the kill's doing if its first arrival came at most this long before the kill (or 50 ms after: two processes' clocks). */
const CRASH_WINDOW_MS = 2_000
const CHUNK = 2_000
const ARRIVAL_DEADLINE_MS = 60_000
const FILL_DEADLINE_MS = Math.max(300_000, BACKLOG * 5)
const DRAIN_DEADLINE_MS = Math.max(120_000, BACKLOG * 4)
const SETTLE_MS = 1_000

/** Healthy tenants: every one but DOWN, round robin. */
const healthyTenant = (i: number) => {
  const t = i % (TENANTS - 1)
  return t >= DOWN ? t + 1 : t
}

/** The router's own count of pending deliveries (`tenant_router_queue_depth`), if it reports one. */
const queueDepth = async (url: string): Promise<number | undefined> => {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text()
    const value = /^tenant_router_queue_depth(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1]
    return value === undefined ? undefined : Number(value)
  } catch {
    return undefined
  }
}

export interface Sample {
  readonly at: string
  readonly rssBytes: number
  readonly pending: number | undefined
}
const sample = async (router: RouterProcess, at: string): Promise<Sample> => ({ at, rssBytes: await residentBytes(router.pid), pending: await queueDepth(router.url) })

// ------------------------------------------------------------------ arrivals at the farm, read incrementally

const tracker = (farm: Farm) => {
  const first = new Map<string, number>()
  /** Arrivals after the first, by id. */
  const again = new Map<string, number[]>()
  let offset = 0
  let rejected = 0
  let watched = new Set<string>()
  let watchedArrived = 0
  let watchedFirstAt = Number.NaN
  let watchedLastAt = Number.NaN
  const sync = async () => {
    const seen = await farm.since(offset)
    offset += seen.arrivals.length
    rejected = seen.rejected
    for (const [id, , at] of seen.arrivals) {
      if (first.has(id)) {
        const times = again.get(id)
        times ? times.push(at) : again.set(id, [at])
        continue
      }
      first.set(id, at)
      if (watched.has(id)) {
        watchedArrived++
        if (Number.isNaN(watchedFirstAt)) watchedFirstAt = at
        watchedLastAt = at
      }
    }
  }
  /** Syncs until every id in `ids` has arrived, or the deadline. */
  const waitFor = async (ids: Iterable<string>, deadlineMs = ARRIVAL_DEADLINE_MS) => {
    const deadline = Date.now() + deadlineMs
    let missing = [...ids]
    for (;;) {
      await sync()
      missing = missing.filter((id) => !first.has(id))
      if (missing.length === 0 || Date.now() > deadline) return missing.length
      await Bun.sleep(200)
    }
  }
  return {
    first,
    again,
    sync,
    waitFor,
    /** Counts first arrivals of these ids from now on (they have none yet). */
    watch: (ids: Set<string>) => ((watched = ids), (watchedArrived = 0)),
    watchedArrived: () => watchedArrived,
    watchedSpan: () => ({ firstAt: watchedFirstAt, lastAt: watchedLastAt }),
    rejected: () => rejected
  }
}
type Tracker = ReturnType<typeof tracker>

// ------------------------------------------------------------------ load shapes

/** Healthy events at HEALTHY_RATE per second, at most HEALTHY_IN_FLIGHT at once, until stopped (bounded at an hour's worth). */
const healthyStream = (label: string, url: () => string) => {
  const sentAt = new Map<string, number>()
  const acked = new Set<string>()
  let failed = 0
  let stopped = false
  const inFlight = new Set<Promise<void>>()
  const interval = 1000 / HEALTHY_RATE
  const running = (async () => {
    const started = epochNow()
    for (let i = 0; i < HEALTHY_RATE * 3_600 && !stopped; i++) {
      const wait = started + i * interval - epochNow()
      if (wait > 0) await Bun.sleep(wait)
      if (inFlight.size >= HEALTHY_IN_FLIGHT) await Promise.race(inFlight)
      if (stopped) break
      const event = await signEvent(label, i, healthyTenant(i))
      const one = (async () => {
        sentAt.set(event.id, epochNow())
        if (await post(url(), event)) acked.add(event.id)
        else failed++
      })()
      inFlight.add(one)
      void one.finally(() => inFlight.delete(one))
    }
    await Promise.all(inFlight)
  })()
  return {
    sentAt,
    acked,
    failed: () => failed,
    stop: async () => {
      stopped = true
      await running
    }
  }
}
type Stream = ReturnType<typeof healthyStream>

/** p99 end to end of a stopped stream's acknowledged events, once they arrived (or the deadline). */
const streamP99 = async (stream: Stream, arrivals: Tracker) => {
  const missing = await arrivals.waitFor(stream.acked)
  const latencies = Float64Array.from([...stream.acked].filter((id) => arrivals.first.has(id)).map((id) => arrivals.first.get(id)! - stream.sentAt.get(id)!)).sort()
  return { events: stream.acked.size, failed: stream.failed(), missing, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) }
}

/** `count` events for DOWN from CLIENTS clients, signed a chunk ahead; `onAck` sees the running count. Bounded by the count and a deadline. */
const fill = async (url: string, count: number, onAck: (acked: number) => void) => {
  const chunks = new Map<number, Promise<Signed[]>>()
  const chunk = (k: number) => {
    let signed = chunks.get(k)
    if (!signed) {
      signed = Promise.all(Array.from({ length: Math.max(0, Math.min(CHUNK, count - k * CHUNK)) }, (_, j) => signEvent("backlog", k * CHUNK + j, DOWN)))
      chunks.set(k, signed)
    }
    return signed
  }
  const acked = new Set<string>()
  let next = 0
  let failed = 0
  const deadline = Date.now() + FILL_DEADLINE_MS
  const started = epochNow()
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < count && Date.now() < deadline) {
        const i = next++
        const k = Math.floor(i / CHUNK)
        const signed = chunk(k)
        if ((k + 1) * CHUNK < count) void chunk(k + 1)
        chunks.delete(k - 1)
        const event = (await signed)[i - k * CHUNK]!
        if (await post(url, event)) acked.add(event.id), onAck(acked.size)
        else failed++
      }
    })
  )
  return { acked, failed, sent: next, perSecond: (acked.size / (epochNow() - started)) * 1000 }
}

/** Healthy events at full speed; kill -9 of the router once half are acknowledged. */
const crashUnderLoad = async (router: RouterProcess) => {
  const events = await Promise.all(Array.from({ length: CRASH_EVENTS }, (_, i) => signEvent("crash", i, healthyTenant(i))))
  if (!isRouterProcess(router.pid)) throw new Error(`pid ${router.pid} is not the router process itself: refusing to kill -9 it`)
  const acked = new Set<string>()
  let next = 0
  let killedAt = Number.NaN
  let killing: Promise<unknown> | undefined
  const kill = () => ((killedAt = epochNow()), router.stop("SIGKILL"))
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < events.length && killing === undefined) {
        const event = events[next++]!
        if (await post(router.url, event)) {
          acked.add(event.id)
          if (acked.size >= events.length / 2) killing ??= kill()
        }
      }
    })
  )
  await (killing ??= kill())
  return { acked, killedAt }
}

// ------------------------------------------------------------------ the run

export interface BacklogResult {
  readonly backlog: number
  readonly downTenant: number
  readonly healthyPerSecond: number
  readonly empty: { readonly startToReadyMs: number; readonly rssBytes: number }
  readonly fill: { readonly acknowledged: number; readonly failed: number; readonly perSecond: number; readonly samples: ReadonlyArray<Sample> }
  readonly restart: { readonly sigtermExitMs: number; readonly afterSigtermMs: number; readonly afterSigkillMs: number; readonly afterRestart: Sample; readonly killAfterAcks: number }
  readonly drain: {
    readonly delivered: number
    readonly perSecond: number
    readonly upToFirstMs: number
    readonly seconds: number
    readonly samples: ReadonlyArray<Sample>
    readonly maxRssBytes: number
  }
  readonly healthyP99Ms: { readonly growing: number; readonly afterRestart: number; readonly drain: number }
  readonly healthy: Record<string, Awaited<ReturnType<typeof streamP99>>>
  readonly events: {
    readonly down: Accounting
    readonly healthy: Accounting
    readonly rejectedAtFarm: number
  }
}

interface Accounting {
  readonly acknowledged: number
  readonly arrivedOnce: number
  readonly lost: number
  readonly duplicatedByKill: number
  /** How long before the kill the oldest of those first arrived. */
  readonly killDuplicateOldestMs: number
  readonly duplicatedOtherwise: number
}

const account = (ids: Iterable<string>, arrivals: Tracker, killedAt: number): Accounting => {
  let acknowledged = 0
  let lost = 0
  let arrivedOnce = 0
  let duplicatedByKill = 0
  let duplicatedOtherwise = 0
  let killDuplicateOldestMs = 0
  for (const id of ids) {
    acknowledged++
    const first = arrivals.first.get(id)
    const again = arrivals.again.get(id)
    if (first === undefined) lost++
    else if (!again) arrivedOnce++
    else if (first >= killedAt - CRASH_WINDOW_MS && first <= killedAt + 50 && again.length === 1 && again[0]! > killedAt) {
      duplicatedByKill++
      killDuplicateOldestMs = Math.max(killDuplicateOldestMs, killedAt - first)
    }
    else duplicatedOtherwise++
  }
  return { acknowledged, arrivedOnce, lost, duplicatedByKill, killDuplicateOldestMs, duplicatedOtherwise }
}

export const backlogRun = async (startFarm: () => Promise<Farm>, config: (farm: Farm) => (dir: string) => Record<string, unknown>): Promise<BacklogResult> => {
  const farm = await startFarm()
  const arrivals = tracker(farm)
  const routerConfig = config(farm)
  let router = await spawnRouter(routerConfig)
  const dir = router.dir
  try {
    // 1. Empty.
    const emptyStart = await readyAfter(router)
    const warm = await presign(WARMUP, "bwarm")
    await load([router.url], warm, CLIENTS)
    await arrivals.waitFor(warm.map((e) => e.id))
    await Bun.sleep(SETTLE_MS)
    const empty = await sample(router, "0")

    // 2. The tenant down, the backlog growing.
    await farm.setDown(DOWN, true)
    const growing = healthyStream("grow", () => router.url)
    const samples: Array<Promise<Sample>> = [Promise.resolve(empty)]
    const marks = new Map([[Math.ceil(BACKLOG / 3), "⅓"], [Math.ceil((2 * BACKLOG) / 3), "⅔"]])
    const current = router
    const filled = await fill(router.url, BACKLOG, (acked) => {
      const mark = marks.get(acked)
      if (mark) samples.push(sample(current, mark))
    })
    await growing.stop()
    await Bun.sleep(SETTLE_MS)
    samples.push(sample(router, "full"))
    const growingP99 = await streamP99(growing, arrivals)

    // 3. SIGTERM and restart on the same store.
    const stopping = epochNow()
    await router.stop("SIGTERM")
    const sigtermExitMs = epochNow() - stopping
    router = await spawnRouter(routerConfig, { dir })
    const afterSigterm = await readyAfter(router)
    await Bun.sleep(SETTLE_MS)
    const afterRestart = await sample(router, "after restart")
    const calm = healthyStream("after", () => router.url)
    await Bun.sleep(AFTER_RESTART_MS)
    await calm.stop()
    const afterP99 = await streamP99(calm, arrivals)

    // 4. kill -9 under load, restart on the same store.
    const crash = await crashUnderLoad(router)
    router = await spawnRouter(routerConfig, { dir })
    const afterSigkill = await readyAfter(router)

    // 5. The tenant back up: the drain.
    arrivals.watch(filled.acked)
    await Bun.sleep(SETTLE_MS)
    const draining = healthyStream("drain", () => router.url)
    const drainSamples: Sample[] = [await sample(router, "0")]
    await farm.setDown(DOWN, false)
    const upAt = epochNow()
    const drainMarks = [
      [Math.ceil(filled.acked.size / 3), "⅓"],
      [Math.ceil((2 * filled.acked.size) / 3), "⅔"]
    ] as const
    const deadline = Date.now() + DRAIN_DEADLINE_MS
    while (arrivals.watchedArrived() < filled.acked.size && Date.now() < deadline) {
      await Bun.sleep(200)
      await arrivals.sync()
      const next = drainMarks.find(([count, at]) => arrivals.watchedArrived() >= count && !drainSamples.some((s) => s.at === at))
      if (next) drainSamples.push(await sample(router, next[1]))
    }
    drainSamples.push(await sample(router, "end"))
    await draining.stop()
    const drainP99 = await streamP99(draining, arrivals)
    const { firstAt, lastAt } = arrivals.watchedSpan()
    const drained = arrivals.watchedArrived()

    // 6. Accounting, once everything acknowledged had its chance to arrive.
    const healthyIds = [...warm.map((e) => e.id), ...growing.acked, ...calm.acked, ...crash.acked, ...draining.acked]
    await arrivals.waitFor(healthyIds)
    await router.stop("SIGTERM")
    const growSamples = await Promise.all(samples)
    const drainSeconds = (lastAt - firstAt) / 1000
    return {
      backlog: BACKLOG,
      downTenant: DOWN,
      healthyPerSecond: HEALTHY_RATE,
      empty: { startToReadyMs: emptyStart, rssBytes: empty.rssBytes },
      fill: { acknowledged: filled.acked.size, failed: filled.failed, perSecond: filled.perSecond, samples: growSamples },
      restart: { sigtermExitMs, afterSigtermMs: afterSigterm, afterSigkillMs: afterSigkill, afterRestart, killAfterAcks: crash.acked.size },
      drain: {
        delivered: drained,
        perSecond: drained / drainSeconds,
        upToFirstMs: firstAt - upAt,
        seconds: drainSeconds,
        samples: drainSamples,
        maxRssBytes: Math.max(...drainSamples.map((s) => s.rssBytes))
      },
      healthyP99Ms: { growing: growingP99.p99Ms, afterRestart: afterP99.p99Ms, drain: drainP99.p99Ms },
      healthy: { growing: growingP99, afterRestart: afterP99, drain: drainP99 },
      events: {
        down: account(filled.acked, arrivals, crash.killedAt),
        healthy: account(healthyIds, arrivals, crash.killedAt),
        rejectedAtFarm: arrivals.rejected()
      }
    }
  } finally {
    await router.stop("SIGTERM")
    await farm.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}
