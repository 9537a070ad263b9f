/**
 * The router's 200 is a promise: LiveKit drops an event once it is
 * acknowledged. These tests break the real process (kill -9, SIGTERM) at bad
 * moments and check that every acknowledged event still reaches its tenant.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { protojsonish, signAsLiveKit, sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A test directory that outlives one router process, so a restart finds the same database. */
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "router-durable-"))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const start = async (dir: string, overrides: Record<string, unknown>) => {
  const router = await startRouter(testConfig(dir, { security: { allowPrivateTargets: true }, ...overrides }), dir)
  cleanups.push(() => (router.process.exitCode === null ? router.stop("SIGKILL") : undefined))
  return router
}

const receiver = (...args: Parameters<typeof startReceiver>) => {
  const r = startReceiver(...args)
  cleanups.push(() => r.stop())
  return r
}

const hook = (url: string) => [{ host: "calls.drsmith.com", url }]
const joined = (room: string, id?: string) => sipParticipantEvent("participant_joined", { room, xToIp: "calls.drsmith.com" }, id)

const attemptsLogged = (router: RunningRouter, eventId: string) =>
  router.logs.filter((l) => l.msg === "delivery attempt" && l.eventId === eventId)

/** How many times each webhook-id reached the tenant. */
const receipts = (tenant: Receiver) => {
  const counts = new Map<string, number>()
  for (const r of tenant.received) counts.set(r.headers["webhook-id"]!, (counts.get(r.headers["webhook-id"]!) ?? 0) + 1)
  return counts
}

describe("kill -9", () => {
  test("while the tenant is down: after a restart the event arrives, and the attempt count carries on", async () => {
    const dir = freshDir()
    // Reserve a port, then free it: the tenant is down until a receiver binds it again.
    const placeholder = startReceiver(DEFAULT_SECRET)
    const port = placeholder.port
    placeholder.stop()
    const config = {
      hooks: hook(`http://127.0.0.1:${port}/voice`),
      delivery: { timeout: "1s", maxAttempts: 50, initialBackoff: "100ms", maxBackoff: "300ms" }
    }
    const first = await start(dir, config)
    const event = joined("down-1")
    expect((await first.post(event)).status).toBe(200)
    await eventually(() => attemptsLogged(first, event.id).length >= 2, 5_000, "two refused attempts")
    expect(attemptsLogged(first, event.id)[0]!.error).toBeTruthy()
    await first.stop("SIGKILL")
    const attemptsBefore = Math.max(...attemptsLogged(first, event.id).map((l) => l.attempt))

    const tenant = receiver(DEFAULT_SECRET, [{ status: 200 }], port)
    const second = await start(dir, config)
    await tenant.waitFor((r) => r.some((x) => x.headers["webhook-id"] === event.id), 10_000)
    await eventually(() => attemptsLogged(second, event.id).some((l) => l.status === 200), 2_000, "the attempt's log line")
    const delivered = attemptsLogged(second, event.id).find((l) => l.status === 200)!
    expect(delivered.attempt).toBeGreaterThan(attemptsBefore)
    expect(receipts(tenant).get(event.id)).toBe(1)
  })

  test("in the middle of a burst: every acknowledged event arrives after a restart, with under 1% duplicates", async () => {
    const dir = freshDir()
    const tenant = receiver(DEFAULT_SECRET)
    const config = {
      hooks: hook(`${tenant.url}/voice`),
      // Duplicates are bounded by the attempts in flight at the kill: at most concurrencyPerTenant (the default, 4).
      // Bounds that hold on a saturated machine: a slow answer from the tenant in this process is not a failure, and a
      // circuit opened by a stall probes again within a second, not after the default 30 s the wait below would outlast.
      delivery: { timeout: "5s", maxAttempts: 5, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { cooldown: "500ms" } }
    }
    const first = await start(dir, config)
    const TOTAL = 3000
    const KILL_AFTER = 1500
    const requests = await Promise.all(
      Array.from({ length: TOTAL }, async (_, i) => {
        const event = joined(`burst-${i}`)
        const raw = protojsonish(event)
        return { id: event.id, raw, authorization: await signAsLiveKit(raw) }
      })
    )
    const acknowledged = new Set<string>()
    let next = 0
    let killed: Promise<number> | undefined
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < requests.length) {
          const { id, raw, authorization } = requests[next++]!
          try {
            const response = await fetch(`${first.url}/livekit/webhook`, { method: "POST", headers: { authorization }, body: raw })
            await response.arrayBuffer()
            if (response.status === 200) acknowledged.add(id)
          } catch {
            // The process is gone: LiveKit would retry this one later.
          }
          if (acknowledged.size >= KILL_AFTER && !killed) killed = first.stop("SIGKILL")
        }
      })
    )
    await killed
    expect(acknowledged.size).toBeGreaterThanOrEqual(KILL_AFTER)
    expect(acknowledged.size).toBeLessThan(TOTAL)

    const second = await start(dir, config)
    const missing = () => [...acknowledged].filter((id) => !receipts(tenant).has(id))
    await eventually(() => missing().length === 0, 60_000, "every acknowledged event at the tenant").catch(async () => {
      // Where the missing ones are, as the router says: failed (attempts spent), pending (waiting) or nowhere (lost).
      const statuses = await Promise.all(
        missing()
          .slice(0, 20)
          .map(async (id) => ((await (await second.admin("GET", `/v1/deliveries?eventId=${encodeURIComponent(id)}`)).json()) as { items: Array<{ status: string }> }).items.map((d) => d.status).join(",") || "none")
      )
      throw new Error(`${missing().length} of ${acknowledged.size} acknowledged events never arrived; the first ones' deliveries: ${statuses.join(" ")}`)
    })
    const duplicates = [...receipts(tenant).values()].reduce((sum, n) => sum + n - 1, 0)
    expect(duplicates / acknowledged.size).toBeLessThan(0.01)
    expect(tenant.rejected).toEqual([])
    expect(second.stderr()).toBe("")
  }, 120_000)
})

describe("restart", () => {
  test("dedupe survives it: a repeated event id is acknowledged, counted as duplicate, and not delivered again", async () => {
    const dir = freshDir()
    const tenant = receiver(DEFAULT_SECRET)
    const config = { hooks: hook(`${tenant.url}/voice`) }
    const first = await start(dir, config)
    const event = joined("dedupe-1")
    expect((await first.post(event)).status).toBe(200)
    await tenant.waitFor((r) => r.length === 1)
    expect(await first.stop("SIGTERM")).toBe(0)

    const second = await start(dir, config)
    expect((await second.post(event)).status).toBe(200)
    expect(await second.metric("tenant_router_webhooks_received_total", { outcome: "duplicate" })).toBe(1)
    await Bun.sleep(300)
    expect(tenant.received.length).toBe(1)
  })
})

describe("SIGTERM", () => {
  test("drains: refuses new webhooks and fails readiness, finishes the attempt in flight, leaves the rest pending", async () => {
    const dir = freshDir()
    const slow = receiver(DEFAULT_SECRET, [{ status: 200, delayMs: 1500 }])
    const flaky = receiver(DEFAULT_SECRET, [{ status: 503 }, { status: 200 }])
    const config = {
      hooks: [
        { host: "slow.drsmith.com", url: `${slow.url}/voice` },
        { host: "flaky.drsmith.com", url: `${flaky.url}/voice` }
      ],
      delivery: { timeout: "5s", maxAttempts: 5, initialBackoff: "700ms", maxBackoff: "1s" }
    }
    const first = await start(dir, config)
    const waiting = sipParticipantEvent("participant_joined", { room: "drain-flaky", xToIp: "flaky.drsmith.com" })
    const inFlight = sipParticipantEvent("participant_joined", { room: "drain-slow", xToIp: "slow.drsmith.com" })
    expect((await first.post(waiting)).status).toBe(200)
    await eventually(() => flaky.hits === 1, 5_000, "the first, refused attempt")
    expect((await first.post(inFlight)).status).toBe(200)
    await eventually(() => slow.hits === 1, 5_000, "the slow attempt in flight")

    first.process.kill("SIGTERM")
    await eventually(async () => (await fetch(`${first.url}/readyz`)).status === 503, 2_000, "readiness to fail")
    const refused = await first.post(joined("drain-late"))
    expect(refused.status).toBe(503)
    expect(((await refused.json()) as any).error.code).toBe("shutting_down")
    expect(await first.process.exited).toBe(0)
    // The slow tenant answered during the drain; its retry timer fired too, but no new attempt started.
    expect(slow.received.length).toBe(1)
    expect(flaky.hits).toBe(1)
    expect(first.logs.map((l) => l.msg)).toContain("drained")

    const second = await start(dir, config)
    await flaky.waitFor((r) => r.some((x) => x.headers["webhook-id"] === waiting.id && x === r[r.length - 1]) && flaky.hits === 2)
    await Bun.sleep(300)
    expect(slow.received.length).toBe(1)
    expect(attemptsLogged(second, inFlight.id)).toEqual([])
  })

  test("a tenant that never answers cannot hold shutdown past server.drainTimeout; its event is sent again after restart", async () => {
    const dir = freshDir()
    const stuck = Promise.withResolvers<void>()
    cleanups.push(() => stuck.resolve())
    let hits = 0
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch() {
        hits++
        await stuck.promise
        return new Response("late")
      }
    })
    cleanups.push(() => server.stop(true))
    const config = {
      server: { drainTimeout: "500ms" },
      hooks: hook(`http://127.0.0.1:${server.port}/voice`),
      delivery: { timeout: "30s" }
    }
    const first = await start(dir, config)
    const event = joined("stuck-1")
    expect((await first.post(event)).status).toBe(200)
    await eventually(() => hits === 1, 5_000, "the attempt in flight")
    const stopping = Date.now()
    expect(await first.stop("SIGTERM")).toBe(0)
    expect(Date.now() - stopping).toBeLessThan(3_000)
    expect(first.logs.map((l) => l.msg)).toContain("drain timed out; unfinished attempts stay pending")

    const port = server.port!
    server.stop(true)
    const tenant = receiver(DEFAULT_SECRET, [{ status: 200 }], port)
    await start(dir, config)
    await tenant.waitFor((r) => r.some((x) => x.headers["webhook-id"] === event.id), 10_000)
  }, 30_000)
})

describe("retention", () => {
  test("the janitor prunes finished deliveries and unroutable records on schedule, never pending ones", async () => {
    const dir = freshDir()
    const tenant = receiver(DEFAULT_SECRET)
    const stuck = Promise.withResolvers<void>()
    cleanups.push(() => stuck.resolve())
    const hold = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => stuck.promise.then(() => new Response("late")) })
    cleanups.push(() => hold.stop(true))
    const router = await start(dir, {
      hooks: [
        { host: "calls.drsmith.com", url: `${tenant.url}/voice` },
        { host: "held.drsmith.com", url: `http://127.0.0.1:${hold.port}/voice` }
      ],
      delivery: { timeout: "30s" },
      retention: { delivered: "1s", unroutable: "1s", interval: "300ms" }
    })
    const list = async (query: string) => ((await (await router.admin("GET", `/v1/deliveries?${query}`)).json()) as any).items as any[]
    const held = sipParticipantEvent("participant_joined", { room: "held-call", xToIp: "held.drsmith.com" })
    expect((await router.post(held)).status).toBe(200)
    for (let i = 0; i < 5; i++) expect((await router.post(joined(`kept-${i}`))).status).toBe(200)
    expect((await router.post(sipParticipantEvent("participant_joined", { room: "nobody", xToIp: "nobody.example.com" }))).status).toBe(200)
    await tenant.waitFor((r) => r.length === 5)
    await eventually(async () => (await list("status=delivered")).length === 5, 2_000, "five delivered")

    await eventually(async () => (await list("status=delivered")).length === 0, 5_000, "delivered ones pruned")
    // Each kind is pruned in its own write, so the unroutable record may go a moment later.
    const unroutable = async () => ((await (await router.admin("GET", "/v1/unroutable")).json()) as any).items as any[]
    await eventually(async () => (await unroutable()).length === 0, 2_000, "unroutable record pruned")
    expect((await list("status=pending")).map((d) => d.eventId)).toEqual([held.id])
    // The janitor logs once every kind is pruned, a moment after the last write.
    const prunedDeliveries = () => router.logs.filter((l) => l.msg === "pruned").reduce((sum, l) => sum + l.deliveries, 0)
    await eventually(() => prunedDeliveries() > 0, 2_000, "the pruned log line")
    expect(prunedDeliveries()).toBe(5)
  })
})
