import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Webhook } from "standardwebhooks"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, startScriptedEndpoint, type Receiver, type ScriptedHit } from "./support/receiver.ts"
import { redisAvailable, startRedis } from "./support/redis.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/**
 * Operational alerts (`alerts`), through the real router process: real
 * tenants fail and recover, and a real alerts endpoint verifies every alert
 * with `standardwebhooks`. Alerts are deliveries to the `@alerts` pseudo-tenant.
 */

const ALERT_SECRET = "whsec_" + Buffer.alloc(32, 9).toString("base64")
const TENANT_TOKEN = "tenant-token-for-alerts-tests-0123"
const FLAKY = "flaky.example.com"
const DEAD = "dead.example.com"
const REFUSING = "refusing.example.com"
const DOWN = "down.example.com"

let rooms = 0
const uniqueRoom = (name: string) => `room-${name}-${Date.now().toString(36)}-${++rooms}`

/** An alerts endpoint: verifies every request with `secret` and answers `answer(n)` to the n-th (from 0); records every request. */
const startAlerts = (secret: string, answer: (hit: number) => number = () => 200) => {
  const endpoint = startScriptedEndpoint(secret, ({ n }) => answer(n))
  const verified = () => endpoint.hits.filter((h) => h.json !== undefined)
  return {
    ...endpoint,
    url: `${endpoint.url}/alerts`,
    /** The verified alerts of one type, each once (the first time it arrived). */
    ofType: (type: string) => verified().filter((h, i, all) => h.json.type === type && all.findIndex((o) => o.id === h.id) === i)
  }
}
type Alerts = ReturnType<typeof startAlerts>
type Hit = ScriptedHit

const json = async (response: Response): Promise<any> => response.json()

const postOk = async (router: RunningRouter, event: unknown) => expect((await router.post(event)).status).toBe(200)

const deliveries = async (router: RunningRouter, tenant: string): Promise<Array<Record<string, any>>> => {
  const response = await router.admin("GET", `/v1/deliveries?tenant=${encodeURIComponent(tenant)}&limit=1000`)
  expect(response.status).toBe(200)
  return (await json(response)).items
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

/** Every alert is `{type, timestamp, data}` and nothing else, with an ISO-8601 timestamp. */
const expectEnvelope = (hit: Hit, type: string) => {
  expect(Object.keys(hit.json)).toEqual(["type", "timestamp", "data"])
  expect(hit.json.type).toBe(type)
  expect(hit.json.timestamp).toMatch(ISO)
  expect(hit.headers["content-type"]).toBe("application/json")
}

const HOUR = 3_600_000

describe("alerts with their own secret: every type, its data and its id", () => {
  let router: RunningRouter
  let alerts: Alerts
  let flaky: Receiver
  let dead: Receiver
  let refusing: Receiver

  beforeAll(async () => {
    // The first alert is refused once, so its retry shows the webhook-id is stable.
    alerts = startAlerts(ALERT_SECRET, (hit) => (hit === 0 ? 500 : 200))
    // Two failures open the circuit; the probe after the cooldown succeeds.
    flaky = startReceiver(DEFAULT_SECRET, [{ status: 503 }, { status: 503 }, { status: 200 }])
    // Up, but refusing every delivery with a retryable 429: its deliveries run out of attempts (an outage would only pause them).
    dead = startReceiver(DEFAULT_SECRET, [{ status: 429 }])
    refusing = startReceiver(DEFAULT_SECRET, [{ status: 400 }])
    router = await startRouter({
      delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 2, cooldown: "300ms" } },
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [FLAKY] }] },
      alerts: { url: alerts.url, secret: ALERT_SECRET },
      hooks: [
        { host: FLAKY, url: `${flaky.url}/voice` },
        { host: DEAD, url: `${dead.url}/voice` },
        { host: REFUSING, url: `${refusing.url}/voice` }
      ]
    })
  })

  afterAll(async () => {
    await router?.stop()
    for (const server of [alerts, flaky, dead, refusing]) server?.stop()
  })

  test("domain.unroutable: one per domain and reason however many events, a second for another domain and for another reason", async () => {
    const flood = Array.from({ length: 20 }, () => sipParticipantEvent("participant_joined", { room: uniqueRoom("nobody"), xToIp: "calls.nobody.example.net" }))
    // Half in one turn of the router's event loop, half one by one.
    await Promise.all(flood.slice(0, 10).map((event) => postOk(router, event)))
    for (const event of flood.slice(10)) await postOk(router, event)
    const other = sipParticipantEvent("participant_joined", { room: uniqueRoom("other"), xToIp: "calls.other.example.net" })
    await postOk(router, other)
    const headerless = sipParticipantEvent("participant_joined", { room: uniqueRoom("headerless") })
    await postOk(router, headerless)

    await eventually(() => alerts.ofType("domain.unroutable").length === 3, 10_000, "three domain.unroutable alerts")
    await Bun.sleep(300)
    const sent = alerts.ofType("domain.unroutable")
    expect(sent).toHaveLength(3)
    const [nobody, otherDomain, none] = ["calls.nobody.example.net", "calls.other.example.net", null].map((domain) => sent.find((h) => h.json.data.domain === domain)!)

    expectEnvelope(nobody!, "domain.unroutable")
    const firstIds = flood.map((e) => e.id)
    expect(firstIds).toContain(nobody!.json.data.eventId)
    expect(nobody!.json.data).toEqual({
      domain: "calls.nobody.example.net",
      reason: "unknown_domain",
      headers: { xToIp: "calls.nobody.example.net", to: null, dialled: "+15557654321" },
      eventId: nobody!.json.data.eventId
    })
    // The window is the hour (by default) the event arrived in, counted from the epoch.
    const windowOf = (hit: Hit) => Math.floor(Date.parse(hit.json.timestamp) / HOUR) * HOUR
    expect(nobody!.id).toBe(`domain.unroutable.unknown_domain.calls.nobody.example.net.${windowOf(nobody!)}`)

    expect(otherDomain!.json.data).toEqual({
      domain: "calls.other.example.net",
      reason: "unknown_domain",
      headers: { xToIp: "calls.other.example.net", to: null, dialled: "+15557654321" },
      eventId: other.id
    })
    expect(otherDomain!.id).toBe(`domain.unroutable.unknown_domain.calls.other.example.net.${windowOf(otherDomain!)}`)

    expect(none!.json.data).toEqual({ domain: null, reason: "missing_header", headers: { xToIp: null, to: null, dialled: "+15557654321" }, eventId: headerless.id })
    expect(none!.id).toBe(`domain.unroutable.missing_header.~none~.${windowOf(none!)}`)

    // Every event is still listed as unroutable; only the alerts are one per window.
    const listed = await json(await router.admin("GET", "/v1/unroutable?limit=100"))
    expect(listed.items.filter((item: any) => item.domain === "calls.nobody.example.net")).toHaveLength(20)
    expect(await router.metric("tenant_router_alerts_total", { type: "domain.unroutable" })).toBe(3)
  }, 30_000)

  test("the webhook-id of an alert is stable across its retries; alerts are listed under @alerts", async () => {
    const refused = alerts.hits[0]!
    expect(refused.status).toBe(500)
    const sameId = () => alerts.hits.filter((h) => h.id === refused.id)
    await eventually(() => sameId().length === 2, 5_000, "the first alert's retry")
    const retried = sameId()[1]!
    expect(retried.status).toBe(200)
    expect(retried.body).toBe(refused.body)
    expect(retried.json).toEqual(refused.json)
    // A new timestamp is signed each attempt; the id stays.
    expect(Number(retried.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(Number(refused.headers["webhook-timestamp"]))
    // Every other request is a different alert: sent once.
    const ids = alerts.hits.filter((h) => h !== refused).map((h) => h.id)
    expect(new Set(ids).size).toBe(ids.length)

    const listed = await deliveries(router, "@alerts")
    const first = listed.find((d) => d.eventId === refused!.id)
    expect(first).toMatchObject({ tenant: "@alerts", url: alerts.url, room: null, type: refused!.json.type, status: "delivered", attempts: 2, lastStatus: 200 })
    const detail = await json(await router.admin("GET", `/v1/deliveries/${first!.id}`))
    expect(detail.history.map((h: any) => h.status)).toEqual([500, 200])
    // The alerts are the operator's: a tenant token cannot list them; a name that is neither a host nor @alerts is a 400.
    expect((await router.admin("GET", "/v1/deliveries?tenant=@alerts", undefined, TENANT_TOKEN)).status).toBe(403)
    const bad = await router.admin("GET", "/v1/deliveries?tenant=@alert")
    expect(bad.status).toBe(400)
    expect((await json(bad)).error.message).toContain("expected a host name")
  })

  test("tenant.failing when a circuit opens, tenant.recovered when it closes, with the same streak in both ids", async () => {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("flaky"), xToIp: FLAKY })
    await postOk(router, event)
    await flaky.waitFor((received) => received.length === 3)
    const byTenant = (type: string) => alerts.ofType(type).filter((h) => h.json.data.tenant === FLAKY)
    await eventually(() => byTenant("tenant.recovered").length === 1, 5_000, "tenant.recovered")
    const [failing] = byTenant("tenant.failing")
    const [recovered] = byTenant("tenant.recovered")
    expectEnvelope(failing!, "tenant.failing")
    expectEnvelope(recovered!, "tenant.recovered")
    expect(failing!.json.data).toEqual({ tenant: FLAKY, since: failing!.json.data.since, lastStatus: 503, lastError: null })
    const since = Date.parse(failing!.json.data.since)
    // The streak began at the first failure, before the circuit opened at the second.
    expect(since).toBeLessThan(Date.parse(failing!.json.timestamp))
    expect(failing!.id).toBe(`tenant.failing.${FLAKY}.${since}`)
    expect(recovered!.json.data).toEqual({ tenant: FLAKY, downSeconds: (Date.parse(recovered!.json.timestamp) - since) / 1000 })
    // Down for at least the cooldown.
    expect(recovered!.json.data.downSeconds).toBeGreaterThanOrEqual(0.3)
    expect(recovered!.id).toBe(`tenant.recovered.${FLAKY}.${since}`)
  })

  test("delivery.failed when a delivery runs out of attempts, and again after it is requeued and fails again", async () => {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("dead"), xToIp: DEAD })
    await postOk(router, event)
    const failedOf = () => alerts.ofType("delivery.failed").filter((h) => h.json.data.eventId === event.id)
    await eventually(() => failedOf().length === 1, 10_000, "delivery.failed")
    const [delivery] = (await deliveries(router, DEAD)).filter((d) => d.eventId === event.id)
    expect(delivery).toMatchObject({ status: "failed", attempts: 3, lastStatus: 429 })
    const [first] = failedOf()
    expectEnvelope(first!, "delivery.failed")
    expect(first!.json.data).toEqual({ tenant: DEAD, deliveryId: delivery!.id, eventId: event.id, eventType: "participant_joined", attempts: 3, lastStatus: 429, lastError: null })
    expect(first!.id).toBe(`delivery.failed.${delivery!.id}.${Date.parse(delivery!.createdAt)}`)
    // A 429 says the tenant is up: no circuit opened, so no tenant.failing.
    expect(alerts.ofType("tenant.failing").filter((h) => h.json.data.tenant === DEAD)).toHaveLength(0)

    const retried = await router.admin("POST", `/v1/deliveries/${delivery!.id}/retry`)
    expect(retried.status).toBe(202)
    const requeuedAt = Date.parse((await json(retried)).updatedAt)
    await eventually(() => failedOf().length === 2, 10_000, "a second delivery.failed")
    const second = failedOf()[1]!
    expect(second.id).toBe(`delivery.failed.${delivery!.id}.${requeuedAt}`)
    expect(second.json.data).toEqual({ ...first!.json.data, attempts: 3 })
    expect(alerts.ofType("tenant.failing").filter((h) => h.json.data.tenant === DEAD)).toHaveLength(0)
  }, 20_000)

  test("a final answer (400) is a delivery.failed after one attempt, and opens no circuit", async () => {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("refusing"), xToIp: REFUSING })
    await postOk(router, event)
    await eventually(() => alerts.ofType("delivery.failed").some((h) => h.json.data.eventId === event.id), 5_000, "delivery.failed")
    const alert = alerts.ofType("delivery.failed").find((h) => h.json.data.eventId === event.id)!
    expect(alert.json.data).toMatchObject({ tenant: REFUSING, eventId: event.id, attempts: 1, lastStatus: 400, lastError: null })
    expect(alerts.ofType("tenant.failing").filter((h) => h.json.data.tenant === REFUSING)).toHaveLength(0)
  })

  test("every alert is signed with alerts.secret, not with signing.secret", () => {
    expect(alerts.hits.length).toBeGreaterThan(0)
    expect(alerts.hits.every((h) => h.json !== undefined)).toBe(true)
    const hit = alerts.hits[0]!
    expect(() => new Webhook(DEFAULT_SECRET).verify(hit.body, hit.headers)).toThrow()
  })
})

describe("alerts signed with signing.secret, filtered by events", () => {
  let router: RunningRouter
  let alerts: Alerts
  let down: Receiver
  let refusing: Receiver

  beforeAll(async () => {
    alerts = startAlerts(DEFAULT_SECRET)
    down = startReceiver(DEFAULT_SECRET, [{ status: 503 }])
    refusing = startReceiver(DEFAULT_SECRET, [{ status: 400 }])
    router = await startRouter({
      // The circuit never opens here; the failing tenant is disabled after a second.
      delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 1000 }, disableAfter: "1s" },
      alerts: { url: alerts.url, events: ["tenant.disabled"] },
      hooks: [
        { host: DOWN, url: `${down.url}/voice` },
        { host: REFUSING, url: `${refusing.url}/voice` }
      ]
    })
  })

  afterAll(async () => {
    await router?.stop()
    for (const server of [alerts, down, refusing]) server?.stop()
  })

  test("tenant.disabled with the streak's start; the types left out of events are not sent", async () => {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("down"), xToIp: DOWN })
    await postOk(router, event)
    // Raised, and filtered out: a delivery.failed (a final 400) and a domain.unroutable.
    await postOk(router, sipParticipantEvent("participant_joined", { room: uniqueRoom("refusing"), xToIp: REFUSING }))
    await postOk(router, sipParticipantEvent("participant_joined", { room: uniqueRoom("nobody"), xToIp: "calls.nobody.example.net" }))

    await eventually(() => alerts.ofType("tenant.disabled").length === 1, 10_000, "tenant.disabled")
    const [disabled] = alerts.ofType("tenant.disabled")
    expectEnvelope(disabled!, "tenant.disabled")
    expect(disabled!.json.data).toEqual({ tenant: DOWN, failingSince: disabled!.json.data.failingSince })
    const failingSince = Date.parse(disabled!.json.data.failingSince)
    expect(disabled!.id).toBe(`tenant.disabled.${DOWN}.${failingSince}`)
    // Disabled once the streak was a second old, at the first failure after that.
    expect(Date.parse(disabled!.json.timestamp) - failingSince).toBeGreaterThanOrEqual(1_000)
    const view = await json(await router.admin("GET", `/v1/hooks/${DOWN}`))
    expect(view).toMatchObject({ disabled: true, disabledAt: disabled!.json.timestamp })

    // Its delivery ends failed (disabled): tenant.disabled covers it, no delivery.failed (filtered here anyway).
    await eventually(async () => (await deliveries(router, DOWN)).some((d) => d.status === "failed"), 5_000, "the delivery to end")
    await Bun.sleep(500)
    expect(alerts.hits.map((h) => h.json?.type)).toEqual(["tenant.disabled"])
    expect((await deliveries(router, "@alerts")).map((d) => d.type)).toEqual(["tenant.disabled"])
    expect(await router.metric("tenant_router_alerts_total", { type: "tenant.disabled" })).toBe(1)
    for (const type of ["delivery.failed", "domain.unroutable", "tenant.failing"]) expect(await router.metric("tenant_router_alerts_total", { type })).toBe(0)
  }, 20_000)
})

describe("an alerts endpoint that is down", () => {
  let router: RunningRouter
  let alerts: Alerts
  let refusing: Receiver
  const answer = { status: 503 }

  beforeAll(async () => {
    alerts = startAlerts(DEFAULT_SECRET, () => answer.status)
    refusing = startReceiver(DEFAULT_SECRET, [{ status: 400 }])
    router = await startRouter({
      delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 2, cooldown: "200ms" }, disableAfter: "300ms" },
      alerts: { url: alerts.url },
      // Two tenants, each failing once: neither is failing long enough to be disabled.
      hooks: [
        { host: REFUSING, url: `${refusing.url}/voice` },
        { host: DOWN, url: `${refusing.url}/voice` }
      ]
    })
  })

  afterAll(async () => {
    await router?.stop()
    for (const server of [alerts, refusing]) server?.stop()
  })

  test("raises no alerts about itself, is never disabled, and the alerts it missed while down wait for it, then arrive", async () => {
    const first = sipParticipantEvent("participant_joined", { room: uniqueRoom("a"), xToIp: REFUSING })
    await postOk(router, first)
    await eventually(async () => (await deliveries(router, "@alerts")).length === 1, 10_000, "the alert")
    const [alert] = await deliveries(router, "@alerts")
    // Two failures opened the endpoint's circuit; its probes since spend none of the alert's attempts.
    await eventually(() => alerts.hits.length >= 5, 10_000, "probes of the alerts endpoint")
    expect(alerts.hits.every((h) => h.id === alert!.eventId)).toBe(true)
    expect(await deliveries(router, "@alerts")).toMatchObject([{ type: "delivery.failed", status: "pending", attempts: 2, lastStatus: 503 }])

    // Down for longer than disableAfter, yet a later alert is still queued (never disabled).
    const second = sipParticipantEvent("participant_joined", { room: uniqueRoom("b"), xToIp: DOWN })
    await postOk(router, second)
    await eventually(async () => (await deliveries(router, "@alerts")).length === 2, 10_000, "the second alert")
    expect(router.logs.some((l) => l.msg === "tenant disabled")).toBe(false)
    for (const type of ["tenant.failing", "tenant.disabled"]) expect(await router.metric("tenant_router_alerts_total", { type })).toBe(0)

    // Back up: both arrive, each with the webhook-id it was probed with.
    answer.status = 200
    await eventually(async () => (await deliveries(router, "@alerts")).every((d) => d.status === "delivered"), 10_000, "both alerts delivered")
    const delivered = alerts.hits.filter((h) => h.status === 200)
    expect(delivered.map((h) => h.json.data.eventId).sort()).toEqual([first.id, second.id].sort())
    expect(delivered.find((h) => h.json.data.eventId === first.id)!.id).toBe(alert!.eventId)
  }, 30_000)
})

/** Posts `count` unroutable events for `domain` and waits until the router lists them. */
const unroutableFlood = async (router: RunningRouter, domain: string, count: number) => {
  const events = Array.from({ length: count }, () => sipParticipantEvent("participant_joined", { room: uniqueRoom("flood"), xToIp: domain }))
  await Promise.all(events.map((event) => postOk(router, event)))
  return events
}

test("domain.unroutable is made once per window across a restart: the store remembers what the process forgot", async () => {
  const dir = mkdtempSync(join(tmpdir(), "router-alerts-"))
  const alerts = startAlerts(DEFAULT_SECRET)
  // A day's window: the restart cannot straddle a window's end but once a day.
  const config = testConfig(dir, { alerts: { url: alerts.url, unroutableWindow: "1d" } })
  let router = await startRouter(config, dir)
  try {
    await unroutableFlood(router, "calls.gone.example.net", 5)
    await eventually(() => alerts.ofType("domain.unroutable").length === 1, 5_000, "the first alert")
    await router.stop()
    router = await startRouter(config, dir)
    await unroutableFlood(router, "calls.gone.example.net", 5)
    const other = await unroutableFlood(router, "calls.new.example.net", 1)
    await eventually(() => alerts.ofType("domain.unroutable").length === 2, 5_000, "the other domain's alert")
    await Bun.sleep(300)
    expect(alerts.ofType("domain.unroutable").map((h) => h.json.data.domain)).toEqual(["calls.gone.example.net", "calls.new.example.net"])
    expect(alerts.ofType("domain.unroutable")[1]!.json.data.eventId).toBe(other[0]!.id)
    expect(alerts.hits).toHaveLength(2)
    expect(await router.metric("tenant_router_alerts_total", { type: "domain.unroutable" })).toBe(1)
  } finally {
    await router.stop()
    alerts.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}, 30_000)

test.skipIf(!redisAvailable())("on Redis, two instances flooded with one domain's events make one domain.unroutable between them", async () => {
  const redis = await startRedis()
  const alerts = startAlerts(DEFAULT_SECRET)
  const onRedis = (dir: string) => {
    const { store: _, ...config } = testConfig(dir, { alerts: { url: alerts.url, unroutableWindow: "1d" } })
    return { ...config, store: { redis: redis.url(0), lease: "2s" } }
  }
  const routers = [await startRouter(onRedis), await startRouter(onRedis)]
  try {
    await Promise.all(routers.map((router) => unroutableFlood(router, "calls.shared-gone.example.net", 10)))
    await eventually(() => alerts.ofType("domain.unroutable").length === 1, 5_000, "the alert")
    await Bun.sleep(500)
    expect(alerts.hits).toHaveLength(1)
    expect(alerts.hits[0]!.json.data).toMatchObject({ domain: "calls.shared-gone.example.net", reason: "unknown_domain" })
    const counted = await Promise.all(routers.map((router) => router.metric("tenant_router_alerts_total", { type: "domain.unroutable" })))
    expect(counted.sort()).toEqual([0, 1])
  } finally {
    for (const router of routers) await router.stop()
    alerts.stop()
    await redis.stop()
  }
}, 30_000)

test.skipIf(!redisAvailable())("on Redis, a tenant failing on two instances is one streak: one tenant.failing between them", async () => {
  const redis = await startRedis()
  const alerts = startAlerts(DEFAULT_SECRET)
  // Up for the first request, down from then on.
  const down = startReceiver(DEFAULT_SECRET, [{ status: 200 }, { status: 503 }])
  const onRedis = (dir: string) => {
    const { store: _, ...config } = testConfig(dir, {
      alerts: { url: alerts.url, events: ["tenant.failing"] },
      delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { failureThreshold: 2, cooldown: "5s" } },
      hooks: [{ host: DOWN, url: `${down.url}/voice` }]
    })
    return { ...config, store: { redis: redis.url(0), lease: "2s" } }
  }
  const [first, second] = [await startRouter(onRedis), await startRouter(onRedis)]
  try {
    // The second instance knows the tenant as healthy (a delivery went through) ...
    await postOk(second!, sipParticipantEvent("participant_joined", { room: uniqueRoom("up-b"), xToIp: DOWN }))
    await down.waitFor((received) => received.length === 1)
    // ... and the streak has begun on the first instance when the second sees its first failure.
    await postOk(first!, sipParticipantEvent("participant_joined", { room: uniqueRoom("down-a"), xToIp: DOWN }))
    await down.waitFor((received) => received.length >= 2)
    await Bun.sleep(200)
    await postOk(second!, sipParticipantEvent("participant_joined", { room: uniqueRoom("down-b"), xToIp: DOWN }))
    await eventually(async () => (await first!.metric("tenant_router_circuit_open", { tenant: DOWN })) === 1, 5_000, "the first circuit open")
    await eventually(async () => (await second!.metric("tenant_router_circuit_open", { tenant: DOWN })) === 1, 5_000, "the second circuit open")
    await eventually(() => alerts.ofType("tenant.failing").length >= 1, 5_000, "tenant.failing")
    await Bun.sleep(500)
    expect(alerts.ofType("tenant.failing").map((h) => h.id)).toHaveLength(1)
    const counted = await Promise.all([first!, second!].map((router) => router.metric("tenant_router_alerts_total", { type: "tenant.failing" })))
    expect(counted.sort()).toEqual([0, 1])
  } finally {
    for (const router of [first, second]) await router?.stop()
    alerts.stop()
    down.stop()
    await redis.stop()
  }
}, 30_000)

describe("tenant.recovered tells of the streak's end, not of a circuit closing", () => {
  const tenantConfig = (dir: string, alerts: Alerts, url: string) =>
    testConfig(dir, {
      alerts: { url: alerts.url, events: ["tenant.failing", "tenant.recovered"] },
      delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { failureThreshold: 2, cooldown: "300ms" } },
      hooks: [{ host: FLAKY, url: `${url}/voice` }]
    })

  test("a probe answered 400 closes the circuit while the tenant still fails: no recovery until a 2xx, and one failing for the streak", async () => {
    const dir = mkdtempSync(join(tmpdir(), "router-alerts-"))
    const alerts = startAlerts(DEFAULT_SECRET)
    // Opens at the second 503; the probe's 400 closes it; it opens again; the next probe's 200 ends the streak.
    const tenant = startReceiver(DEFAULT_SECRET, [{ status: 503 }, { status: 503 }, { status: 400 }, { status: 503 }, { status: 503 }, { status: 200 }])
    const router = await startRouter(tenantConfig(dir, alerts, tenant.url), dir)
    try {
      await postOk(router, sipParticipantEvent("participant_joined", { room: uniqueRoom("probe-a"), xToIp: FLAKY }))
      await tenant.waitFor((received) => received.length === 3)
      await Bun.sleep(300)
      expect(alerts.ofType("tenant.recovered")).toHaveLength(0)
      await postOk(router, sipParticipantEvent("participant_joined", { room: uniqueRoom("probe-b"), xToIp: FLAKY }))
      await tenant.waitFor((received) => received.length === 6)
      await eventually(() => alerts.ofType("tenant.recovered").length === 1, 5_000, "tenant.recovered")
      await Bun.sleep(300)
      const [failing] = alerts.ofType("tenant.failing")
      const [recovered] = alerts.ofType("tenant.recovered")
      expect(alerts.ofType("tenant.failing")).toHaveLength(1)
      expect(alerts.ofType("tenant.recovered")).toHaveLength(1)
      const since = Date.parse(failing!.json.data.since)
      expect(recovered!.id).toBe(`tenant.recovered.${FLAKY}.${since}`)
      // It recovered at the 200, after the 400 had closed the circuit once.
      expect(Date.parse(recovered!.json.timestamp)).toBeGreaterThanOrEqual(tenant.received[5]!.at - 5)
    } finally {
      await router.stop()
      alerts.stop()
      tenant.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)

  test("a router restarted while the tenant is down sends the tenant.recovered the one before it alerted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "router-alerts-"))
    const alerts = startAlerts(DEFAULT_SECRET)
    const down = startReceiver(DEFAULT_SECRET, [{ status: 503 }])
    const config = (url: string) => ({ ...tenantConfig(dir, alerts, url), delivery: { ...tenantConfig(dir, alerts, url).delivery, maxAttempts: 50 } })
    let router = await startRouter(config(down.url), dir)
    try {
      await postOk(router, sipParticipantEvent("participant_joined", { room: uniqueRoom("restart"), xToIp: FLAKY }))
      await eventually(() => alerts.ofType("tenant.failing").length === 1, 5_000, "tenant.failing")
      await router.stop()
      down.stop()
      // Back up on the same address: the pending delivery's 2xx, in the new process, ends the streak.
      const up = startReceiver(DEFAULT_SECRET, [{ status: 200 }], down.port)
      router = await startRouter(config(up.url), dir)
      await up.waitFor((received) => received.length === 1)
      await eventually(() => alerts.ofType("tenant.recovered").length === 1, 5_000, "tenant.recovered after the restart")
      const since = Date.parse(alerts.ofType("tenant.failing")[0]!.json.data.since)
      expect(alerts.ofType("tenant.recovered")[0]!.id).toBe(`tenant.recovered.${FLAKY}.${since}`)
      up.stop()
    } finally {
      await router.stop()
      alerts.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
