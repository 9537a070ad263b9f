import { expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { protojsonish, roomEvent, signAsLiveKit } from "./support/livekit.ts"
import { buildBinary, untilListening } from "./support/binary.ts"
import { testConfig } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

test("bun build --compile makes a single binary that runs the router without Bun or the sources", async () => {
  const { dir, binary } = buildBinary("binary")

  const configPath = join(dir, "router.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(testConfig(dir)))
  // Run from a directory with no sources and no node_modules.
  const proc = Bun.spawn([binary, "--config", configPath], { cwd: dir, stdout: "pipe", stderr: "pipe" })
  try {
    const { port, before } = await untilListening(proc.stdout)
    // Without store.encryptionKey, one warning says secrets are stored unencrypted, and nothing else comes first.
    expect(before.map((line) => line.msg)).toEqual(["store.encryptionKey (or ROUTER_ENCRYPTION_KEY) is not set: hook secrets, credentials and header values are stored unencrypted"])
    expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ status: "ok" })
    // An acknowledged webhook went through the embedded writer thread.
    const raw = protojsonish(roomEvent("room_started", "binary-room"))
    const response = await fetch(`http://127.0.0.1:${port}/livekit/webhook`, { method: "POST", headers: { authorization: await signAsLiveKit(raw) }, body: raw })
    expect(response.status).toBe(200)
    // The console's page and script were built into the binary: nothing is read from disk.
    const page = await (await fetch(`http://127.0.0.1:${port}/console/calls`)).text()
    const script = /src="(\/console\/assets\/app-[a-z0-9]+\.js)"/.exec(page)?.[1]
    expect(script).toBeDefined()
    const served = await fetch(`http://127.0.0.1:${port}${script}`)
    expect(served.headers.get("content-type")).toStartWith("text/javascript")
    expect(await served.text()).toContain("Sign in")
    // The API reference is built on its first request, from a module the binary still carries.
    const docs = await fetch(`http://127.0.0.1:${port}/docs`)
    expect(docs.status).toBe(200)
    expect(await docs.text()).toContain("<title>sip-tenant-router admin API</title>")
  } finally {
    proc.kill("SIGTERM")
    expect(await proc.exited).toBe(0)
  }
})
