import { Database } from "bun:sqlite"
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/**
 * The store is the delivery queue: a backlog waits on disk, the engine holds a
 * bounded window of it. These run the real router on a database seeded with
 * a backlog written straight into it, as a long outage would leave it.
 */

const TENANT = "calls.backlog.example"
const dirs: Array<string> = []
const routers: Array<RunningRouter> = []
const receivers: Array<Receiver> = []
afterAll(async () => {
  await Promise.all(routers.map((r) => r.stop("SIGKILL")))
  for (const r of receivers) r.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const config = (tenantUrl: string, dir: string) => ({
  store: { path: join(dir, "router.db") },
  hooks: [{ host: TENANT, url: `${tenantUrl}/voice` }],
  delivery: { timeout: "1s", maxAttempts: 1000, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 5, cooldown: "200ms" } }
})

const start = async (dir: string, tenantUrl: string) => {
  const router = await startRouter(config(tenantUrl, dir), dir)
  routers.push(router)
  return router
}

const residentMiB = async (router: RunningRouter) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(await Bun.file(`/proc/${router.process.pid}/status`).text())![1]) / 1024

const PAD = "x".repeat(1000)

/** Writes `calls × perCall` pending deliveries, as an outage leaves them: each call's events in id order. */
const seedBacklog = (dir: string, tenantUrl: string, calls: number, perCall: number) => {
  const db = new Database(join(dir, "router.db"), { strict: true })
  const insert = db.query(
    `INSERT INTO deliveries (event_id, event_type, tenant, url, room, domain, body, next_attempt_at, created_at, queued_at, updated_at)
     VALUES (?1, 'participant_joined', ?2, ?3, ?4, ?2, ?5, ?6, ?6, ?6, ?6)`
  )
  const now = Date.now()
  db.transaction(() => {
    // Interleaved as calls overlap in time: event n of every call, then event n + 1.
    for (let n = 0; n < perCall; n++) {
      for (let c = 0; c < calls; c++) {
        const eventId = `EV_backlog_${c}_${n}`
        insert.run(eventId, TENANT, `${tenantUrl}/voice`, `room-${c}`, JSON.stringify({ type: "participant_joined", call: c, n, data: { id: eventId }, pad: PAD }), now)
      }
    }
  })()
  db.close()
}

/** A fresh folder whose database has the router's schema: a router started and stopped once. */
const preparedDir = async (tenantUrl: string) => {
  const dir = mkdtempSync(join(tmpdir(), "router-backlog-"))
  dirs.push(dir)
  const router = await start(dir, tenantUrl)
  expect(await router.stop()).toBe(0)
  return dir
}

describe("a backlog in the store", () => {
  test("100 000 pending deliveries: the router starts without loading them, and its memory stays that of an empty router", async () => {
    const down = startReceiver(DEFAULT_SECRET, [{ status: 503 }])
    receivers.push(down)
    const empty = await start(await preparedDir(down.url), down.url)
    await eventually(async () => (await fetch(`${empty.url}/readyz`)).status === 200, 5_000, "the empty router ready")
    await Bun.sleep(1_000)
    const emptyMiB = await residentMiB(empty)

    const dir = await preparedDir(down.url)
    seedBacklog(dir, down.url, 10_000, 10)
    const router = await start(dir, down.url)
    await eventually(async () => (await fetch(`${router.url}/readyz`)).status === 200, 5_000, "the backlogged router ready")
    // The depth comes from the store, not from what is in memory.
    await eventually(async () => (await router.metric("tenant_router_queue_depth")) === 100_000, 5_000, "queue depth from the store")
    await eventually(() => down.hits >= 20, 10_000, "attempts at the tenant that is down")
    await Bun.sleep(1_000)
    const backlogMiB = await residentMiB(router)
    // 100 000 bodies of 1 KB would be 100 MiB at the very least; the window is 64 calls × 4 deliveries.
    expect(backlogMiB - emptyMiB).toBeLessThan(40)
    expect(await router.metric("tenant_router_oldest_pending_seconds")).toBeGreaterThan(0)
  }, 60_000)

  test("a backlog drains once the tenant is back: every delivery once, each call's in order", async () => {
    const tenant = startReceiver(DEFAULT_SECRET)
    receivers.push(tenant)
    const dir = await preparedDir(tenant.url)
    const calls = 300
    const perCall = 10
    seedBacklog(dir, tenant.url, calls, perCall)
    const router = await start(dir, tenant.url)
    await tenant.waitFor((r) => r.length >= calls * perCall, 60_000)
    const byCall = new Map<number, Array<number>>()
    for (const { json } of tenant.received) byCall.set(json.call, [...(byCall.get(json.call) ?? []), json.n])
    expect(byCall.size).toBe(calls)
    for (const order of byCall.values()) expect(order).toEqual(Array.from({ length: perCall }, (_, n) => n))
    expect(new Set(tenant.received.map((r) => r.headers["webhook-id"])).size).toBe(calls * perCall)
    await eventually(async () => (await router.metric("tenant_router_queue_depth")) === 0, 5_000, "an empty queue")
  }, 90_000)
})
