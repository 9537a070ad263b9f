// Scratch: profile the router's main thread under the bench's closed-loop load (not committed).
import { mkdtempSync, writeFileSync, readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { load, presign, startFarm, TENANTS, tenantHost } from "./harness.ts"
import { testConfig } from "../test/support/router.ts"

const farm = await startFarm()
const dir = mkdtempSync(join(tmpdir(), "prof-"))
const hooks = Array.from({ length: TENANTS }, (_, n) => ({ host: tenantHost(n), url: `${farm.url}/t/${n}` }))
const cfg = testConfig(dir, { hooks, delivery: { timeout: "1s", maxAttempts: 8, initialBackoff: "200ms", maxBackoff: "2s", concurrencyPerTenant: 4 } })
writeFileSync(join(dir, "r.yaml"), Bun.YAML.stringify(cfg))
const profDir = process.env.PROF_DIR ?? "/tmp/prof"
const proc = Bun.spawn(["bun", ...(process.env.PROFILE === "0" ? [] : ["--cpu-prof", `--cpu-prof-dir=${profDir}`]), join(import.meta.dir, "..", "src/main.ts"), "--config", join(dir, "r.yaml")], { stdout: "pipe", stderr: "inherit", cwd: dir, env: { ...process.env, ROUTER_ADMIN_TOKEN: "" } })
const reader = proc.stdout.getReader()
let port = 0
let buf = ""
while (!port) {
  const { value } = await reader.read()
  buf += new TextDecoder().decode(value)
  const m = /"msg":"listening".*?"port":(\d+)/.exec(buf)
  if (m) port = Number(m[1])
}
void (async () => { while (!(await reader.read()).done) {} })()
const url = `http://127.0.0.1:${port}`
console.log("router up", url)
const warm = await presign(2000, "w")
const events = await presign(Number(process.env.N ?? 20000), "r")
await load([url], warm, 64)
const t = performance.now()
const r = await load([url], events, 64)
console.log("acks/s", (events.length / (performance.now() - t)) * 1000, r.acknowledged)
await farm.arrived(events.length + warm.length, 120_000)
proc.kill("SIGTERM")
await proc.exited
await farm.stop()
console.log(readdirSync(profDir))
