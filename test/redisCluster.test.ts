/**
 * Several real router processes behind one Redis, as behind a load balancer:
 * the hook table is shared, a retried event is a duplicate on any instance,
 * and every acknowledged event reaches its tenant even when an instance is
 * killed or Redis restarts.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { redisAvailable } from "./support/redis.ts"
import { startRedisCluster } from "./support/redisCluster.ts"
import { DEFAULT_SECRET, eventually, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const cluster = async (...args: Parameters<typeof startRedisCluster>) => {
  const c = await startRedisCluster(...args)
  cleanups.push(() => c.stop())
  return c
}
const receiver = (...args: Parameters<typeof startReceiver>) => {
  const r = startReceiver(...args)
  cleanups.push(() => r.stop())
  return r
}

const HOST = "calls.drsmith.com"
const joined = (room: string) => sipParticipantEvent("participant_joined", { room, xToIp: HOST })
const tenantConfig = (tenant: Receiver, delivery: Record<string, unknown> = {}) => ({
  hooks: [{ host: HOST, url: `${tenant.url}/voice` }],
  delivery: { timeout: "2s", maxAttempts: 50, initialBackoff: "50ms", maxBackoff: "300ms", concurrencyPerTenant: 8, ...delivery }
})

/** How many times each webhook-id reached the tenant. */
const receipts = (tenant: Receiver) => {
  const counts = new Map<string, number>()
  for (const r of tenant.received) counts.set(r.headers["webhook-id"]!, (counts.get(r.headers["webhook-id"]!) ?? 0) + 1)
  return counts
}

/** Posts `count` events round robin over the routers, a few at a time; returns the ids each acknowledged (200). */
const burst = async (routers: () => ReadonlyArray<RunningRouter>, count: number, onSent: (sent: number) => unknown = () => {}) => {
  const acknowledged: Array<string> = []
  const refused: Array<number> = []
  for (let i = 0; i < count; i += 6) {
    await Promise.all(
      Array.from({ length: Math.min(6, count - i) }, async (_, k) => {
        const event = joined(`room-${(i + k) % 12}`)
        const live = routers()
        const router = live[(i + k) % live.length]!
        const status = await router.post(event).then((r) => r.status, () => 0)
        if (status === 200) acknowledged.push(event.id)
        else refused.push(status)
      })
    )
    await onSent(i + 6)
  }
  return { acknowledged, refused }
}

const everyAcknowledgedArrived = (tenant: Receiver, acknowledged: ReadonlyArray<string>, timeoutMs: number) =>
  tenant.waitFor(() => {
    const seen = receipts(tenant)
    return acknowledged.every((id) => seen.has(id))
  }, timeoutMs)

// Real processes and a lease to wait out: longer than bun's default, whatever file runs first.
const SLOW = 60_000

const duplicatesOf = (tenant: Receiver) => [...receipts(tenant).values()].reduce((sum, n) => sum + n - 1, 0)

describe.skipIf(!redisAvailable())("several instances on one Redis", () => {
  test("an API hook change on A is in force on B at once, and B routes by it", async () => {
    const tenant = receiver(DEFAULT_SECRET)
    const { routers } = await cluster(2, { hooks: [] })
    const [a, b] = routers as [RunningRouter, RunningRouter]
    const put = await a.admin("PUT", "/v1/hooks/api.example.com", { url: `${tenant.url}/api`, secret: DEFAULT_SECRET })
    expect(put.status).toBe(201)
    const changed = Date.now()
    await eventually(async () => (await b.admin("GET", "/v1/hooks/api.example.com")).status === 200, 2_000, "B to see the hook")
    const latencyMs = Date.now() - changed
    console.log(`hook change visible on the other instance after ${latencyMs} ms`)
    expect(latencyMs).toBeLessThan(1_000)
    const event = sipParticipantEvent("participant_joined", { room: "api-room", xToIp: "api.example.com" })
    expect((await b.post(event)).status).toBe(200)
    await tenant.waitFor((seen) => seen.some((r) => r.path === "/api" && r.headers["webhook-id"] === event.id))

    expect((await b.admin("DELETE", "/v1/hooks/api.example.com")).status).toBe(204)
    await eventually(async () => (await a.admin("GET", "/v1/hooks/api.example.com")).status === 404, 2_000, "A to see the removal")
  }, SLOW)

  test("events sent round robin to three instances, each also retried on another instance, are all delivered exactly once", async () => {
    const tenant = receiver(DEFAULT_SECRET)
    const { routers } = await cluster(3, tenantConfig(tenant))
    const { acknowledged } = await burst(() => routers, 60)
    expect(acknowledged).toHaveLength(60)
    // LiveKit retrying on another instance: still a duplicate there.
    const retried = joined("room-retry")
    expect((await routers[0]!.post(retried)).status).toBe(200)
    expect((await routers[1]!.post(retried)).status).toBe(200)
    expect((await routers[2]!.post(retried)).status).toBe(200)
    await everyAcknowledgedArrived(tenant, [...acknowledged, retried.id], 20_000)
    await Bun.sleep(500)
    expect(duplicatesOf(tenant)).toBe(0)
    expect(tenant.received).toHaveLength(61)
    expect(tenant.rejected).toEqual([])
  }, SLOW)

  test("kill -9 of one instance mid-burst: every acknowledged event is still delivered, by the others after the lease", async () => {
    // A slow tenant, so the killed instance dies holding deliveries in flight and queued.
    const tenant = receiver(DEFAULT_SECRET, [{ status: 200, delayMs: 150 }])
    const c = await cluster(3, tenantConfig(tenant, { concurrencyPerTenant: 2 }))
    const victim = c.routers[1]!
    let killed = false
    const { acknowledged, refused } = await burst(
      () => (killed ? c.routers.filter((r) => r !== victim) : c.routers),
      90,
      async (sent) => {
        if (sent >= 36 && !killed) {
          killed = true
          await victim.stop("SIGKILL")
        }
      }
    )
    console.log(`kill -9: ${acknowledged.length} acknowledged, refused: [${refused.join(", ")}]`)
    // The survivors keep taking events; a refusal (503) is fine, LiveKit would retry it.
    expect(acknowledged.length).toBeGreaterThanOrEqual(60)
    expect(refused.every((status) => status === 503)).toBe(true)
    await everyAcknowledgedArrived(tenant, acknowledged, 30_000)
    const duplicates = duplicatesOf(tenant)
    console.log(`kill -9: all ${acknowledged.length} acknowledged delivered, ${duplicates} duplicates`)
    // Only what the victim had in flight can arrive twice.
    expect(duplicates).toBeLessThanOrEqual(8)
    const tookOver = c.routers.filter((r) => r !== victim).flatMap((r) => r.logs.filter((l) => l.msg === "took over deliveries"))
    expect(tookOver.length).toBeGreaterThan(0)
  }, SLOW)

  test("Redis restarted mid-run: 503 and not ready while it is down, then recovery by itself without losing an acknowledged event", async () => {
    const tenant = receiver(DEFAULT_SECRET, [{ status: 200, delayMs: 20 }])
    const c = await cluster(2, tenantConfig(tenant))
    const [a, b] = c.routers as [RunningRouter, RunningRouter]
    const before = await burst(() => c.routers, 30)
    expect(before.acknowledged).toHaveLength(30)

    // kill -9: with appendfsync always, whatever Redis acknowledged is on disk.
    await c.redis.stopServer("SIGKILL")
    const whileDown = await burst(() => c.routers, 6)
    expect(whileDown.acknowledged).toEqual([])
    // 503, so LiveKit retries it.
    expect((await a.post(joined("room-down"))).status).toBe(503)
    expect((await fetch(`${a.url}/readyz`)).status).toBe(503)
    expect((await fetch(`${b.url}/readyz`)).status).toBe(503)
    await c.redis.startServer()

    await eventually(async () => (await fetch(`${a.url}/readyz`)).status === 200 && (await fetch(`${b.url}/readyz`)).status === 200, 5_000, "ready again")
    const after = await burst(() => c.routers, 30)
    expect(after.acknowledged).toHaveLength(30)
    await everyAcknowledgedArrived(tenant, [...before.acknowledged, ...after.acknowledged], 30_000)
    console.log(`redis restart: 60 acknowledged, all delivered, ${duplicatesOf(tenant)} duplicates`)

    // The subscriptions came back too: a change on B reaches A.
    expect((await b.admin("PUT", "/v1/hooks/late.example.com", { url: `${tenant.url}/late` })).status).toBe(201)
    await eventually(async () => (await a.admin("GET", "/v1/hooks/late.example.com")).status === 200, 2_000, "A to see B's change")
  }, SLOW)
})
