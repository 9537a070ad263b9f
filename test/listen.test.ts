/**
 * `sip-tenant-router listen` end to end: the real CLI process follows the real
 * router's live stream and forwards a tenant's deliveries to a local app that
 * verifies them with `standardwebhooks`, across the router going away and
 * coming back.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver } from "./support/receiver.ts"
import { eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const MAIN = join(import.meta.dir, "..", "src", "main.ts")
const HOST = "listen.example"
const OTHER = "other.listen.example"
const SECRET = "whsec_" + Buffer.alloc(32, 31).toString("base64")
const OTHER_SECRET = "whsec_" + Buffer.alloc(32, 32).toString("base64")
const TENANT_TOKEN = "tenant-token-for-listen-0123456789"

let rooms = 0
const callTo = (host: string) => sipParticipantEvent("participant_joined", { room: `listen-${Date.now().toString(36)}-${++rooms}`, xToIp: host })

/** The CLI running in the background, with its output as it comes. */
const runListen = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const proc = Bun.spawn(["bun", "run", MAIN, "listen", ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: "", ...env }
  })
  const out = { stdout: "", stderr: "" }
  const pump = async (from: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    const decoder = new TextDecoder()
    for await (const chunk of from) out[key] += decoder.decode(chunk, { stream: true })
  }
  const done = Promise.all([pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr")])
  return { proc, out, lines: () => out.stdout.split("\n").filter((line) => line !== ""), exited: async () => [await proc.exited, await done][0] as number }
}

const closedPort = () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
  const port = server.port!
  server.stop(true)
  return port
}

const processes: Array<Subprocess> = []
afterAll(() => {
  for (const proc of processes) proc.kill("SIGKILL")
})

test("listen forwards each of the tenant's deliveries, signed as the tenant receives them, across the router going away and back", async () => {
  const app = startReceiver(SECRET)
  const tenant = startReceiver(SECRET)
  const other = startReceiver(OTHER_SECRET)
  const dir = mkdtempSync(join(tmpdir(), "router-listen-"))
  const port = closedPort()
  const config = (): Record<string, unknown> =>
    testConfig(dir, {
      server: { host: "127.0.0.1", port },
      hooks: [
        { host: HOST, url: `${tenant.url}/t`, secret: SECRET, headers: { "X-Tenant-Key": "not-for-the-local-app" } },
        { host: OTHER, url: `${other.url}/o`, secret: OTHER_SECRET }
      ],
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [HOST] }] }
    })
  let router: RunningRouter | undefined
  // A tenant's own token is enough: the router and token come from the environment, as for the other commands.
  const listen = runListen(["--tenant", HOST, "--forward-to", `${app.url}/local/webhooks`], { ROUTER_URL: `http://127.0.0.1:${port}`, ROUTER_ADMIN_TOKEN: TENANT_TOKEN })
  processes.push(listen.proc)
  try {
    // No router yet: it says so, and keeps trying.
    await eventually(() => listen.out.stderr.includes("cannot reach the router"), 10_000, "the unreachable notice")
    router = await startRouter(config, dir)
    await eventually(() => listen.out.stderr.includes(`listening to ${HOST}'s deliveries`), 10_000, "the subscription")

    const first = [callTo(HOST), callTo(OTHER), callTo(HOST)]
    for (const event of first) expect((await router.post(event)).status).toBe(200)
    await app.waitFor((received) => received.length >= 2)
    await tenant.waitFor((received) => received.length >= 2)
    await other.waitFor((received) => received.length >= 1)

    // The local app verified each with the tenant's secret (startReceiver keeps only those) and got what the tenant got.
    expect(app.rejected).toEqual([])
    expect(app.received.map((r) => r.headers["webhook-id"])).toEqual([first[0]!.id, first[2]!.id])
    for (const received of app.received) {
      const original = tenant.received.find((r) => r.headers["webhook-id"] === received.headers["webhook-id"])!
      expect(received.body).toBe(original.body)
      expect(received.path).toBe("/local/webhooks")
      expect(received.headers["content-type"]).toBe("application/json")
      // The hook's own headers were for the tenant's endpoint, not the local app.
      expect(received.headers["x-tenant-key"]).toBeUndefined()
      expect(original.headers["x-tenant-key"]).toBe("not-for-the-local-app")
    }
    await eventually(() => listen.lines().length >= 2, 5_000, "two lines")
    const line = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}participant_joined {2}(EV_\S+) {2}200 {2}\d+ms$/
    expect(listen.lines().map((l) => line.exec(l)?.[1])).toEqual([first[0]!.id, first[2]!.id])

    // The router goes away: it is said, and retried.
    await router.stop()
    const notices = listen.out.stderr.length
    await eventually(() => listen.out.stderr.slice(notices).includes("cannot reach the router"), 10_000, "the outage notice")
    expect(listen.out.stderr).toContain("the router closed the stream; reconnecting in")

    // It comes back with the same store: an event posted before the CLI reconnects is resumed from the store.
    router = await startRouter(config, dir)
    const later = callTo(HOST)
    expect((await router.post(later)).status).toBe(200)
    await app.waitFor((received) => received.some((r) => r.headers["webhook-id"] === later.id), 20_000)
    expect(listen.out.stderr).toMatch(/reconnected to http:\/\/127\.0\.0\.1:\d+; resuming after event \d+/)
    await eventually(() => listen.lines().length >= 3, 5_000, "a third line")
    expect(app.received.map((r) => r.headers["webhook-id"])).toEqual([first[0]!.id, first[2]!.id, later.id])
    expect(listen.lines().map((l) => line.exec(l)?.[1])).toEqual([first[0]!.id, first[2]!.id, later.id])

    // Ctrl-C ends it, with success.
    listen.proc.kill("SIGINT")
    expect(await listen.exited()).toBe(0)
    expect(listen.out.stdout + listen.out.stderr).not.toContain(TENANT_TOKEN)
  } finally {
    await router?.stop()
    rmSync(dir, { recursive: true, force: true })
    for (const receiver of [app, tenant, other]) receiver.stop()
  }
})

test("listen stops at once, exit 1, when the router refuses the stream (another tenant's host)", async () => {
  const router = await startRouter({ admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [HOST] }] } })
  try {
    const listen = runListen(["--tenant", OTHER, "--forward-to", "http://127.0.0.1:9/hook", "--url", router.url], { ROUTER_ADMIN_TOKEN: TENANT_TOKEN })
    processes.push(listen.proc)
    expect(await listen.exited()).toBe(1)
    expect(listen.out.stderr.trim()).toBe(`error: 403 forbidden: this token may not act on ${OTHER}`)
  } finally {
    await router.stop()
  }
})
