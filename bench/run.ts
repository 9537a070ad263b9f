/**
 * `bun run bench`: figures as ratios against baselines measured in the same
 * process tree, so they travel between machines. Every loop is bounded.
 *
 * 1. Ingest: LiveKit-signed events acknowledged per second by the real router
 *    process (verify, resolve, durable SQLite write, enqueue) against a bare
 *    Bun server that only reads the body, and against the same router with the
 *    write disabled (SQLite in memory), so the cost of durability is a ratio.
 *    Deliveries to a local tenant run meanwhile; the time until all arrived is shown.
 * 2. Lookup: hook table resolutions per second at 100 000 hooks against a
 *    plain Map.get, and against the same table at 100 hooks.
 * 3. A 100 000-hook config file: the router's resident memory next to one with
 *    no hooks, the cost of decoding and compiling the file, and how long an
 *    edit takes to be in force in the running router.
 */
import { writeFileSync } from "node:fs"
import { Either } from "effect"
import { parseConfigText } from "../src/Domain/Config.ts"
import type { ActiveHook, HostPattern } from "../src/Domain/Hook.ts"
import { compileTable, matchHost } from "../src/HookTable.ts"
import { protojsonish, signAsLiveKit, sipParticipantEvent } from "../test/support/livekit.ts"
import { startReceiver } from "../test/support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "../test/support/router.ts"

const EVENTS = Number(process.env.BENCH_EVENTS ?? 4000)
const CONCURRENCY = 32
const LOOKUPS = 1_000_000
const HOOKS = 100_000

const round = (n: number) => Math.round(n).toLocaleString("en-US")
const ratio = (a: number, b: number) => (a / b).toFixed(3)

// ------------------------------------------------------------------ ingest

const presign = async (count: number) =>
  Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const raw = protojsonish(sipParticipantEvent("participant_joined", { room: `bench-${i}`, xToIp: "calls.drsmith.com" }))
      return { raw, authorization: await signAsLiveKit(raw) }
    })
  )

type Signed = Awaited<ReturnType<typeof presign>>

/** Posts every request with a fixed number in flight; returns acknowledged requests per second. */
const load = async (url: string, requests: Signed) => {
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
      ...(storePath ? { store: { path: storePath } } : {}),
      hooks: [{ host: "calls.drsmith.com", url: `${tenant.url}/voice` }],
      delivery: { timeout: "5s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "1s", concurrencyPerTenant: 16 }
    })
  )
  await load(`${router.url}/livekit/webhook`, warmup)
  await tenant.waitFor((r) => r.length >= warmup.length, 60_000)
  const measured = await load(`${router.url}/livekit/webhook`, events)
  await tenant.waitFor((r) => r.length >= warmup.length + events.length, 120_000)
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

// ------------------------------------------------------------------ lookup

/** One hook in ten is a wildcard, as a platform with a few multi-site tenants might have. */
const benchHooks = (count: number): Array<{ host: string; url: string }> =>
  Array.from({ length: count }, (_, i) => ({
    host: i % 10 === 0 ? `*.tenant${i}.example.com` : `calls.tenant${i}.example.com`,
    url: `https://tenant${i}.example.com/voice`
  }))

const lookup = () => {
  const tableOf = (count: number) => compileTable(benchHooks(count).map((h): ActiveHook => ({ ...h, host: h.host as HostPattern, source: "file" })))
  const large = tableOf(HOOKS)
  const small = tableOf(100)
  const plain = new Map(benchHooks(HOOKS).map((h) => [h.host, h]))
  // Exact hits, wildcard hits (the query is a subdomain of a wildcard hook) and misses that walk every label.
  const queriesFor = (count: number) =>
    Array.from({ length: 1000 }, (_, i) => {
      const n = (i * 7919) % count
      return i % 20 === 0 ? `calls.nobody${i}.example.org` : `calls.tenant${n}.example.com`
    })
  const time = (queries: ReadonlyArray<string>, find: (host: string) => unknown) => {
    let found = 0
    const started = performance.now()
    for (let i = 0; i < LOOKUPS; i++) if (find(queries[i % queries.length]!)) found++
    return { perSecond: (LOOKUPS / (performance.now() - started)) * 1000, found }
  }
  const largeQueries = queriesFor(HOOKS)
  time(largeQueries, (h) => matchHost(large, h)) // warm-up
  return {
    map: time(largeQueries, (h) => plain.get(h)),
    large: time(largeQueries, (h) => matchHost(large, h)),
    small: time(queriesFor(100), (h) => matchHost(small, h))
  }
}

// ------------------------------------------------------------------ a large config file

const residentBytes = (router: RunningRouter) => {
  const status = Bun.file(`/proc/${router.process.pid}/status`).text()
  return status.then((text) => Number(/VmRSS:\s+(\d+) kB/.exec(text)?.[1] ?? 0) * 1024)
}

const largeFile = async () => {
  const empty = await startRouter({})
  await Bun.sleep(500)
  const emptyRss = await residentBytes(empty)
  await empty.stop()

  const hooks = benchHooks(HOOKS)
  const startedAt = performance.now()
  const router = await startRouter((dir) => testConfig(dir, { hooks }))
  const startMs = performance.now() - startedAt
  await Bun.sleep(500)
  const rss = await residentBytes(router)

  // In-process: what every reload of such a file costs (YAML, schema decode with every check, table).
  const text = await Bun.file(router.configPath).text()
  const decodeStarted = performance.now()
  const config = Either.getOrThrow(parseConfigText(text))
  compileTable(config.hooks.map((h): ActiveHook => ({ ...h, source: "file" })))
  const decodeMs = performance.now() - decodeStarted

  // In the running router: an edit to one hook, from the write until the API shows it.
  const host = "calls.tenant1.example.com"
  const edited = text.replace("https://tenant1.example.com/voice", "https://tenant1.example.com/edited")
  const editStarted = performance.now()
  writeFileSync(router.configPath, edited)
  await eventually(
    async () => ((await (await router.admin("GET", `/v1/hooks/${host}`)).json()) as { url?: string }).url?.endsWith("/edited") === true,
    60_000,
    "the edit in force"
  )
  const reloadMs = performance.now() - editStarted
  await router.stop()
  return { emptyRss, rss, startMs, decodeMs, reloadMs, fileBytes: Buffer.byteLength(text) }
}

// ------------------------------------------------------------------ report

const { floor, durable, volatile } = await ingest()
console.log(`ingest (${EVENTS} signed events, ${CONCURRENCY} in flight)`)
console.log(`  baseline bare Bun server   ${round(floor.perSecond)} acks/s`)
for (const [label, run] of [["router, durable write     ", durable], ["router, in-memory store   ", volatile]] as const) {
  console.log(`  ${label} ${round(run.measured.perSecond)} acks/s   ratio ${ratio(run.measured.perSecond, floor.perSecond)}` +
    `   (all delivered ${round(run.drainedMs)} ms after the first post)`)
}
console.log(`  cost of durability: durable / write disabled = ${ratio(durable.measured.perSecond, volatile.measured.perSecond)}`)

const { map, large, small } = lookup()
console.log(`lookup (${round(LOOKUPS)} lookups: exact, wildcard and missing hosts)`)
console.log(`  baseline Map.get, 100 000 hooks      ${round(map.perSecond)} lookups/s`)
console.log(`  HookTable matchHost, 100 hooks       ${round(small.perSecond)} lookups/s`)
console.log(`  HookTable matchHost, 100 000 hooks   ${round(large.perSecond)} lookups/s   ratio to Map.get ${ratio(large.perSecond, map.perSecond)}, to 100 hooks ${ratio(large.perSecond, small.perSecond)}`)

const file = await largeFile()
const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(0)} MiB`
console.log(`a config file with ${round(HOOKS)} hooks (${mb(file.fileBytes)} of YAML)`)
console.log(`  router resident memory     ${mb(file.rss)} (no hooks: ${mb(file.emptyRss)}, ratio ${ratio(file.rss, file.emptyRss)})`)
console.log(`  start until listening      ${round(file.startMs)} ms`)
console.log(`  decode and compile         ${round(file.decodeMs)} ms (what each reload costs)`)
console.log(`  one edit in force after    ${round(file.reloadMs)} ms (from the write, in the running router)`)

if (durable.measured.acknowledged !== EVENTS || volatile.measured.acknowledged !== EVENTS || large.found !== (LOOKUPS * 19) / 20) {
  console.error("benchmark saw failures: some events were not acknowledged or some hosts not found")
  process.exit(1)
}
