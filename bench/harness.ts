/** Pieces the benchmark composes: helper processes, the tenant farm, presigned events, a bounded load loop, process readings. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { protojsonish, signAsLiveKit, sipParticipantEvent } from "../test/support/livekit.ts"
import { DEFAULT_SECRET } from "../test/support/router.ts"

export const TENANTS = 200

export const tenantHost = (n: number) => `calls.tenant${n}.example.com`

export const epochNow = () => performance.timeOrigin + performance.now()

const LISTEN_DEADLINE_MS = 60_000
const STOP_DEADLINE_MS = 30_000

// Whatever happens to the benchmark, it leaves no helper process behind.
const live = new Set<Subprocess>()
process.on("exit", () => {
  for (const proc of live) proc.kill("SIGKILL")
})

export interface Spawned {
  readonly url: string
  readonly pid: number
  /** Epoch ms just before the process was spawned. */
  readonly spawnedAt: number
  /** Sends `signal` (SIGTERM by default; SIGKILL after a deadline) and resolves with the exit code or signal once it exited. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | string | null>
  /** The last JSON line on stdout whose `msg` is `msg`, among the messages asked for with `capture`. */
  readonly captured: (msg: string) => Record<string, unknown> | undefined
}

/**
 * Starts `command` and resolves with the port of its first `{"msg":"listening"}` line.
 * Later output is read (so a chatty child never blocks on a full pipe) and discarded,
 * except lines whose `msg` is in `capture`.
 */
const spawnListening = async (
  command: ReadonlyArray<string>,
  env: Record<string, string | undefined>,
  cwd?: string,
  capture: ReadonlyArray<string> = []
): Promise<Spawned> => {
  const spawnedAt = epochNow()
  const proc = Bun.spawn([...command], { stdout: "pipe", stderr: "inherit", env: { ...process.env, ...env }, ...(cwd ? { cwd } : {}) })
  live.add(proc)
  void proc.exited.then(() => live.delete(proc))
  const tooLate = setTimeout(() => proc.kill("SIGKILL"), LISTEN_DEADLINE_MS)
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  const lines = new Map<string, Record<string, unknown>>()
  let buffer = ""
  const scan = (complete: boolean) => {
    const cut = complete ? buffer.length : buffer.lastIndexOf("\n") + 1
    for (const line of buffer.slice(0, cut).split("\n")) {
      const msg = capture.find((m) => line.includes(`"msg":"${m}"`))
      if (msg === undefined) continue
      try {
        lines.set(msg, JSON.parse(line))
      } catch {
        // not a JSON line after all
      }
    }
    buffer = buffer.slice(cut)
  }
  let port: string | undefined
  while (port === undefined) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`${command.join(" ")} exited before listening`)
    buffer += decoder.decode(value, { stream: true })
    port = /"msg":"listening"[^\n]*"port":(\d+)/.exec(buffer)?.[1]
  }
  clearTimeout(tooLate)
  scan(false)
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return scan(true)
      if (capture.length > 0) (buffer += decoder.decode(value, { stream: true })), scan(false)
    }
  })().catch(() => undefined)
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    proc.kill(signal)
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(STOP_DEADLINE_MS).then(() => false)])
    if (!exited) proc.kill("SIGKILL"), await proc.exited
    // The last lines (a report printed on SIGTERM) may still be in the pipe.
    await Promise.race([reading, Bun.sleep(2_000)])
    return proc.exitCode ?? proc.signalCode
  }
  return { url: `http://127.0.0.1:${port}`, pid: proc.pid, spawnedAt, stop, captured: (msg) => lines.get(msg) }
}

/** `bun run bench/FILE` with `env`. */
export const spawnServer = (file: string, env: Record<string, string> = {}, capture: ReadonlyArray<string> = []) =>
  spawnListening(["bun", "run", `${import.meta.dir}/${file}`], env, undefined, capture)

const ROUTER_MAIN = join(import.meta.dir, "..", "src", "main.ts")

export interface RouterOptions {
  /** Reuse this folder (and the store inside it) instead of a fresh one: a restart on the same data. */
  readonly dir?: string
  readonly env?: Record<string, string>
  readonly capture?: ReadonlyArray<string>
  /** Another checkout's src/main.ts, to measure an earlier build side by side. */
  readonly main?: string
  /** A compiled router (`bun run build`'s output) to run instead of `bun run` on a main.ts. */
  readonly binary?: string
}

export type RouterProcess = Spawned & { readonly dir: string }

/** The real router process on a config document written to a fresh folder (or `options.dir`). */
export const spawnRouter = async (config: (dir: string) => Record<string, unknown>, options: RouterOptions = {}): Promise<RouterProcess> => {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "router-bench-"))
  const configPath = join(dir, "router.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(config(dir)))
  const command = options.binary ? [options.binary] : ["bun", "run", options.main ?? ROUTER_MAIN]
  const spawned = await spawnListening(
    [...command, "--config", configPath],
    { LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "", ROUTER_ADMIN_TOKEN: "", ...options.env },
    dir,
    options.capture
  )
  return { ...spawned, dir }
}

/** Whether `pid` is the router itself (`bun run` runs the script in its own process) and not a wrapper with children. */
export const isRouterProcess = (pid: number): boolean => {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    const children = readdirSync(`/proc/${pid}/task`).flatMap((task) => readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim().split(/\s+/).filter(Boolean))
    return argv.includes(ROUTER_MAIN) && children.length === 0
  } catch {
    return false
  }
}

/** Milliseconds from the spawn to the first 200 of GET /readyz, polled every `everyMs`; NaN past the deadline. */
export const readyAfter = async (target: Spawned, deadlineMs = 60_000, everyMs = 10): Promise<number> => {
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    const ready = await fetch(`${target.url}/readyz`, { signal: AbortSignal.timeout(1_000) })
      .then(async (response) => (await response.arrayBuffer(), response.status === 200))
      .catch(() => false)
    if (ready) return epochNow() - target.spawnedAt
    await Bun.sleep(everyMs)
  }
  return Number.NaN
}

// ------------------------------------------------------------------ the tenant farm

export type Arrival = [id: string, tenant: number, at: number]

export interface Arrivals {
  readonly arrivals: ReadonlyArray<Arrival>
  readonly rejected: number
}

export const startFarm = async (sleepy: ReadonlyArray<number> = []) => {
  const farm = await spawnServer("tenant-farm.ts", { SECRET: DEFAULT_SECRET, SLEEPY: sleepy.join(","), SLEEP_MS: "3000" })
  const get = async <A>(path: string, method = "GET") => (await fetch(`${farm.url}${path}`, { method, signal: AbortSignal.timeout(30_000) })).json() as Promise<A>
  /** Every arrival so far (and, with `reset`, forgets them). */
  const stats = (reset = false) => get<Arrivals>("/stats", reset ? "DELETE" : "GET")
  /** Arrivals from index `from` on, in arrival order. */
  const since = (from: number) => get<Arrivals>(`/stats?from=${from}`)
  const count = () => get<{ arrivals: number; rejected: number }>("/count")
  /** Resolves once `wanted` verified requests arrived, or after the deadline with what did. */
  const arrived = async (wanted: number, deadlineMs: number) => {
    const deadline = Date.now() + deadlineMs
    while ((await count()).arrivals < wanted && Date.now() < deadline) await Bun.sleep(100)
    return stats()
  }
  /** A tenant that is down answers 503 at once, without verifying or recording. */
  const setDown = (tenant: number, down: boolean) => get(`/${down ? "down" : "up"}/${tenant}`, "POST")
  return { ...farm, stats, since, count, arrived, setDown }
}
export type Farm = Awaited<ReturnType<typeof startFarm>>

// ------------------------------------------------------------------ events and load

export interface Signed {
  readonly id: string
  readonly tenant: number
  readonly raw: string
  readonly authorization: string
}

/** Event `i` of `label`: a participant_joined of its own call for `tenant`, signed as LiveKit signs. */
export const signEvent = async (label: string, i: number, tenant = i % TENANTS): Promise<Signed> => {
  const id = `EV_${label}_${i}`
  const raw = protojsonish(sipParticipantEvent("participant_joined", { room: `call-${label}-${i}`, xToIp: tenantHost(tenant) }, id))
  return { id, tenant, raw, authorization: await signAsLiveKit(raw) }
}

/** `count` events spread round robin over the tenants. */
export const presign = (count: number, label: string): Promise<Signed[]> => Promise.all(Array.from({ length: count }, (_, i) => signEvent(label, i)))

export interface LoadResult {
  readonly perSecond: number
  readonly acknowledged: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Epoch ms (sub-ms precision) each request was sent, by event id. */
  readonly sentAt: ReadonlyMap<string, number>
  readonly startedAt: number
}

export const percentile = (sorted: ArrayLike<number>, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** Posts every request once with `concurrency` keep-alive clients, round robin over `urls`; bounded by the request count. */
export const load = async (urls: ReadonlyArray<string>, requests: ReadonlyArray<Signed>, concurrency: number): Promise<LoadResult> => {
  let next = 0
  let acknowledged = 0
  const latencies = new Float64Array(requests.length)
  const sentAt = new Map<string, number>()
  const startedAt = epochNow()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests.length) {
        const i = next++
        const { id, raw, authorization } = requests[i]!
        const sent = epochNow()
        sentAt.set(id, sent)
        const response = await fetch(`${urls[i % urls.length]}/livekit/webhook`, {
          method: "POST",
          headers: { authorization, "content-type": "application/webhook+json" },
          body: raw
        })
        await response.arrayBuffer()
        latencies[i] = epochNow() - sent
        if (response.status === 200) acknowledged++
      }
    })
  )
  const elapsed = epochNow() - startedAt
  latencies.sort()
  return { perSecond: (acknowledged / elapsed) * 1000, acknowledged, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), sentAt, startedAt }
}

/** One webhook; true when acknowledged with 200. Never throws. */
export const post = async (url: string, event: Signed, timeoutMs = 30_000): Promise<boolean> => {
  try {
    const response = await fetch(`${url}/livekit/webhook`, {
      method: "POST",
      headers: { authorization: event.authorization, "content-type": "application/webhook+json" },
      body: event.raw,
      signal: AbortSignal.timeout(timeoutMs)
    })
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}

export interface OpenLoopResult {
  readonly acknowledged: number
  /** Epoch ms each request was due by the schedule, by event id: latencies count from here, so a late send counts against the server. */
  readonly dueAt: ReadonlyMap<string, number>
  /** From the due time to the 200, over the acknowledged requests. */
  readonly ackP50Ms: number
  readonly ackP99Ms: number
  /** How late the load generator itself sent, p99: high when the machine, not only the server, fell behind. */
  readonly sendLagP99Ms: number
}

/**
 * An open loop: request i is sent `i × intervalMs` after the start whether or
 * not earlier ones were answered, as LiveKit sends. Bounded by the request
 * count, and every request by post's timeout.
 */
export const openLoop = async (url: string, requests: ReadonlyArray<Signed>, intervalMs: number): Promise<OpenLoopResult> => {
  const startedAt = epochNow() + intervalMs
  const dueAt = new Map<string, number>()
  const lags = new Float64Array(requests.length)
  const answers: Array<Promise<number>> = []
  for (let i = 0; i < requests.length; i++) {
    const due = startedAt + i * intervalMs
    // Bun.sleep may wake a fraction of a millisecond early.
    for (let wait = due - epochNow(); wait > 0; wait = due - epochNow()) await Bun.sleep(wait)
    lags[i] = epochNow() - due
    dueAt.set(requests[i]!.id, due)
    answers.push(post(url, requests[i]!).then((ok) => (ok ? epochNow() - due : Number.NaN)))
  }
  const latencies = Float64Array.from((await Promise.all(answers)).filter((l) => !Number.isNaN(l))).sort()
  lags.sort()
  return { acknowledged: latencies.length, dueAt, ackP50Ms: percentile(latencies, 0.5), ackP99Ms: percentile(latencies, 0.99), sendLagP99Ms: percentile(lags, 0.99) }
}

/** Resident set size of a process, in bytes (Linux). */
export const residentBytes = async (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(await Bun.file(`/proc/${pid}/status`).text())?.[1] ?? 0) * 1024
