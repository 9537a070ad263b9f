/**
 * `bun run bench/telemetry.ts`: what telemetry costs the hot path. The router
 * on its durable SQLite store, with telemetry off and with every span and
 * metric exported by OTLP (http/protobuf, to a local sink that reads and drops
 * them), each taking BENCH_EVENTS LiveKit-signed events from 64 keep-alive
 * clients while /metrics is scraped every second, as Prometheus would. With
 * BENCH_BEFORE set to another checkout of the router, its build runs the same
 * load first in each round, as the baseline. The variants alternate for
 * BENCH_ROUNDS rounds in one run, so the ratios compare like with like; then
 * each is run once more with ROUTER_COUNT_EFFECT_STEPS=1 for its Effect steps
 * per event. The medians and ratios are printed as JSON.
 */
import { join } from "node:path"
import { testConfig } from "../test/support/router.ts"
import { load, presign, spawnRouter, startFarm, TENANTS, tenantHost, type Farm, type RouterOptions } from "./harness.ts"

const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const STEP_EVENTS = Math.min(EVENTS, 2_000)
const WARMUP = Math.min(2_000, EVENTS)
const CONCURRENCY = 64
const BEFORE = process.env.BENCH_BEFORE

/** An OTLP/HTTP collector that reads every export and keeps nothing. */
const sink = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: async (request) => (await request.arrayBuffer(), new Response(null, { status: 200 })) })

interface Variant {
  readonly config: Record<string, unknown>
  readonly options: RouterOptions
}

const VARIANTS: Record<string, Variant> = {
  ...(BEFORE ? { before: { config: {}, options: { main: join(BEFORE, "src", "main.ts") } } } : {}),
  off: { config: {}, options: {} },
  otlp: { config: { telemetry: { otlp: { endpoint: `http://127.0.0.1:${sink.port}`, protocol: "http/protobuf" } } }, options: {} }
}

const hooksFor = (farm: Farm) => Array.from({ length: TENANTS }, (_, n) => ({ host: tenantHost(n), url: `${farm.url}/t/${n}` }))

/** GET /metrics once a second until `stop` settles. */
const scrape = async (url: string, stop: Promise<unknown>) => {
  let done = false
  void stop.finally(() => (done = true))
  while (!done) {
    await (await fetch(`${url}/metrics`)).text()
    await Promise.race([Bun.sleep(1_000), stop])
  }
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const farm = await startFarm()
const spawn = (variant: Variant, env: Record<string, string> = {}, capture: ReadonlyArray<string> = []) =>
  spawnRouter((dir) => testConfig(dir, { hooks: hooksFor(farm), ...variant.config }), { ...variant.options, env, capture })

/** One measured load: acks per second, with the deliveries it caused drained before the router stops. */
const measure = async (variant: Variant, label: string) => {
  const router = await spawn(variant)
  const warmup = await presign(WARMUP, `warm-${label}`)
  const events = await presign(EVENTS, `run-${label}`)
  await load([router.url], warmup, CONCURRENCY)
  const run = load([router.url], events, CONCURRENCY)
  const [result] = await Promise.all([run, scrape(router.url, run)])
  await farm.arrived(WARMUP + EVENTS, 120_000)
  await farm.stats(true)
  await router.stop()
  return result.perSecond
}

/** Effect steps over the process's life (start-up included) ÷ events acknowledged. */
const stepsPerEvent = async (variant: Variant, label: string) => {
  const router = await spawn(variant, { ROUTER_COUNT_EFFECT_STEPS: "1" }, ["effect steps"])
  const run = await load([router.url], await presign(STEP_EVENTS, `steps-${label}`), CONCURRENCY)
  await farm.arrived(STEP_EVENTS, 120_000)
  await farm.stats(true)
  await router.stop()
  const steps = router.captured("effect steps")?.steps
  return typeof steps === "number" ? Math.round((steps / run.acknowledged) * 10) / 10 : null
}

const perSecond: Record<string, Array<number>> = Object.fromEntries(Object.keys(VARIANTS).map((name) => [name, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, variant] of Object.entries(VARIANTS)) perSecond[name]!.push(await measure(variant, `${name}-${round}`))
}
const steps: Record<string, number | null> = {}
for (const [name, variant] of Object.entries(VARIANTS)) steps[name] = await stepsPerEvent(variant, name)

const medians = Object.fromEntries(Object.entries(perSecond).map(([name, runs]) => [name, Math.round(median(runs))]))
const ratio = (a: string, b: string) => (medians[a] && medians[b] ? Math.round((medians[a]! / medians[b]!) * 100) / 100 : null)
console.log(
  JSON.stringify(
    {
      events: EVENTS,
      rounds: ROUNDS,
      acksPerSecond: Object.fromEntries(Object.entries(perSecond).map(([name, runs]) => [name, runs.map(Math.round)])),
      medians,
      offToBefore: ratio("off", "before"),
      otlpToOff: ratio("otlp", "off"),
      effectStepsPerEvent: steps
    },
    null,
    2
  )
)
await farm.stop()
sink.stop(true)
