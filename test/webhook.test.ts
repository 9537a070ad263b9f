import { Database } from "bun:sqlite"
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { join } from "node:path"
import {
  API_KEY,
  API_SECRET,
  bodyHash,
  eventId,
  handMadeToken,
  protojsonish,
  signAsLiveKit,
  sipParticipantEvent
} from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const MAX_BODY = 4096
let router: RunningRouter
let tenant: Receiver

beforeAll(async () => {
  tenant = startReceiver(DEFAULT_SECRET)
  router = await startRouter({
    server: { host: "127.0.0.1", port: 0, maxBodyBytes: MAX_BODY },
    hooks: [{ host: "calls.drsmith.com", url: `${tenant.url}/voice` }]
  })
})
afterAll(async () => {
  await router.stop()
  tenant.stop()
})

const joined = (room: string) => sipParticipantEvent("participant_joined", { room, xToIp: "calls.drsmith.com" })
const now = () => Math.floor(Date.now() / 1000)
/** Claims as LiveKit sets them, shifted in time. */
const claimsFor = (raw: string, shiftSeconds = 0) => ({
  iss: API_KEY,
  nbf: now() + shiftSeconds,
  iat: now() + shiftSeconds,
  exp: now() + shiftSeconds + 300,
  sha256: bodyHash(raw)
})

const expectError = async (response: Response, status: number, code: string) => {
  expect(response.status).toBe(status)
  const body = (await response.json()) as { error: { code: string; message: string } }
  expect(body.error.code).toBe(code)
  expect(body.error.message.length).toBeGreaterThan(0)
}

describe("accepted events", () => {
  test("a LiveKit-signed event is acknowledged with 200 received and reaches the tenant", async () => {
    const event = joined("accept-1")
    const response = await router.post(event)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: "received" })
    await tenant.waitFor((r) => r.some((x) => x.json.data.id === event.id))
  })

  test("the body is hashed as received: protojson whitespace is kept, not re-serialised", async () => {
    const event = joined("accept-2")
    const raw = "\n " + protojsonish(event).replace(/,/g, " ,\t") + " \n"
    const response = await router.post(event, { raw })
    expect(response.status).toBe(200)
    await tenant.waitFor((r) => r.some((x) => x.json.data.id === event.id))
    const delivered = tenant.received.find((x) => x.json.data.id === event.id)!
    // The tenant gets the event bytes as LiveKit sent them, spliced into the envelope.
    expect(delivered.body).toContain(raw.trim())
  })

  test("a Bearer prefix is tolerated", async () => {
    const event = joined("accept-3")
    const raw = protojsonish(event)
    const response = await router.post(event, { raw, authorization: `Bearer ${await signAsLiveKit(raw)}` })
    expect(response.status).toBe(200)
  })

  test("clock skew within 60 s is accepted (token from a LiveKit clock 50 s ahead)", async () => {
    const event = joined("accept-4")
    const raw = protojsonish(event)
    const response = await router.post(event, { raw, authorization: handMadeToken(claimsFor(raw, 50)) })
    expect(response.status).toBe(200)
  })

  test("a duplicate event id is acknowledged but delivered once", async () => {
    const event = joined("dup-1")
    const before = await router.metric("tenant_router_webhooks_received_total", { outcome: "duplicate" })
    expect((await router.post(event)).status).toBe(200)
    expect((await router.post(event)).status).toBe(200)
    await tenant.waitFor((r) => r.some((x) => x.json.data.id === event.id))
    await Bun.sleep(300)
    expect(tenant.received.filter((x) => x.json.data.id === event.id)).toHaveLength(1)
    expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "duplicate" })).toBe(before + 1)
  })
})

describe("401: bad or missing signature", () => {
  const cases: Array<[string, (raw: string) => Promise<string | null> | string | null]> = [
    ["no Authorization header", () => null],
    ["not a JWT", () => "hello"],
    ["signed with another secret", (raw) => signAsLiveKit(raw, API_KEY, "some-other-secret-0123456789abcdef")],
    ["issued by an unknown API key", (raw) => signAsLiveKit(raw, "APIunknown", API_SECRET)],
    ["expired beyond the 60 s leeway", (raw) => handMadeToken(claimsFor(raw, -400))],
    ["not valid until beyond the leeway", (raw) => handMadeToken(claimsFor(raw, 120))],
    ["no exp claim", (raw) => handMadeToken({ ...claimsFor(raw), exp: undefined })],
    ["no sha256 claim", (raw) => handMadeToken({ ...claimsFor(raw), sha256: undefined })],
    ["sha256 of other bytes", (raw) => handMadeToken({ ...claimsFor(raw), sha256: bodyHash(raw + " ") })],
    ["alg none", (raw) => handMadeToken(claimsFor(raw), { alg: "none" }).replace(/\.[^.]+$/, ".")],
    ["alg HS512 label", (raw) => handMadeToken(claimsFor(raw), { alg: "HS512" })]
  ]
  for (const [name, authorize] of cases) {
    test(name, async () => {
      const event = joined(`unauth-${name}`)
      const raw = protojsonish(event)
      await expectError(await router.post(event, { raw, authorization: await authorize(raw) }), 401, "unauthorized")
    })
  }

  test("a body changed after signing is refused", async () => {
    const event = joined("tampered")
    const raw = protojsonish(event)
    const authorization = await signAsLiveKit(raw)
    const forged = raw.replace("calls.drsmith.com", "calls.evil.example")
    await expectError(await router.post(event, { raw: forged, authorization }), 401, "unauthorized")
  })

  test("refusals are counted and nothing is forwarded", async () => {
    const count = await router.metric("tenant_router_webhooks_received_total", { outcome: "unauthorized" })
    expect(count).toBeGreaterThanOrEqual(cases.length + 1)
    expect(tenant.received.some((x) => x.json.data.room.name.startsWith("unauth-"))).toBe(false)
  })
})

describe("400: not a JSON object with event and id", () => {
  const bodies: Array<[string, string]> = [
    ["not JSON", "{not json"],
    ["a JSON array", "[1,2]"],
    ["a JSON string", '"participant_joined"'],
    ["null", "null"],
    ["no id", JSON.stringify({ event: "room_started", room: { name: "r" } })],
    ["no event", JSON.stringify({ id: eventId(), room: { name: "r" } })],
    ["empty id", JSON.stringify({ id: "", event: "room_started" })],
    ["numeric id", JSON.stringify({ id: 42, event: "room_started" })],
    ["empty body", ""]
  ]
  for (const [name, raw] of bodies) {
    test(name, async () => {
      await expectError(await router.post(null, { raw }), 400, "invalid_event")
    })
  }

  test("invalid bodies are counted", async () => {
    expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "invalid" })).toBeGreaterThanOrEqual(bodies.length)
  })
})

describe("413: over server.maxBodyBytes", () => {
  const oversized = () => {
    const event = { ...joined("big"), padding: "x".repeat(MAX_BODY) }
    return protojsonish(event)
  }

  test("refused by Content-Length before signature checks", async () => {
    await expectError(await router.post(null, { raw: oversized(), authorization: null }), 413, "payload_too_large")
  })

  test("a chunked body without Content-Length is refused too", async () => {
    const raw = oversized()
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < raw.length; i += 1000) controller.enqueue(new TextEncoder().encode(raw.slice(i, i + 1000)))
        controller.close()
      }
    })
    const response = await fetch(`${router.url}/livekit/webhook`, {
      method: "POST",
      headers: { authorization: await signAsLiveKit(raw) },
      body: stream
    })
    await expectError(response, 413, "payload_too_large")
  })

  test("exactly maxBodyBytes is still accepted", async () => {
    const event = joined("fits")
    const base = protojsonish(event)
    const raw = base.slice(0, -1) + `,"pad":"${"y".repeat(MAX_BODY - base.length - 9)}"}`
    expect(Buffer.byteLength(raw)).toBe(MAX_BODY)
    expect((await router.post(event, { raw })).status).toBe(200)
  })

  test("too-large bodies are counted", async () => {
    expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "too_large" })).toBeGreaterThanOrEqual(2)
  })
})

describe("503: the event cannot be stored", () => {
  test("while another writer holds the database, LiveKit is told to retry; afterwards the retry is accepted", async () => {
    const db = new Database(join(router.dir, "router.db"))
    db.exec("PRAGMA busy_timeout = 5000")
    db.exec("BEGIN EXCLUSIVE")
    const event = joined("store-down")
    try {
      await expectError(await router.post(event), 503, "store_unavailable")
      expect((await fetch(`${router.url}/healthz`)).status).toBe(200)
    } finally {
      db.exec("ROLLBACK")
      db.close()
    }
    expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "unavailable" })).toBe(1)
    // LiveKit retries with the same id: nothing was written the first time, so it is not a duplicate.
    const retry = await router.post(event)
    expect(retry.status).toBe(200)
    await tenant.waitFor((r) => r.some((x) => x.json.data.id === event.id))
  })
})

describe("operations endpoints", () => {
  test("healthz and readyz answer 200", async () => {
    expect((await fetch(`${router.url}/healthz`)).status).toBe(200)
    expect((await fetch(`${router.url}/readyz`)).status).toBe(200)
  })

  test("metrics are Prometheus text with every webhook outcome seen so far", async () => {
    const response = await fetch(`${router.url}/metrics`)
    expect(response.headers.get("content-type")).toContain("text/plain")
    const text = await response.text()
    expect(text).toContain("# TYPE tenant_router_webhooks_received_total counter")
    expect(text).toMatch(/tenant_router_webhooks_received_total\{outcome="accepted"\} [1-9]/)
  })
})
