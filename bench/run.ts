/**
 * `bun run bench`: throughput as ratios against baselines measured in the
 * same process tree, so the figures travel between machines.
 *
 * 1. Ingest: LiveKit-signed events acknowledged per second by the real router
 *    process (verify, resolve, durable SQLite write, enqueue) against a bare
 *    Bun server that only reads the body. Deliveries to a local tenant run
 *    meanwhile, and the time until all of them arrived is reported.
 * 2. Lookup: HookTable resolutions per second over 100 000 hooks against a
 *    plain Map.get of the same hosts.
 *
 * Every loop is bounded by a fixed count.
 */
import { compileTable, matchHost } from "../src/HookTable.ts"
import type { ActiveHook, HostPattern } from "../src/Domain/Hook.ts"
import { protojsonish, signAsLiveKit, sipParticipantEvent } from "../test/support/livekit.ts"
import { startReceiver } from "../test/support/receiver.ts"
import { DEFAULT_SECRET, startRouter, testConfig } from "../test/support/router.ts"

const EVENTS = Number(process.env.BENCH_EVENTS ?? 4000)
const CONCURRENCY = 32
const LOOKUPS = 1_000_000

const presign = async (count: number) =>
  Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const raw = protojsonish(sipParticipantEvent("participant_joined", { room: `bench-${i}`, xToIp: "calls.drsmith.com" }))
      return { raw, authorization: await signAsLiveKit(raw) }
    })
  )

type Signed = Awaited<ReturnType<typeof presign>>

/** Posts every request with a fixed number in flight; returns acknowledged requests per second. */
const load = async (url: string, requests: ReadonlyArray<{ raw: string; authorization: string }>) => {
  let next = 0
  let acknowledged = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const { raw, authorization } = requests[next++]!
        const response = await fetch(url, { method: "POST", headers: { authorization }, body: raw })
        await response.arrayBuffer()
        if (response.status === 200) acknowledged++
      }
    })
  )
  return { perSecond: (acknowledged / (performance.now() - started)) * 1000, acknowledged, started }
}

const startBaseline = async () => {
  const proc = Bun.spawn(["bun", "run", `${import.meta.dir}/baseline-server.ts`], { stdout: "pipe" })
  const reader = proc.stdout.getReader()
  const { port } = JSON.parse(new TextDecoder().decode((await reader.read()).value))
  return { url: `http://127.0.0.1:${port}/livekit/webhook`, stop: () => proc.kill() }
}

/** The real router process on `storePath`; events go to a local tenant that verifies each signature. */
const routerRun = async (storePath: string | undefined, warmup: Signed, events: Signed) => {
  const tenant = startReceiver(DEFAULT_SECRET)
  const router = await startRouter((dir) =>
    testConfig(dir, {
      security: { allowPrivateTargets: true },
      ...(storePath ? { store: { path: storePath } } : {}),
      hooks: [{ host: "calls.drsmith.com", url: `${tenant.url}/voice` }],
      delivery: { timeout: "5s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "1s", concurrencyPerTenant: 16 }
    })
  )
  await load(`${router.url}/livekit/webhook`, warmup)
  await tenant.waitFor((r) => r.length >= warmup.length, 60_000)
  const measured = await load(`${router.url}/livekit/webhook`, events)
  await tenant.waitFor((r) => r.length >= warmup.length + EVENTS, 120_000)
  const drainedMs = performance.now() - measured.started
  await router.stop()
  tenant.stop()
  return { measured, drainedMs }
}

const ingest = async () => {
  const warmup = await presign(200)
  const events = await presign(EVENTS)
  const baseline = await startBaseline()
  await load(baseline.url, warmup)
  const floor = await load(baseline.url, events)
  baseline.stop()
  // Each run has its own database, so the same events are new to each.
  return { floor, durable: await routerRun(undefined, warmup, events), volatile: await routerRun(":memory:", warmup, events) }
}

const lookup = () => {
  const hooks: ActiveHook[] = Array.from({ length: 100_000 }, (_, i) => ({
    host: (i % 10 === 0 ? `*.tenant${i}.example.com` : `calls.tenant${i}.example.com`) as HostPattern,
    url: `https://tenant${i}.example.com/voice`,
    source: "file"
  }))
  const table = compileTable(hooks)
  const plain = new Map<string, ActiveHook>(hooks.map((h) => [h.host, h]))
  const queries = Array.from({ length: 1000 }, (_, i) => {
    const n = (i * 7919) % 100_000
    return n % 10 === 0 ? `calls.tenant${n}.example.com` : `calls.tenant${n}.example.com`
  })
  const time = (f: (host: string) => unknown) => {
    let found = 0
    const started = performance.now()
    for (let i = 0; i < LOOKUPS; i++) if (f(queries[i % queries.length]!)) found++
    return { perSecond: (LOOKUPS / (performance.now() - started)) * 1000, found }
  }
  time((h) => matchHost(table, h)) // warm-up
  const map = time((h) => plain.get(h))
  const table100k = time((h) => matchHost(table, h))
  return { map, table100k }
}

const round = (n: number) => Math.round(n).toLocaleString("en-US")
const { floor, durable, volatile } = await ingest()
const { map, table100k } = lookup()
console.log(`ingest (${EVENTS} signed events, ${CONCURRENCY} in flight)`)
console.log(`  baseline bare Bun server   ${round(floor.perSecond)} acks/s`)
for (const [label, run] of [["router, durable write     ", durable], ["router, in-memory store   ", volatile]] as const) {
  console.log(`  ${label} ${round(run.measured.perSecond)} acks/s   ratio ${(run.measured.perSecond / floor.perSecond).toFixed(3)}` +
    `   (all delivered ${round(run.drainedMs)} ms after the first post)`)
}
console.log(`  cost of durability: the durable router acknowledges ${(durable.measured.perSecond / volatile.measured.perSecond).toFixed(3)}x as many events per second as the same router with the write disabled (SQLite in memory: no disk, no fsync)`)
console.log(`lookup (100 000 hooks, 10 % wildcards, ${round(LOOKUPS)} lookups)`)
console.log(`  baseline Map.get           ${round(map.perSecond)} lookups/s`)
console.log(`  HookTable matchHost        ${round(table100k.perSecond)} lookups/s   ratio ${(table100k.perSecond / map.perSecond).toFixed(3)}`)
if (durable.measured.acknowledged !== EVENTS || volatile.measured.acknowledged !== EVENTS || table100k.found !== LOOKUPS) {
  console.error("benchmark saw failures: some events were not acknowledged or some hosts not found")
  process.exit(1)
}
