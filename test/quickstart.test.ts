import { expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ROOT = join(import.meta.dir, "..")

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

test("the README's path: the shipped config plus `bun run demo` delivers a verified event", async () => {
  // The shipped config as is, except for ports, so the test never collides with a running router.
  const shipped = Bun.YAML.parse(await Bun.file(join(ROOT, "config/router.yaml")).text()) as Record<string, any>
  const dir = mkdtempSync(join(tmpdir(), "router-quickstart-"))
  const tenantPort = await freePort()
  const config = {
    ...shipped,
    server: { ...shipped.server, port: 0 },
    store: { path: join(dir, "router.db") },
    hooks: shipped.hooks.map((h: any) => ({ ...h, url: h.url.replace(":9000", `:${tenantPort}`) }))
  }
  const configPath = join(dir, "demo.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(config))
  const router = await startRouter(() => config, dir)
  try {
    const demo = Bun.spawn(["bun", "run", join(ROOT, "scripts/demo.ts"), "--router", router.url, "--config", configPath], {
      stdout: "pipe",
      stderr: "pipe"
    })
    const [code, out, err] = await Promise.all([demo.exited, new Response(demo.stdout).text(), new Response(demo.stderr).text()])
    expect(err).toBe("")
    expect(code).toBe(0)
    expect(out).toContain('router answered 200 {"status":"received"}')
    expect(out).toContain("signature verified")
    expect(out).toContain('"tenant": "calls.drsmith.example"')
    // The README's CLI examples run against `bun start` with the token its config ships.
    const cli = Bun.spawn(["bun", "run", join(ROOT, "src/main.ts"), "hooks", "list", "--url", router.url], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: "dev-admin-token-change-me" }
    })
    const [cliCode, listed] = await Promise.all([cli.exited, new Response(cli.stdout).text()])
    expect({ cliCode, listed }).toEqual({ cliCode: 0, listed: expect.stringContaining("calls.drsmith.example") })
    expect(await Bun.file(join(ROOT, "README.md")).text()).toContain("ROUTER_ADMIN_TOKEN=dev-admin-token-change-me")
  } finally {
    await router.stop()
  }
})
