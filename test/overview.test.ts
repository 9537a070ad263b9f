import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { LATENCY_BUCKETS, latencyBucket, MINUTE_MS, p99Bound } from "../src/domain/AttemptMinutes.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/**
 * `GET /v1/overview` through the real router process, with real tenants: one answering 200, one
 * refusing (400: final at once, so it is failing but not for long enough to be disabled), one down
 * (500, retried until `disableAfter` disables it). What the overview counts must be what the
 * deliveries' histories show.
 */

const OK = "calls.ok.example"
const REFUSING = "calls.refusing.example"
const DOWN = "calls.down.example"
const TENANT_TOKEN = "tenant-token-for-overview-tests-0123"

let rooms = 0
const room = (name: string) => `room-${name}-${Date.now().toString(36)}-${++rooms}`

const json = async (response: Response): Promise<any> => response.json()

describe("GET /v1/overview", () => {
  let router: RunningRouter
  const tenants: Array<Receiver> = []
  beforeAll(async () => {
    const [ok, refusing, down] = [startReceiver(DEFAULT_SECRET, [{ status: 200 }]), startReceiver(DEFAULT_SECRET, [{ status: 400 }]), startReceiver(DEFAULT_SECRET, [{ status: 500 }])]
    tenants.push(ok, refusing, down)
    router = await startRouter({
      delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { failureThreshold: 1000 }, disableAfter: "1s" },
      admin: { tokens: [ADMIN_TOKEN], tenantTokens: [{ token: TENANT_TOKEN, hosts: [OK] }] },
      hooks: [
        { host: OK, url: `${ok.url}/voice` },
        { host: REFUSING, url: `${refusing.url}/voice` },
        { host: DOWN, url: `${down.url}/voice` }
      ]
    })
  })
  afterAll(async () => {
    await router?.stop()
    for (const tenant of tenants) tenant.stop()
  })

  test("counts the hour's attempts per minute as the histories show them, with the queue, failing and disabled tenants and the top unroutable domains", async () => {
    const events = [
      ...[1, 2, 3].map((n) => sipParticipantEvent("participant_joined", { room: room(`ok-${n}`), xToIp: OK })),
      ...[1, 2].map((n) => sipParticipantEvent("participant_joined", { room: room(`refused-${n}`), xToIp: REFUSING })),
      sipParticipantEvent("participant_joined", { room: room("down"), xToIp: DOWN }),
      ...[1, 2, 3].map((n) => sipParticipantEvent("participant_joined", { room: room(`lost-${n}`), xToIp: "sip.lost.example" })),
      sipParticipantEvent("participant_joined", { room: room("stray"), xToIp: "sip.stray.example" })
    ]
    for (const event of events) expect((await router.post(event)).status).toBe(200)

    // Every delivery finished: the down tenant's once it is disabled.
    const finished = async () => {
      const page = await json(await router.admin("GET", "/v1/deliveries?limit=1000"))
      return page.items.length > 0 && page.items.every((d: any) => d.status !== "pending") ? (page.items as Array<any>) : undefined
    }
    await eventually(async () => (await finished()) !== undefined, 15_000, "every delivery to finish")
    const deliveries = (await finished())!
    expect(new Set(deliveries.map((d) => d.tenant))).toEqual(new Set([OK, REFUSING, DOWN]))

    // What the histories hold: each attempt sent (a disable's entry is none), when it ended, how long it took.
    const attempts = (await Promise.all(deliveries.map(async (d) => (await json(await router.admin("GET", `/v1/deliveries/${d.id}`))).history as Array<any>)))
      .flat()
      .filter((a) => !(a.status === null && a.error === "disabled"))
    const succeeded = attempts.filter((a) => a.status !== null && a.status >= 200 && a.status < 300)
    expect(succeeded.length).toBeGreaterThanOrEqual(3)
    expect(attempts.length - succeeded.length).toBeGreaterThanOrEqual(4)

    const response = await router.admin("GET", "/v1/overview")
    expect(response.status).toBe(200)
    const overview = await json(response)

    // Sixty whole minutes, oldest first, the last the one in progress.
    expect(overview.minutes).toHaveLength(60)
    const starts = overview.minutes.map((m: any) => Date.parse(m.at))
    starts.forEach((at: number, i: number) => expect(at).toBe(starts[0] + i * MINUTE_MS))
    expect(overview.from).toBe(overview.minutes[0].at)
    expect(Date.parse(overview.to) - starts[59]).toBeLessThan(MINUTE_MS)
    expect(Date.parse(overview.to)).toBeGreaterThanOrEqual(Math.max(...attempts.map((a) => Date.parse(a.at))))

    // Each attempt in the minute it ended in.
    const expected = new Map<number, { succeeded: number; failed: number }>()
    for (const a of attempts) {
      const minute = Math.floor(Date.parse(a.at) / MINUTE_MS) * MINUTE_MS
      const counts = expected.get(minute) ?? { succeeded: 0, failed: 0 }
      if (succeeded.includes(a)) counts.succeeded++
      else counts.failed++
      expected.set(minute, counts)
    }
    for (const m of overview.minutes) expect({ at: m.at, succeeded: m.succeeded, failed: m.failed }).toEqual({ at: m.at, ...(expected.get(Date.parse(m.at)) ?? { succeeded: 0, failed: 0 }) })
    expect(overview.successRate).toBe(succeeded.length / attempts.length)
    const histogram = Array<number>(LATENCY_BUCKETS).fill(0)
    for (const a of attempts) histogram[latencyBucket(a.latencyMs)]!++
    expect(overview.p99Ms).toBe(p99Bound(histogram))

    expect(overview.queue).toEqual({ pending: 0, oldestPendingAt: null })
    expect(overview.tenants).toEqual({ failing: [REFUSING], disabled: [DOWN] })
    expect(overview.unroutable).toEqual([
      { domain: "sip.lost.example", count: 3 },
      { domain: "sip.stray.example", count: 1 }
    ])
  })

  test("operators only: a tenant token is refused with 403, no token with 401", async () => {
    const refused = await router.admin("GET", "/v1/overview", undefined, TENANT_TOKEN)
    expect(refused.status).toBe(403)
    expect((await json(refused)).error.code).toBe("forbidden")
    // The same token may read its own hooks: it is the endpoint that is refused, not the token.
    expect((await router.admin("GET", "/v1/hooks", undefined, TENANT_TOKEN)).status).toBe(200)
    expect((await fetch(`${router.url}/v1/overview`)).status).toBe(401)
  })
})
