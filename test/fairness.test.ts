/**
 * No tenant can stall another, and no call can stall another call: per-tenant
 * gates (concurrency cap, circuit breaker, rate limit) and per-call lanes,
 * observed from real tenants behind the real router process.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startReceiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const start = async (config: Record<string, unknown>) => {
  const router = await startRouter({ security: { allowPrivateTargets: true }, ...config })
  cleanups.push(() => router.stop())
  return router
}

const receiver = (...args: Parameters<typeof startReceiver>) => {
  const r = startReceiver(...args)
  cleanups.push(() => r.stop())
  return r
}

const joined = (domain: string, room: string) => sipParticipantEvent("participant_joined", { room, xToIp: domain })

/** A tenant whose answer depends on the request, recording what arrived and when. */
const scriptedTenant = (answer: (eventId: string, seen: number) => number) => {
  const arrivals: Array<{ eventId: string; status: number; at: number }> = []
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      await request.text()
      const eventId = request.headers.get("webhook-id")!
      const status = answer(eventId, arrivals.filter((a) => a.eventId === eventId).length)
      arrivals.push({ eventId, status, at: Date.now() })
      return new Response(null, { status })
    }
  })
  cleanups.push(() => server.stop(true))
  return { url: `http://127.0.0.1:${server.port}`, arrivals }
}

describe("tenants are isolated", () => {
  test("a tenant sleeping past the timeout does not delay a healthy tenant: all its events arrive within about a second", async () => {
    const sleepy = receiver(DEFAULT_SECRET, [{ status: 200, delayMs: 5_000 }])
    const healthy = receiver(DEFAULT_SECRET)
    const router = await start({
      delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "100ms", maxBackoff: "200ms", concurrencyPerTenant: 2 },
      hooks: [
        { host: "sleepy.example.com", url: `${sleepy.url}/voice` },
        { host: "healthy.example.com", url: `${healthy.url}/voice` }
      ]
    })
    // The sleepy tenant's backlog is far larger than its concurrency cap, and posted first.
    for (let i = 0; i < 20; i++) expect((await router.post(joined("sleepy.example.com", `sleepy-${i}`))).status).toBe(200)
    const posted: number[] = []
    for (let i = 0; i < 20; i++) {
      expect((await router.post(joined("healthy.example.com", `healthy-${i}`))).status).toBe(200)
      posted.push(Date.now())
    }
    await healthy.waitFor((r) => r.length === 20, 5_000)
    const lastArrival = Math.max(...healthy.received.map((r) => r.at))
    expect(lastArrival - posted[posted.length - 1]!).toBeLessThan(1_000)
    // The sleepy tenant had, at most, its cap in flight: it never got a second slot per event.
    expect(sleepy.hits).toBeLessThanOrEqual(2 * 3)
  })
})

describe("calls are isolated", () => {
  test("a retrying event holds back later events of its call only, and the call's events arrive in order", async () => {
    let firstId = ""
    // The call's first event is refused twice; everything else is taken at once.
    const tenant = scriptedTenant((eventId, seen) => (eventId === firstId && seen < 2 ? 503 : 200))
    const router = await start({
      delivery: { timeout: "2s", maxAttempts: 5, initialBackoff: "300ms", maxBackoff: "400ms" },
      hooks: [{ host: "calls.drsmith.com", url: tenant.url }]
    })
    const first = joined("calls.drsmith.com", "slow-call")
    firstId = first.id
    const later = [trackEvent("slow-call"), trackEvent("slow-call"), sipParticipantEvent("participant_left", { room: "slow-call", xToIp: "calls.drsmith.com" })]
    const other = [joined("calls.drsmith.com", "other-call"), trackEvent("other-call")]
    for (const event of [first, ...later, ...other]) expect((await router.post(event)).status).toBe(200)

    await eventually(() => tenant.arrivals.filter((a) => a.status === 200).length === 6, 10_000, "all six delivered")
    const order = tenant.arrivals.map((a) => a.eventId)
    const firstDelivered = tenant.arrivals.find((a) => a.eventId === first.id && a.status === 200)!
    // The slow call: its first event's refusals and success come first, then the rest in arrival order.
    expect(order.filter((id) => [first.id, ...later.map((e) => e.id)].includes(id))).toEqual([
      first.id,
      first.id,
      first.id,
      ...later.map((e) => e.id)
    ])
    // The other call went through while the first event was still waiting to retry.
    for (const event of other) expect(tenant.arrivals.find((a) => a.eventId === event.id)!.at).toBeLessThan(firstDelivered.at)
    expect(order.indexOf(other[0]!.id)).toBeLessThan(order.indexOf(other[1]!.id))
  })
})

describe("circuit breaker", () => {
  test("sustained failure opens it: attempts stop, events are kept, a probe closes it once the tenant is back", async () => {
    let healthy = false
    const tenant = scriptedTenant(() => (healthy ? 200 : 500))
    const router = await start({
      delivery: {
        timeout: "1s",
        maxAttempts: 6,
        initialBackoff: "50ms",
        maxBackoff: "100ms",
        circuitBreaker: { failureThreshold: 3, cooldown: "1s" }
      },
      hooks: [{ host: "down.example.com", url: tenant.url }]
    })
    const events = Array.from({ length: 5 }, (_, i) => joined("down.example.com", `breaker-${i}`))
    for (const event of events) expect((await router.post(event)).status).toBe(200)

    const open = () => router.metric("tenant_router_circuit_open", { tenant: "down.example.com" })
    await eventually(async () => (await open()) === 1, 3_000, "the circuit to open")
    const hitsWhenOpen = tenant.arrivals.length
    // Attempts in flight when it opened may finish; after that, silence for the cooldown.
    await Bun.sleep(600)
    expect(tenant.arrivals.length).toBeLessThanOrEqual(hitsWhenOpen + 2)
    expect(tenant.arrivals.length).toBeLessThan(events.length * 6)

    healthy = true
    await eventually(() => events.every((e) => tenant.arrivals.some((a) => a.eventId === e.id && a.status === 200)), 10_000, "every event")
    await eventually(async () => (await open()) === 0, 3_000, "the circuit to close")
    const count = (outcome: string) => router.metric("tenant_router_deliveries_total", { tenant: "down.example.com", outcome })
    await eventually(async () => (await count("delivered")) === events.length, 2_000, "every delivery recorded")
    expect(await count("failed")).toBe(0)
  })
})

describe("rate limit", () => {
  test("rateLimit: 5/s spreads deliveries out, and waiting for a token costs no attempt", async () => {
    const tenant = receiver(DEFAULT_SECRET)
    const router = await start({
      hooks: [{ host: "limited.example.com", url: `${tenant.url}/voice`, rateLimit: "5/s" }],
      delivery: { concurrencyPerTenant: 16, maxAttempts: 1 }
    })
    const events = Array.from({ length: 15 }, (_, i) => joined("limited.example.com", `limited-${i}`))
    for (const event of events) expect((await router.post(event)).status).toBe(200)
    await tenant.waitFor((r) => r.length === 15, 10_000)

    const times = tenant.received.map((r) => r.at).sort((a, b) => a - b)
    // A burst of 5, then 5 per second: the 15th cannot come before 2 s after the first.
    expect(times[14]! - times[0]!).toBeGreaterThanOrEqual(1_800)
    for (const [i, t] of times.entries()) expect(times.filter((u) => u >= t && u < t + 1_000).length, `window at ${i}`).toBeLessThanOrEqual(10)
    // With one attempt allowed, any throttle counted as an attempt would have failed a delivery.
    const delivered = () => router.metric("tenant_router_deliveries_total", { tenant: "limited.example.com", outcome: "delivered" })
    await eventually(async () => (await delivered()) === 15, 2_000, "15 delivered")
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "limited.example.com", outcome: "failed" })).toBe(0)
  })
})
