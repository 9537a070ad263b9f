import { expect, test } from "bun:test"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { protojsonish, roomEvent, signAsLiveKit } from "./support/livekit.ts"
import { testConfig } from "./support/router.ts"

const ROOT = join(import.meta.dir, "..")

test("bun build --compile makes a single binary that runs the router without Bun or the sources", async () => {
  const dir = mkdtempSync(join(tmpdir(), "router-binary-"))
  const binary = join(dir, "sip-tenant-router")
  // The store's writer thread is a second entry point, as in package.json's build script.
  const build = Bun.spawnSync(["bun", "build", join(ROOT, "src/main.ts"), join(ROOT, "src/store/sqlite/StoreWorker.ts"), "--compile", "--minify", "--outfile", binary], {
    stderr: "pipe",
    stdout: "pipe"
  })
  expect(build.exitCode, build.stderr.toString()).toBe(0)

  const configPath = join(dir, "router.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(testConfig(dir)))
  // Run from a directory with no sources and no node_modules.
  const proc = Bun.spawn([binary, "--config", configPath], { cwd: dir, stdout: "pipe", stderr: "pipe" })
  try {
    const reader = proc.stdout.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    const { msg, port } = JSON.parse(first.split("\n")[0]!)
    expect(msg).toBe("listening")
    expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ status: "ok" })
    // An acknowledged webhook went through the embedded writer thread.
    const raw = protojsonish(roomEvent("room_started", "binary-room"))
    const response = await fetch(`http://127.0.0.1:${port}/livekit/webhook`, { method: "POST", headers: { authorization: await signAsLiveKit(raw) }, body: raw })
    expect(response.status).toBe(200)
  } finally {
    proc.kill("SIGTERM")
    expect(await proc.exited).toBe(0)
  }
})
