import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { API_KEY, API_SECRET, protojsonish, signAsLiveKit } from "./livekit.ts"

export const DEFAULT_SECRET = "whsec_" + Buffer.alloc(32, 7).toString("base64")
export const ADMIN_TOKEN = "admin-token-for-tests-0123456789"
const ROOT = join(import.meta.dir, "..", "..")

/** A config for tests: loopback, port 0, fast retries, a fresh database. Deep-merged with `overrides`. */
export const testConfig = (dir: string, overrides: Record<string, unknown> = {}) => {
  const base: Record<string, any> = {
    server: { host: "127.0.0.1", port: 0 },
    livekit: { apiKey: API_KEY, apiSecret: API_SECRET },
    admin: { tokens: [ADMIN_TOKEN] },
    signing: { secret: DEFAULT_SECRET },
    // Tenants in tests listen on loopback; the SSRF tests turn this off.
    security: { allowPrivateTargets: true },
    store: { path: join(dir, "router.db") },
    delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4 },
    hooks: []
  }
  for (const [key, value] of Object.entries(overrides)) {
    base[key] = value && typeof value === "object" && !Array.isArray(value) ? { ...base[key], ...value } : value
  }
  return base
}

export interface RunningRouter {
  readonly url: string
  readonly dir: string
  readonly configPath: string
  /** Every JSON log line the process printed so far. */
  readonly logs: Array<Record<string, any>>
  readonly stderr: () => string
  readonly process: Subprocess
  /** Posts a LiveKit-signed event (raw bytes exactly as given). */
  readonly post: (event: unknown, init?: { raw?: string; authorization?: string | null }) => Promise<Response>
  readonly admin: (method: string, path: string, body?: unknown, token?: string) => Promise<Response>
  readonly metric: (name: string, labels?: Record<string, string>) => Promise<number>
  readonly stop: (signal?: NodeJS.Signals) => Promise<number>
}

/**
 * Starts the real router process on a random port with a YAML config written from `config`.
 * `env` is applied last, e.g. to set ROUTER_ADMIN_TOKEN (blank by default so the host's never leaks in).
 */
export const startRouter = async (
  config: Record<string, unknown> | ((dir: string) => Record<string, unknown>) = {},
  existingDir?: string,
  env: Record<string, string> = {}
): Promise<RunningRouter> => {
  const dir = existingDir ?? mkdtempSync(join(tmpdir(), "router-test-"))
  const configPath = join(dir, "router.yaml")
  const doc = typeof config === "function" ? config(dir) : testConfig(dir, config)
  writeFileSync(configPath, Bun.YAML.stringify(doc))
  const proc = Bun.spawn(["bun", "run", join(ROOT, "src/main.ts"), "--config", configPath], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "", ROUTER_ADMIN_TOKEN: "", ...env }
  })
  const logs: Array<Record<string, any>> = []
  let errText = ""
  void (async () => {
    for await (const chunk of proc.stderr) errText += new TextDecoder().decode(chunk)
  })()
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`router did not start: ${errText}`)), 15_000)
    void (async () => {
      let buffer = ""
      for await (const chunk of proc.stdout) {
        buffer += new TextDecoder().decode(chunk)
        let newline: number
        while ((newline = buffer.indexOf("\n")) !== -1) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          try {
            const record = JSON.parse(line)
            logs.push(record)
            if (record.msg === "listening") {
              clearTimeout(timer)
              resolve(record.port)
            }
          } catch {
            logs.push({ msg: line })
          }
        }
      }
      clearTimeout(timer)
      reject(new Error(`router exited before listening: ${errText}`))
    })()
  })
  const url = `http://127.0.0.1:${port}`

  const post: RunningRouter["post"] = async (event, init = {}) => {
    const raw = init.raw ?? protojsonish(event)
    const authorization = init.authorization === undefined ? await signAsLiveKit(raw) : init.authorization
    return fetch(`${url}/livekit/webhook`, {
      method: "POST",
      headers: { "content-type": "application/webhook+json", ...(authorization === null ? {} : { authorization }) },
      body: raw
    })
  }
  const admin: RunningRouter["admin"] = (method, path, body, token = ADMIN_TOKEN) =>
    fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
    })
  // A router whose /metrics needs admin.metricsToken is scraped with it.
  const metricsToken: unknown = doc.admin && typeof doc.admin === "object" ? (doc.admin as Record<string, unknown>).metricsToken : undefined
  const metric: RunningRouter["metric"] = async (name, labels = {}) => {
    const text = await (await fetch(`${url}/metrics`, typeof metricsToken === "string" ? { headers: { authorization: `Bearer ${metricsToken}` } } : {})).text()
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
    const line = text
      .split("\n")
      .find((l) => (l.startsWith(name + "{") || l.startsWith(name + " ")) && wanted.every((w) => l.includes(w)))
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0
  }
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    proc.kill(signal)
    const code = await proc.exited
    if (!existingDir && signal !== "SIGKILL") rmSync(dir, { recursive: true, force: true })
    return code
  }
  return { url, dir, configPath, logs, stderr: () => errText, process: proc, post, admin, metric, stop }
}

/** Polls until `check` is true, for effects with no event to wait on (log lines, metrics). */
export const eventually = async (check: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = "condition") => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await Bun.sleep(20)
  }
  throw new Error(`timed out waiting for ${what}`)
}
