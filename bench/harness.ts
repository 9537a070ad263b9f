/** Pieces the benchmark composes: helper processes, presigned events, a bounded load loop, process readings. */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { protojsonish, signAsLiveKit, sipParticipantEvent } from "../test/support/livekit.ts"

export const TENANTS = 200

export const tenantHost = (n: number) => `calls.tenant${n}.example.com`

export interface Spawned {
  readonly url: string
  readonly pid: number
  readonly stop: () => Promise<unknown>
}

/** Starts `command` and resolves with the port of its first `{"msg":"listening"}` line; later output is discarded unread. */
const spawnListening = async (command: ReadonlyArray<string>, env: Record<string, string | undefined>, cwd?: string): Promise<Spawned> => {
  const proc = Bun.spawn([...command], { stdout: "pipe", stderr: "inherit", env: { ...process.env, ...env }, ...(cwd ? { cwd } : {}) })
  const reader = proc.stdout.getReader()
  let buffer = ""
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`${command.join(" ")} exited before listening`)
    buffer += new TextDecoder().decode(value)
    const port = /"msg":"listening"[^\n]*"port":(\d+)/.exec(buffer)?.[1]
    if (port) {
      reader.releaseLock()
      // Keep reading so a chatty child never blocks on a full pipe.
      void proc.stdout.pipeTo(new WritableStream())
      return { url: `http://127.0.0.1:${port}`, pid: proc.pid, stop: async () => (proc.kill("SIGTERM"), await proc.exited) }
    }
  }
}

/** `bun run bench/FILE` with `env`. */
export const spawnServer = (file: string, env: Record<string, string> = {}) => spawnListening(["bun", "run", `${import.meta.dir}/${file}`], env)

/** The real router process on a config document written to a fresh folder. */
export const spawnRouter = (config: (dir: string) => Record<string, unknown>) => {
  const dir = mkdtempSync(join(tmpdir(), "router-bench-"))
  const configPath = join(dir, "router.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(config(dir)))
  return spawnListening(
    ["bun", "run", join(import.meta.dir, "..", "src", "main.ts"), "--config", configPath],
    { LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "", ROUTER_ADMIN_TOKEN: "" },
    dir
  )
}

export interface Signed {
  readonly id: string
  readonly tenant: number
  readonly raw: string
  readonly authorization: string
}

/** participant_joined events, each its own call, spread round robin over the tenants; signed as LiveKit signs. */
export const presign = (count: number, label: string): Promise<Signed[]> =>
  Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const tenant = i % TENANTS
      const id = `EV_${label}_${i}`
      const raw = protojsonish(sipParticipantEvent("participant_joined", { room: `call-${label}-${i}`, xToIp: tenantHost(tenant) }, id))
      return { id, tenant, raw, authorization: await signAsLiveKit(raw) }
    })
  )

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

export const epochNow = () => performance.timeOrigin + performance.now()

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

/** Resident set size of a process, in bytes (Linux). */
export const residentBytes = async (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(await Bun.file(`/proc/${pid}/status`).text())?.[1] ?? 0) * 1024
