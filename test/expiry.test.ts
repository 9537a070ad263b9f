import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startScriptedEndpoint } from "./support/receiver.ts"
import { redisAvailable, startRedis } from "./support/redis.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/**
 * Freshness (a hook's `maxAge`), through the real router process and real
 * tenants: a delivery whose event is older than its hook's maxAge when its
 * attempt comes due is not sent, ends `expired`, and its call's later events go on.
 */

let rooms = 0
const uniqueRoom = (name: string) => `room-${name}-${Date.now().toString(36)}-${++rooms}`

/** LiveKit's createdAt: unix seconds, as text. */
const createdAt = (ms: number) => String(Math.floor(ms / 1000))

/** A tenant that answers each event id with `answer(id, sinceFirstHitOfThatId)`, and 401 to a request that does not verify. */
const startTenant = (answer: (id: string, sinceFirstMs: number) => number, replyHeaders: Record<string, string> = {}) => {
  const endpoint = startScriptedEndpoint(DEFAULT_SECRET, ({ id, verified, sinceFirstMs }) => (verified ? answer(id, sinceFirstMs) : 401), replyHeaders)
  return { ...endpoint, url: `${endpoint.url}/voice` }
}
type Tenant = ReturnType<typeof startTenant>

const json = async (response: Response): Promise<any> => response.json()

const postOk = async (router: RunningRouter, event: unknown) => {
  const response = await router.post(event)
  expect(response.status).toBe(200)
}

/** The delivery of one event, as the admin API lists it. */
const deliveryOf = async (router: RunningRouter, tenant: string, eventId: string, status?: string) => {
  const response = await router.admin("GET", `/v1/deliveries?tenant=${tenant}&limit=1000${status ? `&status=${status}` : ""}`)
  expect(response.status).toBe(200)
  const page = (await response.json()) as { items: Array<Record<string, any>> }
  return page.items.find((item) => item.eventId === eventId)
}

const statusOf = async (router: RunningRouter, tenant: string, eventId: string) => (await deliveryOf(router, tenant, eventId))?.status

describe("maxAge: stale events expire unsent (fast retries, 100 attempts)", () => {
  let router: RunningRouter
  let refusing: Tenant
  let fresh: Tenant
  let timeless: Tenant
  let api: Tenant
  let firstEventId = ""

  beforeAll(async () => {
    // Refuses the first event of a call for 5 s (past the 3 s maxAge), then would accept it; accepts everything else.
    refusing = startTenant((id, since) => (id === firstEventId && since < 5_000 ? 503 : 200))
    fresh = startTenant(() => 200)
    timeless = startTenant(() => 200)
    api = startTenant(() => 200)
    router = await startRouter({
      // The circuit stays closed here, so the refused event's retries go on until it expires.
      delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 1000 } },
      hooks: [
        { host: "refusing.example.com", url: refusing.url, maxAge: "3s" },
        { host: "fresh.example.com", url: fresh.url, maxAge: "3s" },
        { host: "timeless.example.com", url: timeless.url }
      ]
    })
  })

  afterAll(async () => {
    await router?.stop()
    for (const tenant of [refusing, fresh, timeless, api]) tenant?.stop()
  })

  test("a refused event expires once older than maxAge; the call's later events are still delivered, in order", async () => {
    const room = uniqueRoom("refusing")
    const first = sipParticipantEvent("participant_joined", { room, xToIp: "refusing.example.com" })
    firstEventId = first.id
    await postOk(router, first)
    await eventually(() => refusing.hitsOf(first.id).length >= 2, 5_000, "retries of the first event")
    // Later events of the call arrive while the first is retried: they wait behind it.
    await Bun.sleep(1_500)
    const later = [trackEvent(room), trackEvent(room), sipParticipantEvent("participant_left", { room, xToIp: "refusing.example.com" })]
    for (const event of later) await postOk(router, event)

    await eventually(async () => (await statusOf(router, "refusing.example.com", first.id)) === "expired", 10_000, "the first event to expire")
    await eventually(() => later.every((e) => refusing.hitsOf(e.id).some((h) => h.status === 200)), 10_000, "the later events")

    // Listed under status=expired, with its attempts and last status kept and why it ended.
    const expired = await deliveryOf(router, "refusing.example.com", first.id, "expired")
    expect(expired).toMatchObject({ status: "expired", lastStatus: 503, lastError: "expired", nextAttemptAt: null })
    expect(expired!.attempts).toBe(refusing.hitsOf(first.id).length)
    expect(expired!.attempts).toBeGreaterThanOrEqual(2)
    // Every request for it was refused, and none came after it expired.
    expect(refusing.hitsOf(first.id).every((h) => h.status === 503)).toBe(true)
    const detail = await json(await router.admin("GET", `/v1/deliveries/${expired!.id}`))
    expect(detail.history).toHaveLength(expired!.attempts)
    expect(detail.history.every((h: any) => h.status === 503)).toBe(true)

    // The later events came in the order LiveKit sent them, each once, after the first was given up.
    const delivered = refusing.hits.filter((h) => h.status === 200).map((h) => h.id)
    expect(delivered).toEqual(later.map((e) => e.id))
    const expiredAt = Date.parse(detail.updatedAt)
    for (const event of later) expect(refusing.hitsOf(event.id)[0]!.at).toBeGreaterThanOrEqual(expiredAt - 5)
    for (const event of later) expect(await statusOf(router, "refusing.example.com", event.id)).toBe("delivered")

    expect(await router.metric("tenant_router_deliveries_total", { tenant: "refusing.example.com", outcome: "expired" })).toBe(1)
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "refusing.example.com", outcome: "delivered" })).toBe(3)
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "refusing.example.com", outcome: "failed" })).toBe(0)
    // One log line says which event expired, how old it was and the maxAge.
    const line = router.logs.find((l) => l.msg === "delivery expired" && l.eventId === first.id)
    expect(line).toMatchObject({ tenant: "refusing.example.com", maxAgeMs: 3_000 })
    expect(line!.ageMs).toBeGreaterThan(3_000)
  }, 30_000)

  test("an event already older than maxAge at its first attempt is expired without being sent", async () => {
    const room = uniqueRoom("fresh")
    const stale = { ...sipParticipantEvent("participant_joined", { room, xToIp: "fresh.example.com" }), createdAt: createdAt(Date.now() - 10_000) }
    const next = trackEvent(room)
    await postOk(router, stale)
    await postOk(router, next)
    await eventually(() => fresh.hitsOf(next.id).length === 1, 10_000, "the next event of the call")
    expect(fresh.hitsOf(stale.id)).toEqual([])
    const item = await deliveryOf(router, "fresh.example.com", stale.id, "expired")
    expect(item).toMatchObject({ status: "expired", attempts: 0, lastStatus: null, lastError: "expired", nextAttemptAt: null })
    const detail = await json(await router.admin("GET", `/v1/deliveries/${item!.id}`))
    expect(detail.history).toEqual([])
    expect(await statusOf(router, "fresh.example.com", next.id)).toBe("delivered")
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "fresh.example.com", outcome: "expired" })).toBe(1)
    // Not an attempt: nothing counted as one, nothing logged as one.
    expect(router.logs.some((l) => l.msg === "delivery attempt" && l.eventId === stale.id)).toBe(false)
  }, 20_000)

  test("an expired delivery is not requeued: retry is a 409 naming its status", async () => {
    const item = (await json(await router.admin("GET", "/v1/deliveries?status=expired&tenant=fresh.example.com"))).items[0]
    const response = await router.admin("POST", `/v1/deliveries/${item.id}/retry`)
    expect(response.status).toBe(409)
    expect((await json(response)).error.message).toContain("expired")
    const recovered = await json(await router.admin("POST", `/v1/tenants/fresh.example.com/recover?since=2000-01-01`))
    expect(recovered.requeued).toBe(0)
    expect(await statusOf(router, "fresh.example.com", item.eventId)).toBe("expired")
  })

  test("without maxAge nothing expires, however old the event", async () => {
    const event = { ...sipParticipantEvent("participant_joined", { room: uniqueRoom("timeless"), xToIp: "timeless.example.com" }), createdAt: createdAt(Date.now() - 3_600_000) }
    await postOk(router, event)
    await eventually(() => timeless.hitsOf(event.id).length === 1, 10_000, "the old event")
    await eventually(async () => (await statusOf(router, "timeless.example.com", event.id)) === "delivered", 5_000, "delivered")
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "timeless.example.com", outcome: "expired" })).toBe(0)
  })

  test("maxAge through the admin API: PUT takes it, views show it, a bad one is a 400 naming the field", async () => {
    const put = await router.admin("PUT", "/v1/hooks/api.example.com", { url: api.url, maxAge: "3s" })
    expect(put.status).toBe(201)
    expect((await json(put)).maxAge).toBe("3s")
    expect((await json(await router.admin("GET", "/v1/hooks/api.example.com"))).maxAge).toBe("3s")
    expect((await json(await router.admin("GET", "/v1/hooks/timeless.example.com"))).maxAge).toBeNull()
    expect((await json(await router.admin("GET", "/v1/hooks/refusing.example.com"))).maxAge).toBe("3s")
    for (const bad of ["soon", "0s", 30]) {
      const response = await router.admin("PUT", "/v1/hooks/api.example.com", { url: api.url, maxAge: bad })
      const body = await json(response)
      expect(response.status, JSON.stringify(body)).toBe(400)
      expect(body.error.message).toContain("maxAge")
    }
    // The API hook's maxAge applies to its deliveries.
    const stale = { ...sipParticipantEvent("participant_joined", { room: uniqueRoom("api"), xToIp: "api.example.com" }), createdAt: createdAt(Date.now() - 10_000) }
    await postOk(router, stale)
    await eventually(async () => (await statusOf(router, "api.example.com", stale.id)) === "expired", 10_000, "the API hook's stale event")
    expect(api.hitsOf(stale.id)).toEqual([])
  })

  test("status=expired is in the query schema and the OpenAPI document; a bad status is still a 400", async () => {
    expect((await router.admin("GET", "/v1/deliveries?status=expired")).status).toBe(200)
    expect((await router.admin("GET", "/v1/deliveries?status=stale")).status).toBe(400)
    const spec = JSON.stringify(await json(await fetch(`${router.url}/openapi.json`)))
    expect(spec).toContain('"expired"')
    expect(spec).toContain('"maxAge"')
  })
})

test("a delivery that grew stale while the router was stopped expires at the restart, unsent", async () => {
  let refuse = true
  const tenant = startTenant(() => (refuse ? 503 : 200))
  const config = {
    delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4 },
    hooks: [{ host: "restart.example.com", url: tenant.url, maxAge: "3s" }]
  }
  let router = await startRouter(config)
  const dir = router.dir
  try {
    const room = uniqueRoom("restart")
    const event = sipParticipantEvent("participant_joined", { room, xToIp: "restart.example.com" })
    await postOk(router, event)
    await eventually(() => tenant.hitsOf(event.id).length >= 1, 5_000, "a first attempt")
    // Stopped (gracefully) while the delivery is pending, and started again once it is older than maxAge.
    const stoppingAt = Date.now()
    router.process.kill("SIGTERM")
    await router.process.exited
    refuse = false
    await Bun.sleep(Math.max(0, Number(event.createdAt) * 1000 + 3_500 - stoppingAt))
    const hitsBefore = tenant.hitsOf(event.id).length
    router = await startRouter(config, dir)
    await eventually(async () => (await statusOf(router, "restart.example.com", event.id)) === "expired", 10_000, "the expiry after the restart")
    expect(tenant.hitsOf(event.id).length).toBe(hitsBefore)
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "restart.example.com", outcome: "expired" })).toBe(1)
    // The SQLite file's queue depth (kept by triggers) counts it out.
    await eventually(async () => (await router.metric("tenant_router_queue_depth")) === 0, 5_000, "an empty queue")
    expect((await json(await router.admin("GET", "/v1/deliveries?status=pending"))).items).toEqual([])
  } finally {
    await router.stop()
    tenant.stop()
  }
}, 30_000)

test("an event waiting at an open circuit expires on time, not when the circuit lets it through", async () => {
  const tenant = startTenant(() => 503)
  const router = await startRouter({
    delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { failureThreshold: 1, cooldown: "1m" } },
    hooks: [{ host: "circuit.example.com", url: tenant.url, maxAge: "2s" }]
  })
  try {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("circuit"), xToIp: "circuit.example.com" })
    await postOk(router, event)
    // One refusal opens the circuit for a minute; the retry waits at the gate, where it grows stale.
    await eventually(async () => (await statusOf(router, "circuit.example.com", event.id)) === "expired", 6_000, "the expiry at the open circuit")
    expect(tenant.hitsOf(event.id)).toHaveLength(1)
    expect(await deliveryOf(router, "circuit.example.com", event.id)).toMatchObject({ attempts: 1, lastStatus: 503, lastError: "expired" })
    expect(await router.metric("tenant_router_circuit_open", { tenant: "circuit.example.com" })).toBe(1)
  } finally {
    await router.stop()
    tenant.stop()
  }
}, 20_000)

test("a retry due after the event goes stale does not hold it pending: it expires on time", async () => {
  // Retry-After: 60 puts the retry a minute away (maxBackoff 1m); the event is stale after 2 s.
  const tenant = startTenant(() => 429, { "retry-after": "60" })
  const router = await startRouter({
    delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "1m", circuitBreaker: { failureThreshold: 1000 } },
    hooks: [{ host: "later.example.com", url: tenant.url, maxAge: "2s" }]
  })
  try {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("later"), xToIp: "later.example.com" })
    await postOk(router, event)
    await eventually(() => tenant.hitsOf(event.id).length === 1, 5_000, "the first attempt")
    await eventually(async () => (await statusOf(router, "later.example.com", event.id)) === "expired", 6_000, "the expiry before the retry")
    expect(tenant.hitsOf(event.id)).toHaveLength(1)
    expect(await deliveryOf(router, "later.example.com", event.id)).toMatchObject({ attempts: 1, lastStatus: 429, lastError: "expired" })
  } finally {
    await router.stop()
    tenant.stop()
  }
}, 20_000)

test.skipIf(!redisAvailable())("on Redis too: a stale event expires unsent, its call's next event is delivered, nothing stays held", async () => {
  const redis = await startRedis()
  const tenant = startTenant(() => 200)
  const router = await startRouter((dir) => {
    const { store: _, ...config } = testConfig(dir, { hooks: [{ host: "redis.example.com", url: tenant.url, maxAge: "3s" }] })
    return { ...config, store: { redis: redis.url(0), lease: "2s" } }
  })
  try {
    const room = uniqueRoom("redis")
    const stale = { ...sipParticipantEvent("participant_joined", { room, xToIp: "redis.example.com" }), createdAt: createdAt(Date.now() - 10_000) }
    const next = trackEvent(room)
    await postOk(router, stale)
    await postOk(router, next)
    await eventually(() => tenant.hitsOf(next.id).length === 1, 10_000, "the next event of the call")
    expect(tenant.hitsOf(stale.id)).toEqual([])
    expect(await deliveryOf(router, "redis.example.com", stale.id, "expired")).toMatchObject({ status: "expired", attempts: 0, lastError: "expired" })
    await eventually(async () => (await statusOf(router, "redis.example.com", next.id)) === "delivered", 5_000, "delivered")
    expect((await json(await router.admin("GET", "/v1/deliveries?status=pending"))).items).toEqual([])
    await eventually(async () => (await router.metric("tenant_router_queue_depth")) === 0, 5_000, "an empty queue")
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "redis.example.com", outcome: "expired" })).toBe(1)
  } finally {
    await router.stop()
    tenant.stop()
    await redis.stop()
  }
}, 30_000)
