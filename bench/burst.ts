/**
 * Overload: BURST_CLIENTS keep-alive clients send as fast as they can, twice
 * the router's default `server.maxWebhooksWaiting`. An event refused with 503
 * is sent again after its Retry-After, as LiveKit does, until it is taken.
 * Measured: resident memory (sampled every SAMPLE_MS) over the same router
 * idle, the share of answers that were 503, acknowledgement latency, the
 * slowest /healthz polled beside the burst, and every event acknowledged and
 * delivered. The baseline is the same router with the bound lifted. Every loop
 * is bounded and every wait has a deadline. Bun's fetch sends at most 256
 * requests at once unless BUN_CONFIG_MAX_HTTP_REQUESTS says more (`bun run
 * bench` sets it), or the burst could never pass the bound.
 */
import { epochNow, percentile, presign, residentBytes, spawnRouter, type Farm, type RouterProcess, type Signed } from "./harness.ts"

export const BURST_CLIENTS = 512
const SAMPLE_MS = 100
/** Sends of one event before the run gives up on it: LiveKit itself stops after five. */
const MAX_SENDS = 20
const DRAIN_DEADLINE_MS = 180_000

export interface BurstResult {
  readonly events: number
  readonly answers: number
  readonly refusedShare: number
  readonly acknowledged: number
  readonly ackP50Ms: number
  readonly ackP99Ms: number
  readonly idleRssBytes: number
  readonly peakRssBytes: number
  readonly slowestHealthMs: number
  readonly healthPolls: number
  readonly arrived: number
  readonly rejectedAtFarm: number
}

const send = async (url: string, event: Signed) => {
  const started = epochNow()
  const response = await fetch(`${url}/livekit/webhook`, {
    method: "POST",
    headers: { authorization: event.authorization, "content-type": "application/webhook+json" },
    body: event.raw
  })
  await response.arrayBuffer()
  return { status: response.status, retryAfterS: Number(response.headers.get("retry-after") ?? 1), ms: epochNow() - started }
}

/** Samples `task` while `busy` runs; the largest value. */
const whileRunning = async <A>(busy: Promise<A>, sample: () => Promise<number>, everyMs: number) => {
  let done = false
  void busy.finally(() => (done = true))
  let largest = 0
  let samples = 0
  while (!done) {
    largest = Math.max(largest, await sample())
    samples++
    if (everyMs > 0) await Bun.sleep(everyMs)
  }
  return { largest, samples }
}

const healthMs = async (router: RouterProcess) => {
  const started = performance.now()
  const response = await fetch(`${router.url}/healthz`)
  await response.arrayBuffer()
  if (response.status !== 200) throw new Error(`/healthz answered ${response.status} during the burst`)
  return performance.now() - started
}

/** The burst against the router as configured, and against the same router with the bound lifted. */
export const burstRuns = async (farm: Farm, config: (dir: string) => Record<string, unknown>, count: number) => {
  const bounded = await burstRun(farm, config, await presign(count, "burst"))
  const unbounded = await burstRun(farm, (dir) => ({ ...config(dir), server: { ...config(dir).server!, maxWebhooksWaiting: Number.MAX_SAFE_INTEGER } }), await presign(count, "burst2"))
  return { bounded, unbounded }
}

const burstRun = async (farm: Farm, config: (dir: string) => Record<string, unknown>, events: ReadonlyArray<Signed>): Promise<BurstResult> => {
  const router = await spawnRouter(config)
  await Bun.sleep(1_000)
  const idleRssBytes = await residentBytes(router.pid)
  await farm.stats(true)

  const queue = events.map((event) => ({ event, sends: 0 }))
  let answers = 0
  let refused = 0
  const latencies: Array<number> = []
  const client = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const answer = await send(router.url, item.event)
      answers++
      if (answer.status === 200) {
        latencies.push(answer.ms)
        continue
      }
      if (answer.status !== 503 || ++item.sends >= MAX_SENDS) throw new Error(`burst: event ${item.event.id} answered ${answer.status} after ${item.sends} sends`)
      refused++
      // As LiveKit: wait as told, then send it again (whichever client is free takes it).
      const again = item
      setTimeout(() => queue.push(again), answer.retryAfterS * 1000)
    }
  }
  // Clients stop when the queue is empty while refused events wait out their Retry-After: rounds go on until all are taken.
  const burst = (async () => {
    for (let round = 0; latencies.length < events.length; round++) {
      if (round > MAX_SENDS * 40) throw new Error("burst: events still unacknowledged after every round")
      await Promise.all(Array.from({ length: BURST_CLIENTS }, client))
      if (latencies.length < events.length) await Bun.sleep(50)
    }
  })()
  const [memory, health] = await Promise.all([whileRunning(burst, () => residentBytes(router.pid), SAMPLE_MS), whileRunning(burst, () => healthMs(router), 0)])
  await burst
  const seen = await farm.arrived(events.length, DRAIN_DEADLINE_MS)
  const ids = new Set(events.map((e) => e.id))
  const arrived = new Set(seen.arrivals.filter(([id]) => ids.has(id)).map(([id]) => id)).size
  await router.stop()
  const sorted = Float64Array.from(latencies).sort()
  return {
    events: events.length,
    answers,
    refusedShare: refused / answers,
    acknowledged: latencies.length,
    ackP50Ms: percentile(sorted, 0.5),
    ackP99Ms: percentile(sorted, 0.99),
    idleRssBytes,
    peakRssBytes: memory.largest,
    slowestHealthMs: health.largest,
    healthPolls: health.samples,
    arrived,
    rejectedAtFarm: seen.rejected
  }
}
