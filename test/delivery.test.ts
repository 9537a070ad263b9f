import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Webhook } from "standardwebhooks"
import { API_SECRET, protojsonish, sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver, type Reply } from "./support/receiver.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const HOOK_SECRET = "whsec_" + Buffer.alloc(32, 42).toString("base64")
const SECRETS = [DEFAULT_SECRET, HOOK_SECRET, API_SECRET, ADMIN_TOKEN]

let rooms = 0
const uniqueRoom = (name: string) => `room-${name}-${Date.now().toString(36)}-${++rooms}`

/** A SIP participant_joined for a fresh room whose preserved domain is `host`. */
const callTo = (host: string, name = host.split(".")[0]!) => sipParticipantEvent("participant_joined", { room: uniqueRoom(name), xToIp: host })

const attemptLines = (router: RunningRouter, eventId: string) =>
  router.logs.filter((line) => line.msg === "delivery attempt" && line.eventId === eventId)

/** Posts an event and checks LiveKit's answer, which never depends on the tenant. */
const postOk = async (router: RunningRouter, event: unknown) => {
  const response = await router.post(event)
  expect(response.status).toBe(200)
  expect(await response.json()).toEqual({ status: "received" })
}

const finalOutcome = (router: RunningRouter, tenant: string, outcome: "delivered" | "failed", count = 1) =>
  eventually(
    async () => (await router.metric("tenant_router_deliveries_total", { tenant, outcome })) >= count,
    10_000,
    `${count} ${outcome} deliveries to ${tenant}`
  )

/** A URL on which nothing listens: a port that was just bound and released. */
const closedPortUrl = () => {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
  const url = `http://127.0.0.1:${server.port}/voice`
  server.stop(true)
  return url
}

/**
 * A tenant endpoint scripted in code: `answer(n)` makes the reply to the n-th request
 * (from 0). It records when each request arrived and was answered, and how many were
 * in flight at once.
 */
const startProbe = (answer: (n: number) => Promise<Response>) => {
  const arrived: number[] = []
  const answered: number[] = []
  let inFlight = 0
  let maxInFlight = 0
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 60,
    async fetch(request) {
      await request.text()
      const n = arrived.push(Date.now()) - 1
      maxInFlight = Math.max(maxInFlight, ++inFlight)
      try {
        return await answer(n)
      } finally {
        inFlight--
        answered.push(Date.now())
      }
    }
  })
  return {
    url: `http://127.0.0.1:${server.port}`,
    arrived,
    answered,
    get maxInFlight() {
      return maxInFlight
    },
    stop: () => server.stop(true)
  }
}
const okAfter = (hold: () => Promise<unknown>) => async () => {
  await hold()
  return new Response("ok")
}
type Probe = ReturnType<typeof startProbe>

const hook = (host: string, url: string, secret?: string) => ({ host, url, ...(secret ? { secret } : {}) })

describe("delivery: signing, retries, logs and metrics (timeout 1s, 3 attempts, backoff 50–200ms)", () => {
  let router: RunningRouter
  const receivers: Record<string, Receiver> = {}
  const refusedUrl = closedPortUrl()
  const scripts: Record<string, ReadonlyArray<Reply>> = {
    calls: [{ status: 200 }],
    secret: [{ status: 200 }],
    flaky: [{ status: 500 }, { status: 200 }],
    codes: [{ status: 503 }, { status: 408 }, { status: 200 }],
    gone: [{ status: 404 }],
    bad: [{ status: 400 }],
    target: [{ status: 200 }],
    clamp: [{ status: 429, headers: { "retry-after": "60" } }, { status: 200 }]
  }

  beforeAll(async () => {
    for (const [name, replies] of Object.entries(scripts)) {
      receivers[name] = startReceiver(name === "secret" ? HOOK_SECRET : DEFAULT_SECRET, replies)
    }
    receivers.moved = startReceiver(DEFAULT_SECRET, [
      { status: 302, headers: { location: `${receivers.target!.url}/voice` } }
    ])
    router = await startRouter({
      security: { allowPrivateTargets: true },
      hooks: [
        hook("calls.drsmith.com", `${receivers.calls!.url}/voice`),
        hook("secret.drsmith.com", `${receivers.secret!.url}/voice`, HOOK_SECRET),
        hook("flaky.drsmith.com", `${receivers.flaky!.url}/voice`),
        hook("codes.drsmith.com", `${receivers.codes!.url}/voice`),
        hook("down.drsmith.com", refusedUrl),
        hook("gone.drsmith.com", `${receivers.gone!.url}/voice`),
        hook("bad.drsmith.com", `${receivers.bad!.url}/voice`),
        hook("moved.drsmith.com", `${receivers.moved!.url}/voice`),
        hook("clamp.drsmith.com", `${receivers.clamp!.url}/voice`)
      ]
    })
  })

  afterAll(async () => {
    await router?.stop()
    for (const receiver of Object.values(receivers)) receiver.stop()
  })

  test("a delivery is signed with Standard Webhooks and carries the documented envelope", async () => {
    const receiver = receivers.calls!
    const event = callTo("calls.drsmith.com")
    await postOk(router, event)
    await receiver.waitFor((r) => r.length === 1)
    const [got] = receiver.received
    expect(receiver.rejected).toEqual([])
    expect(got!.path).toBe("/voice")
    expect(got!.headers["content-type"]).toBe("application/json")
    expect(got!.headers["webhook-id"]).toBe(event.id)
    expect(got!.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/)
    const timestamp = Number(got!.headers["webhook-timestamp"])
    expect(Number.isInteger(timestamp)).toBe(true)
    expect(Math.abs(timestamp - Date.now() / 1000)).toBeLessThan(60)

    const room = event.room.name
    expect(got!.json).toEqual({
      type: "participant_joined",
      timestamp: new Date(Number(event.createdAt) * 1000).toISOString(),
      tenant: "calls.drsmith.com",
      call: { room, sipCallId: `SCL_${room}`, from: "+15550001111", to: "+15557654321", domain: "calls.drsmith.com" },
      data: event
    })
    // `data` is the event as LiveKit sent it, byte for byte, not re-serialised.
    expect(got!.body.endsWith(`"data":${protojsonish(event)}}`)).toBe(true)
    expect(receiver.hits).toBe(1)
  })

  test("a hook with its own secret is signed with that secret, not the default one", async () => {
    const receiver = receivers.secret!
    const event = callTo("secret.drsmith.com")
    await postOk(router, event)
    await receiver.waitFor((r) => r.length === 1)
    expect(receiver.rejected).toEqual([])
    const [got] = receiver.received
    expect(got!.json.data).toEqual(event)
    expect(() => new Webhook(DEFAULT_SECRET).verify(got!.body, got!.headers)).toThrow()
    expect(new Webhook(HOOK_SECRET).verify(got!.body, got!.headers)).toEqual(got!.json)
  })

  test("500 then 200: retried, delivered once verified, with the same webhook-id on every attempt", async () => {
    const receiver = receivers.flaky!
    const event = callTo("flaky.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "flaky.drsmith.com", "delivered")
    expect(receiver.rejected).toEqual([])
    expect(receiver.received.length).toBe(2)
    expect(receiver.received.map((r) => r.headers["webhook-id"])).toEqual([event.id, event.id])
    expect(receiver.received[1]!.body).toBe(receiver.received[0]!.body)
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "flaky.drsmith.com", result: "500" })).toBe(1)
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "flaky.drsmith.com", result: "200" })).toBe(1)
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "flaky.drsmith.com", outcome: "delivered" })).toBe(1)
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "flaky.drsmith.com", outcome: "failed" })).toBe(0)

    await eventually(() => attemptLines(router, event.id).length === 2, 5_000, "two attempt lines")
    const lines = attemptLines(router, event.id)
    expect(lines.map((l) => [l.attempt, l.status, l.error])).toEqual([
      [1, 500, null],
      [2, 200, null]
    ])
  })

  test("503 and 408 are retried", async () => {
    const receiver = receivers.codes!
    const event = callTo("codes.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "codes.drsmith.com", "delivered")
    expect(receiver.received.length).toBe(3)
    expect(new Set(receiver.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set([event.id]))
    for (const result of ["503", "408", "200"]) {
      expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "codes.drsmith.com", result })).toBe(1)
    }
  })

  test("connection refused is retried up to maxAttempts, then the delivery fails", async () => {
    const event = callTo("down.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "down.drsmith.com", "failed")
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "down.drsmith.com", result: "network" })).toBe(3)
    expect(await router.metric("tenant_router_deliveries_total", { tenant: "down.drsmith.com", outcome: "delivered" })).toBe(0)

    await eventually(() => attemptLines(router, event.id).length === 3, 5_000, "three attempt lines")
    const lines = attemptLines(router, event.id)
    expect(lines.map((l) => l.attempt)).toEqual([1, 2, 3])
    for (const line of lines) {
      expect(line.status).toBeNull()
      expect(typeof line.error).toBe("string")
      expect(line.error.length).toBeGreaterThan(0)
      expect(line.url).toBe(refusedUrl)
    }
  })

  test("404 is final: tried exactly once", async () => {
    const event = callTo("gone.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "gone.drsmith.com", "failed")
    expect(receivers.gone!.hits).toBe(1)
    expect(receivers.gone!.received.length).toBe(1)
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "gone.drsmith.com", result: "404" })).toBe(1)
    await eventually(() => attemptLines(router, event.id).length === 1, 5_000, "the attempt line")
    expect(attemptLines(router, event.id).map((l) => [l.attempt, l.status])).toEqual([[1, 404]])
  })

  test("400 is final: tried exactly once", async () => {
    const event = callTo("bad.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "bad.drsmith.com", "failed")
    expect(receivers.bad!.hits).toBe(1)
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "bad.drsmith.com", result: "400" })).toBe(1)
  })

  test("a 302 is final and its Location is never contacted", async () => {
    const event = callTo("moved.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "moved.drsmith.com", "failed")
    expect(receivers.moved!.hits).toBe(1)
    expect(receivers.target!.hits).toBe(0)
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "moved.drsmith.com", result: "302" })).toBe(1)
  })

  test("a Retry-After longer than maxBackoff is clamped to maxBackoff", async () => {
    const receiver = receivers.clamp!
    const event = callTo("clamp.drsmith.com")
    await postOk(router, event)
    // Retry-After: 60 would take a minute; maxBackoff is 200ms.
    await receiver.waitFor((r) => r.length === 2, 5_000)
    expect(receiver.received[1]!.at - receiver.received[0]!.at).toBeLessThan(5_000)
    await finalOutcome(router, "clamp.drsmith.com", "delivered")
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "clamp.drsmith.com", result: "429" })).toBe(1)
  })

  test("each attempt logs one 'delivery attempt' line with every field", async () => {
    const event = callTo("calls.drsmith.com")
    await postOk(router, event)
    await eventually(() => attemptLines(router, event.id).length >= 1, 5_000, "the attempt line")
    await Bun.sleep(300) // A second line would be a bug; give it the time a retry would take.
    const lines = attemptLines(router, event.id)
    expect(lines.length).toBe(1)
    const line = lines[0]!
    expect(line).toMatchObject({
      level: "info",
      msg: "delivery attempt",
      eventId: event.id,
      type: "participant_joined",
      domain: "calls.drsmith.com",
      tenant: "calls.drsmith.com",
      url: `${receivers.calls!.url}/voice`,
      status: 200,
      error: null,
      attempt: 1
    })
    expect(typeof line.latencyMs).toBe("number")
    expect(line.latencyMs).toBeGreaterThanOrEqual(0)
    expect(typeof line.time).toBe("string")
  })

  test("metrics count attempts, final outcomes and attempt durations", async () => {
    const tenant = "calls.drsmith.com"
    const before = {
      attempts: await router.metric("tenant_router_delivery_attempts_total", { tenant, result: "200" }),
      delivered: await router.metric("tenant_router_deliveries_total", { tenant, outcome: "delivered" }),
      durations: await router.metric("tenant_router_delivery_duration_seconds_count")
    }
    expect(before.attempts).toBeGreaterThanOrEqual(1) // earlier tests delivered here
    await postOk(router, callTo(tenant))
    await postOk(router, callTo(tenant))
    await finalOutcome(router, tenant, "delivered", before.delivered + 2)
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant, result: "200" })).toBe(before.attempts + 2)
    expect(await router.metric("tenant_router_deliveries_total", { tenant, outcome: "delivered" })).toBe(before.delivered + 2)
    expect(await router.metric("tenant_router_delivery_duration_seconds_count")).toBeGreaterThanOrEqual(before.durations + 2)
    expect(await router.metric("tenant_router_deliveries_total", { tenant, outcome: "failed" })).toBe(0)
  })

  test("no secret appears in any log line or on stderr", async () => {
    const keyParts = [DEFAULT_SECRET, HOOK_SECRET].map((s) => s.slice("whsec_".length))
    const text = router.logs.map((line) => JSON.stringify(line)).join("\n") + "\n" + router.stderr()
    expect(router.logs.filter((line) => line.msg === "delivery attempt").length).toBeGreaterThan(10)
    for (const secret of [...SECRETS, ...keyParts]) expect(text.includes(secret)).toBe(false)
  })
})

describe("delivery: timeouts (timeout 300ms)", () => {
  let router: RunningRouter
  let receiver: Receiver

  beforeAll(async () => {
    receiver = startReceiver(DEFAULT_SECRET, [{ status: 200, delayMs: 1_500 }, { status: 200 }])
    router = await startRouter({
      security: { allowPrivateTargets: true },
      delivery: { timeout: "300ms" },
      hooks: [hook("calls.drsmith.com", `${receiver.url}/voice`)]
    })
  })

  afterAll(async () => {
    await router?.stop()
    receiver?.stop()
  })

  test("a tenant slower than delivery.timeout is retried", async () => {
    const event = callTo("calls.drsmith.com")
    await postOk(router, event)
    await finalOutcome(router, "calls.drsmith.com", "delivered")
    expect(receiver.received.map((r) => r.headers["webhook-id"])).toEqual([event.id, event.id])
    expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: "calls.drsmith.com", result: "timeout" })).toBe(1)
    await eventually(() => attemptLines(router, event.id).length === 2, 5_000, "two attempt lines")
    const [first, second] = attemptLines(router, event.id)
    expect([first!.attempt, first!.status, first!.error]).toEqual([1, null, "timeout after 300ms"])
    expect([second!.attempt, second!.status, second!.error]).toEqual([2, 200, null])
    expect(first!.latencyMs).toBeGreaterThanOrEqual(290)
  })
})

describe("delivery: Retry-After, concurrency and fail-open (timeout 5s, maxBackoff 5s, 2 per tenant)", () => {
  let router: RunningRouter
  const receivers: Record<string, Receiver> = {}
  const probes: Record<string, Probe> = {}
  const releaseStuck = Promise.withResolvers<void>()
  const sleepMs = 400

  beforeAll(async () => {
    receivers.seconds = startReceiver(DEFAULT_SECRET, [{ status: 429, headers: { "retry-after": "1" } }, { status: 200 }])
    receivers.healthy = startReceiver(DEFAULT_SECRET)
    // The date is made when the request comes in: ~2 s ahead, truncated to whole seconds.
    probes.date = startProbe(async (n) =>
      n === 0 ? new Response("busy", { status: 503, headers: { "retry-after": new Date(Date.now() + 2_000).toUTCString() } }) : new Response("ok")
    )
    probes.busy = startProbe(okAfter(() => Bun.sleep(sleepMs)))
    probes.slow = startProbe(okAfter(() => Bun.sleep(3_000)))
    probes.stuck = startProbe(okAfter(() => releaseStuck.promise))
    router = await startRouter({
      security: { allowPrivateTargets: true },
      delivery: { timeout: "5s", maxBackoff: "5s", concurrencyPerTenant: 2 },
      hooks: [
        hook("seconds.drsmith.com", `${receivers.seconds!.url}/voice`),
        hook("date.drsmith.com", `${probes.date!.url}/voice`),
        hook("healthy.drsmith.com", `${receivers.healthy!.url}/voice`),
        hook("busy.drsmith.com", `${probes.busy!.url}/voice`),
        hook("slow.drsmith.com", `${probes.slow!.url}/voice`),
        hook("stuck.drsmith.com", `${probes.stuck!.url}/voice`)
      ]
    })
  })

  afterAll(async () => {
    releaseStuck.resolve()
    await router?.stop()
    for (const receiver of Object.values(receivers)) receiver.stop()
    for (const probe of Object.values(probes)) probe.stop()
  })

  test("429 with Retry-After: 1 delays the next attempt by at least a second", async () => {
    const receiver = receivers.seconds!
    await postOk(router, callTo("seconds.drsmith.com"))
    await receiver.waitFor((r) => r.length === 2, 8_000)
    const gap = receiver.received[1]!.at - receiver.received[0]!.at
    expect(gap).toBeGreaterThanOrEqual(950)
    expect(gap).toBeLessThan(4_500)
    await finalOutcome(router, "seconds.drsmith.com", "delivered")
  })

  test("an HTTP-date Retry-After is honoured too", async () => {
    const probe = probes.date!
    await postOk(router, callTo("date.drsmith.com"))
    await finalOutcome(router, "date.drsmith.com", "delivered")
    expect(probe.arrived.length).toBe(2)
    // Asked for ~2 s, truncated to the second: more than 1 s, far more than the 50 ms backoff.
    const gap = probe.arrived[1]! - probe.arrived[0]!
    expect(gap).toBeGreaterThanOrEqual(900)
    expect(gap).toBeLessThan(4_500)
  })

  test("at most concurrencyPerTenant requests are in flight to one tenant", async () => {
    const probe = probes.busy!
    const events = Array.from({ length: 8 }, () => callTo("busy.drsmith.com"))
    await Promise.all(events.map((event) => postOk(router, event)))
    await finalOutcome(router, "busy.drsmith.com", "delivered", events.length)
    expect(probe.answered.length).toBe(events.length)
    expect(probe.maxInFlight).toBe(2)
    // An attempt's latency is its HTTP exchange, not the time it queued for a slot:
    // the last pair waited three exchanges (~1.2 s) for theirs. Each line is logged just after its record.
    await eventually(() => events.every((event) => attemptLines(router, event.id).length > 0), 5_000, "the attempts' log lines")
    const latencies = events.flatMap((event) => attemptLines(router, event.id).map((l) => l.latencyMs as number))
    expect(latencies.length).toBe(events.length)
    for (const latency of latencies) {
      expect(latency).toBeGreaterThanOrEqual(sleepMs - 10)
      expect(latency).toBeLessThan(3 * sleepMs)
    }
  })

  test("LiveKit's 200 does not wait for the tenant's answer", async () => {
    const probe = probes.slow!
    const event = callTo("slow.drsmith.com")
    const response = await router.post(event)
    const answeredLiveKitAt = Date.now()
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: "received" })
    expect(probe.answered.length).toBe(0)
    await finalOutcome(router, "slow.drsmith.com", "delivered")
    expect(probe.arrived.length).toBe(1)
    expect(probe.answered.length).toBe(1)
    expect(answeredLiveKitAt).toBeLessThan(probe.answered[0]!)
  })

  test("a stuck tenant does not hold up deliveries to another tenant", async () => {
    const stuck = probes.stuck!
    const healthy = receivers.healthy!
    // Fill every slot the stuck tenant has (and queue one more behind them).
    for (let i = 0; i < 3; i++) await postOk(router, callTo("stuck.drsmith.com"))
    await eventually(() => stuck.arrived.length === 2, 5_000, "the stuck tenant to hold both its slots")
    const healthyEvents = Array.from({ length: 5 }, () => callTo("healthy.drsmith.com"))
    for (const event of healthyEvents) await postOk(router, event)
    await healthy.waitFor((r) => r.length === healthyEvents.length, 4_000)
    // The stuck tenant is still stuck: no attempt of its has even finished.
    expect(stuck.answered.length).toBe(0)
    expect(router.logs.filter((l) => l.msg === "delivery attempt" && l.tenant === "stuck.drsmith.com")).toEqual([])
    expect(new Set(healthy.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set(healthyEvents.map((e) => e.id)))
  })
})
