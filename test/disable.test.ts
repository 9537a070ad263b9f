import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startScriptedEndpoint } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/**
 * Auto-disable (`delivery.disableAfter`), through the real router process and
 * real tenants: a tenant whose attempts have all failed for that long is
 * disabled; its deliveries end failed ("disabled") unsent until it is enabled,
 * and recover replays them. The state is in the store, so it survives a restart.
 */

let rooms = 0
const uniqueRoom = (name: string) => `room-${name}-${Date.now().toString(36)}-${++rooms}`

/** A tenant answering `status.value` to every request that verifies (401 to any other); it records the event ids it was sent. */
const startTenant = (initial: number) => {
  const status = { value: initial }
  const endpoint = startScriptedEndpoint(DEFAULT_SECRET, ({ verified }) => (verified ? status.value : 401))
  return { ...endpoint, url: `${endpoint.url}/voice`, status }
}
type Tenant = ReturnType<typeof startTenant>

const TENANT_TOKEN = "tenant-token-for-disable-tests-0123"
const DOWN = "down.example.com"
const OTHER = "other.example.com"

const json = async (response: Response): Promise<any> => response.json()

const deliveryOf = async (router: RunningRouter, tenant: string, eventId: string) => {
  const page = await json(await router.admin("GET", `/v1/deliveries?tenant=${tenant}&limit=1000`))
  return (page.items as Array<Record<string, any>>).find((item) => item.eventId === eventId)
}

const postOk = async (router: RunningRouter, event: unknown) => expect((await router.post(event)).status).toBe(200)

const hookView = async (router: RunningRouter, host: string) => json(await router.admin("GET", `/v1/hooks/${host}`))

describe("disableAfter: a tenant failing for that long is disabled until enabled", () => {
  let dir: string
  let router: RunningRouter
  let down: Tenant
  let other: Tenant
  const config = () =>
    testConfig(dir, {
      delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 1000 }, disableAfter: "1s" },
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [DOWN] }] },
      hooks: [
        { host: DOWN, url: down.url },
        { host: OTHER, url: other.url }
      ]
    })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "router-disable-"))
    down = startTenant(503)
    other = startTenant(200)
    router = await startRouter(config(), dir)
  })

  afterAll(async () => {
    await router?.stop()
    down?.stop()
    other?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test("disabled after failing for 1s; pending and new deliveries end failed (disabled) unsent; survives a restart; enable then recover replays them", async () => {
    expect(await hookView(router, DOWN)).toMatchObject({ host: DOWN, disabled: false, disabledAt: null })
    const first = sipParticipantEvent("participant_joined", { room: uniqueRoom("a"), xToIp: DOWN })
    const second = sipParticipantEvent("participant_joined", { room: uniqueRoom("b"), xToIp: DOWN })
    await postOk(router, first)
    await postOk(router, second)

    await eventually(async () => (await hookView(router, DOWN)).disabled === true, 10_000, "the tenant to be disabled")
    const view = await hookView(router, DOWN)
    expect(Date.parse(view.disabledAt)).toBeGreaterThan(0)
    for (const event of [first, second]) {
      await eventually(async () => (await deliveryOf(router, DOWN, event.id))?.status === "failed", 5_000, "a pending delivery to end failed")
      expect(await deliveryOf(router, DOWN, event.id)).toMatchObject({ status: "failed", lastError: "disabled" })
    }
    // Retries had been going on for at least the second (the streak), all refused.
    expect(down.hitsOf(first.id).length).toBeGreaterThanOrEqual(2)
    expect(down.hits.every((h) => h.status === 503)).toBe(true)

    // A new delivery is not sent at all.
    const hitsBefore = down.hits.length
    const third = sipParticipantEvent("participant_joined", { room: uniqueRoom("c"), xToIp: DOWN })
    await postOk(router, third)
    await eventually(async () => (await deliveryOf(router, DOWN, third.id))?.status === "failed", 5_000, "the new delivery to end failed")
    expect(await deliveryOf(router, DOWN, third.id)).toMatchObject({ status: "failed", lastError: "disabled", attempts: 0 })
    await Bun.sleep(300)
    expect(down.hits.length).toBe(hitsBefore)
    expect(down.hitsOf(third.id)).toHaveLength(0)

    // The other tenant is untouched.
    const fine = sipParticipantEvent("participant_joined", { room: uniqueRoom("ok"), xToIp: OTHER })
    await postOk(router, fine)
    await eventually(() => other.hitsOf(fine.id).length === 1, 5_000, "the other tenant's delivery")
    expect((await hookView(router, OTHER)).disabled).toBe(false)

    // Counted as failed deliveries; one warning line.
    expect(await router.metric("tenant_router_deliveries_total", { tenant: DOWN, outcome: "failed" })).toBe(3)
    expect(router.logs.filter((l) => l.msg === "tenant disabled" && l.tenant === DOWN)).toHaveLength(1)
    // The list shows it too.
    const list = await json(await router.admin("GET", "/v1/hooks"))
    expect(list.hooks.find((h: any) => h.host === DOWN)).toMatchObject({ disabled: true, disabledAt: view.disabledAt })

    // A restart keeps it disabled: new deliveries still end failed unsent.
    await router.stop()
    router = await startRouter(config(), dir)
    expect(await hookView(router, DOWN)).toMatchObject({ disabled: true, disabledAt: view.disabledAt })
    const afterRestart = sipParticipantEvent("participant_joined", { room: uniqueRoom("d"), xToIp: DOWN })
    await postOk(router, afterRestart)
    await eventually(async () => (await deliveryOf(router, DOWN, afterRestart.id))?.status === "failed", 5_000, "a delivery after the restart to end failed")
    expect(down.hitsOf(afterRestart.id)).toHaveLength(0)

    // A tenant token may enable its own host, not another's; an unknown host is 404.
    expect((await router.admin("POST", `/v1/hooks/${OTHER}/enable`, undefined, TENANT_TOKEN)).status).toBe(403)
    expect((await router.admin("POST", "/v1/hooks/unknown.example.com/enable")).status).toBe(404)
    down.status.value = 200
    const enabled = await router.admin("POST", `/v1/hooks/${DOWN}/enable`, undefined, TENANT_TOKEN)
    expect(enabled.status).toBe(200)
    expect(await json(enabled)).toMatchObject({ host: DOWN, disabled: false, disabledAt: null })
    expect(await hookView(router, DOWN)).toMatchObject({ disabled: false, disabledAt: null })

    // New deliveries flow; the failed ones wait for recover.
    const fresh = sipParticipantEvent("participant_joined", { room: uniqueRoom("e"), xToIp: DOWN })
    await postOk(router, fresh)
    await eventually(async () => (await deliveryOf(router, DOWN, fresh.id))?.status === "delivered", 5_000, "a new delivery after enable")
    expect(down.hitsOf(first.id).every((h) => h.status === 503)).toBe(true)
    expect((await deliveryOf(router, DOWN, first.id))?.status).toBe("failed")

    const recovered = await json(await router.admin("POST", `/v1/tenants/${DOWN}/recover?since=2000-01-01`))
    expect(recovered.requeued).toBe(4)
    for (const event of [first, second, third, afterRestart]) {
      await eventually(() => down.hitsOf(event.id).some((h) => h.status === 200), 5_000, "a replayed delivery")
      await eventually(async () => (await deliveryOf(router, DOWN, event.id))?.status === "delivered", 5_000, "a replayed delivery's status")
    }
  }, 60_000)
})

describe("disableAfter: 0 never disables", () => {
  let router: RunningRouter
  let down: Tenant

  beforeAll(async () => {
    down = startTenant(503)
    router = await startRouter({
      delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 1000 }, disableAfter: 0 },
      hooks: [{ host: DOWN, url: down.url }]
    })
  })

  afterAll(async () => {
    await router?.stop()
    down?.stop()
  })

  test("a tenant failing for longer keeps being tried and stays enabled", async () => {
    const event = sipParticipantEvent("participant_joined", { room: uniqueRoom("off"), xToIp: DOWN })
    await postOk(router, event)
    await Bun.sleep(2_000)
    const sent = down.hitsOf(event.id).length
    expect(sent).toBeGreaterThanOrEqual(5)
    expect(await hookView(router, DOWN)).toMatchObject({ disabled: false, disabledAt: null })
    expect((await deliveryOf(router, DOWN, event.id))?.status).toBe("pending")
    await eventually(() => down.hitsOf(event.id).length > sent, 2_000, "more attempts")
    expect(router.logs.some((l) => l.msg === "tenant disabled")).toBe(false)
  }, 20_000)
})
