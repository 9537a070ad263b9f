/**
 * The second half of the admin API through the real process: single-hook
 * views, rate limits, secret rotation, test sends, the numbers API, tenant-
 * scoped tokens, and safe targets (registration-time checks, delivery-time
 * resolution, and connections pinned to the checked address under the URL's
 * own name, including TLS). test/admin.test.ts covers auth, basic validation,
 * the hook lifecycle, wildcards and persistence of API hooks.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { promises as dns } from "node:dns"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startCapture, verifies, type Capture, type Captured } from "./support/capture.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ROOT = join(import.meta.dir, "..")

// ---------------------------------------------------------------- helpers

const secretOf = (bytes = 32) => "whsec_" + randomBytes(bytes).toString("base64")
const UNROUTABLE = "tenant_router_unroutable_total"
const ATTEMPTS = "tenant_router_delivery_attempts_total"
/** Generous: two shared cores, several router processes. */
const WAIT = 20_000

const signaturesOf = (request: Captured) => (request.headers["webhook-signature"] ?? "").split(" ").filter(Boolean)

const jsonOf = (response: Response): Promise<any> => response.json()

const expectError = async (response: Response, status: number, code: string) => {
  const text = await response.text()
  expect({ status: response.status, text }).toEqual({ status, text: expect.any(String) })
  const body = JSON.parse(text) as { error: { code: string; message: string } }
  expect(body.error.code).toBe(code)
  expect(typeof body.error.message).toBe("string")
  return body.error.message
}

/** 400 whose message names the field first: "<field>: <what is wrong>". */
const expectBadRequest = async (response: Response, field: string) => {
  const message = await expectError(response, 400, "bad_request")
  expect(message.split(":")[0]).toBe(field)
  return message
}

let roomCounter = 0
const newRoom = (label: string) => `room-${label}-${Date.now().toString(36)}-${++roomCounter}`

/** A new SIP call reaching the router for `domain` (and dialled number); LiveKit always gets 200. */
const call = async (router: RunningRouter, domain: string, dialled?: string) => {
  const room = newRoom(domain.replace(/[^a-z0-9]/gi, ""))
  const response = await router.post(sipParticipantEvent("participant_joined", { room, xToIp: domain, dialled }))
  expect(response.status).toBe(200)
  expect(await jsonOf(response)).toEqual({ status: "received" })
  return room
}

/** A tenant's deliveries as the operator sees them. */
const deliveriesOf = async (router: RunningRouter, tenant: string): Promise<Array<Record<string, any>>> => {
  const response = await router.admin("GET", `/v1/deliveries?tenant=${encodeURIComponent(tenant)}`)
  expect(response.status).toBe(200)
  return (await jsonOf(response)).items
}

/** Waits until the delivery for `room` reaches `status`, and returns it. */
const settled = async (router: RunningRouter, tenant: string, room: string, status: "delivered" | "failed") => {
  let found: Record<string, any> | undefined
  await eventually(
    async () => {
      found = (await deliveriesOf(router, tenant)).find((d) => d.room === room && d.status === status)
      return found !== undefined
    },
    WAIT,
    `${status} delivery of ${room} to ${tenant}`
  )
  return found!
}

const hookView = async (router: RunningRouter, host: string, token?: string) => {
  const response = await router.admin("GET", `/v1/hooks/${encodeURIComponent(host)}`, undefined, token)
  return { status: response.status, text: await response.text() }
}

const hostsListed = async (router: RunningRouter, token?: string) => {
  const response = await router.admin("GET", "/v1/hooks", undefined, token)
  expect(response.status).toBe(200)
  return ((await jsonOf(response)).hooks as Array<{ host: string }>).map((h) => h.host).sort()
}

const numbersListed = async (router: RunningRouter, token?: string) => {
  const response = await router.admin("GET", "/v1/numbers", undefined, token)
  expect(response.status).toBe(200)
  return (await jsonOf(response)).numbers as Array<{ number: string; host: string; source: string }>
}

const numberPath = (number: string) => `/v1/numbers/${encodeURIComponent(number)}`

/** A port nothing listens on (a server was there a moment ago). */
const closedPort = () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") })
  const port = server.port!
  server.stop(true)
  return port
}

// ---------------------------------------------------------------- single-hook views, rate limits, rotation, test sends

describe("hook views, rate limits, secret rotation and test sends", () => {
  const FILE_SECRET = secretOf()
  let router: RunningRouter
  let capture: Capture

  beforeAll(async () => {
    capture = startCapture()
    router = await startRouter({
      signing: { rotationOverlap: "1h" },
      hooks: [
        { host: "file.views.example", url: `${capture.url}/file`, secret: FILE_SECRET },
        { host: "plain.views.example", url: `${capture.url}/plain` },
        { host: "filtered.views.example", url: `${capture.url}/filtered`, events: ["participant_joined"], rateLimit: "600/m" }
      ]
    })
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
  })

  describe("GET /v1/hooks/{host}", () => {
    test("an API hook's public view, with no secret in it", async () => {
      const created = await router.admin("PUT", "/v1/hooks/view.example.com", {
        url: `${capture.url}/view`,
        events: ["participant_joined", "room_finished"],
        rateLimit: "50/s"
      })
      expect(created.status).toBe(201)
      const { secret } = await jsonOf(created)
      expect(secret).toMatch(/^whsec_/)

      const { status, text } = await hookView(router, "view.example.com")
      expect(status).toBe(200)
      expect(JSON.parse(text)).toEqual({
        host: "view.example.com",
        url: `${capture.url}/view`,
        events: ["participant_joined", "room_finished"],
        rateLimit: "50/s",
        maxAge: null,
        source: "api",
        hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })
      expect(text).not.toContain('"secret"')
      expect(text).not.toContain(secret.slice("whsec_".length))
    })

    test("config-file hooks: source file, hasOwnSecret tells whether one was given, never the secret", async () => {
      const file = await hookView(router, "file.views.example")
      expect(file.status).toBe(200)
      expect(JSON.parse(file.text)).toEqual({
        host: "file.views.example",
        url: `${capture.url}/file`,
        events: null,
        rateLimit: null,
        maxAge: null,
        source: "file",
        hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })
      expect(file.text).not.toContain(FILE_SECRET.slice("whsec_".length))

      const plain = await hookView(router, "plain.views.example")
      expect(JSON.parse(plain.text)).toEqual({
        host: "plain.views.example",
        url: `${capture.url}/plain`,
        events: null,
        rateLimit: null,
        maxAge: null,
        source: "file",
        hasOwnSecret: false, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })
      expect(plain.text).not.toContain(DEFAULT_SECRET.slice("whsec_".length))

      const filtered = await hookView(router, "filtered.views.example")
      expect(JSON.parse(filtered.text)).toEqual({
        host: "filtered.views.example",
        url: `${capture.url}/filtered`,
        events: ["participant_joined"],
        rateLimit: "600/m",
        maxAge: null,
        source: "file",
        hasOwnSecret: false, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })
    })

    test("the host in the path is normalised like on PUT (case, trailing dot)", async () => {
      const { status, text } = await hookView(router, "VIEW.Example.COM.")
      expect(status).toBe(200)
      expect(JSON.parse(text).host).toBe("view.example.com")
    })

    test("a wildcard is addressed as itself; a host it merely matches is not a hook of its own (404)", async () => {
      expect((await router.admin("PUT", "/v1/hooks/*.wild.views.example", { url: `${capture.url}/wild` })).status).toBe(201)
      const wild = await hookView(router, "*.wild.views.example")
      expect(wild.status).toBe(200)
      expect(JSON.parse(wild.text)).toMatchObject({ host: "*.wild.views.example", source: "api", hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null })
      const matched = await hookView(router, "a.wild.views.example")
      expect(matched.status).toBe(404)
      expect(JSON.parse(matched.text).error.code).toBe("not_found")
    })

    test("unknown host → 404 not_found", async () => {
      await expectError(await router.admin("GET", "/v1/hooks/unknown.views.example"), 404, "not_found")
      await expectError(await router.admin("GET", "/v1/hooks/*.unknown.views.example"), 404, "not_found")
    })

    test("bad host → 400 naming host", async () => {
      for (const bad of ["bad_host!", "a..b", "*.com", "a b.example.com", "-x.example.com"]) {
        const response = await router.admin("GET", `/v1/hooks/${encodeURIComponent(bad)}`)
        expect({ bad, status: response.status }).toEqual({ bad, status: 400 })
        await expectBadRequest(response, "host")
      }
    })
  })

  describe("rateLimit", () => {
    const host = "rate.views.example"

    test('"50/s" is accepted and shown in the PUT answer, GET and the listing', async () => {
      const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rate`, rateLimit: "50/s" })
      expect(response.status).toBe(201)
      expect(await jsonOf(response)).toMatchObject({ host, rateLimit: "50/s", hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null })
      expect(JSON.parse((await hookView(router, host)).text).rateLimit).toBe("50/s")
      const listed = (await jsonOf(await router.admin("GET", "/v1/hooks"))).hooks.find((h: { host: string }) => h.host === host)
      expect(listed.rateLimit).toBe("50/s")
    })

    test("other units are accepted too", async () => {
      for (const rateLimit of ["600/m", "1000/h"]) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rate`, rateLimit })
        expect(response.status).toBe(200)
        expect(JSON.parse((await hookView(router, host)).text).rateLimit).toBe(rateLimit)
      }
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rate`, rateLimit: "50/s" })).status).toBe(200)
    })

    test("events may list call events and *; anything else → 400 naming the entry, the hook unchanged", async () => {
      const events = ["*", "call.started", "call.ended"]
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rate`, rateLimit: "50/s", events })).status).toBe(200)
      expect(JSON.parse((await hookView(router, host)).text).events).toEqual(events)
      for (const bad of ["call_started", "call.*", "**", ""]) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/changed`, events: ["call.ended", bad] })
        expect(await expectBadRequest(response, "events.1")).toContain("call.started")
      }
      expect(JSON.parse((await hookView(router, host)).text)).toMatchObject({ url: `${capture.url}/rate`, events })
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rate`, rateLimit: "50/s" })).status).toBe(200)
    })

    test('"fast" and other bad rates → 400 naming rateLimit; the hook is unchanged', async () => {
      for (const rateLimit of ["fast", "50", "50/d", "0/s", "-5/s", "50/S ", 50, null]) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/changed`, rateLimit })
        expect({ rateLimit, status: response.status }).toEqual({ rateLimit, status: 400 })
        const message = await expectBadRequest(response, "rateLimit")
        if (rateLimit === "fast") expect(message).toContain("fast")
      }
      expect(JSON.parse((await hookView(router, host)).text)).toMatchObject({ url: `${capture.url}/rate`, rateLimit: "50/s" })
    })

    test("a PUT without rateLimit replaces the hook: no limit any more", async () => {
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rate` })).status).toBe(200)
      expect(JSON.parse((await hookView(router, host)).text).rateLimit).toBeNull()
    })
  })

  describe("secret rotation", () => {
    const host = "rotate.views.example"
    let s1 = ""
    let s2 = ""

    test("before rotating, a delivery carries one signature, with the generated secret", async () => {
      const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/rotate` })
      expect(response.status).toBe(201)
      s1 = (await jsonOf(response)).secret
      expect(s1).toMatch(/^whsec_/)
      const delivery = await capture.forRoom(await call(router, host))
      expect(signaturesOf(delivery)).toHaveLength(1)
      expect(verifies(s1, delivery)).toBe(true)
    })

    test("rotate-secret → 200 {host, secret, previousSecretExpiresAt} about rotationOverlap (1h) ahead", async () => {
      const before = Date.now()
      const response = await router.admin("POST", `/v1/hooks/${host}/rotate-secret`)
      const after = Date.now()
      expect(response.status).toBe(200)
      const body = await jsonOf(response)
      expect(Object.keys(body).sort()).toEqual(["host", "previousSecretExpiresAt", "secret"])
      expect(body.host).toBe(host)
      expect(body.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/)
      expect(Buffer.from(body.secret.slice("whsec_".length), "base64").length).toBeGreaterThanOrEqual(24)
      expect(body.secret).not.toBe(s1)
      expect(body.secret).not.toBe(DEFAULT_SECRET)
      s2 = body.secret
      const expires = Date.parse(body.previousSecretExpiresAt)
      expect(new Date(expires).toISOString()).toBe(body.previousSecretExpiresAt)
      const HOUR = 3_600_000
      expect(expires).toBeGreaterThanOrEqual(before + HOUR - 1_000)
      expect(expires).toBeLessThanOrEqual(after + HOUR + 1_000)
      // Still write-only.
      const view = await hookView(router, host)
      expect(JSON.parse(view.text)).toMatchObject({ host, hasOwnSecret: true, source: "api" })
      expect(view.text).not.toContain(s2.slice("whsec_".length))
      expect(view.text).not.toContain(s1.slice("whsec_".length))
    })

    test("during the overlap a delivery carries two signatures: S2 and S1 verify, others do not", async () => {
      const delivery = await capture.forRoom(await call(router, host))
      const signatures = signaturesOf(delivery)
      expect(signatures).toHaveLength(2)
      for (const signature of signatures) expect(signature).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/)
      expect(new Set(signatures).size).toBe(2)
      expect(verifies(s2, delivery)).toBe(true)
      expect(verifies(s1, delivery)).toBe(true)
      expect(verifies(secretOf(), delivery)).toBe(false)
      expect(verifies(DEFAULT_SECRET, delivery)).toBe(false)
    })

    test("a test send during the overlap is signed with both as well", async () => {
      const response = await router.admin("POST", `/v1/hooks/${host}/test`)
      expect(response.status).toBe(200)
      const body = await jsonOf(response)
      expect(body.delivered).toBe(true)
      const received = await capture.forTest(body.eventId)
      expect(signaturesOf(received)).toHaveLength(2)
      expect(verifies(s2, received)).toBe(true)
      expect(verifies(s1, received)).toBe(true)
    })

    test("rotating again replaces the previous secret: S3 and S2 verify, S1 no longer does", async () => {
      const response = await router.admin("POST", `/v1/hooks/${host}/rotate-secret`)
      expect(response.status).toBe(200)
      const s3 = (await jsonOf(response)).secret as string
      expect([s1, s2]).not.toContain(s3)
      const delivery = await capture.forRoom(await call(router, host))
      expect(signaturesOf(delivery)).toHaveLength(2)
      expect(verifies(s3, delivery)).toBe(true)
      expect(verifies(s2, delivery)).toBe(true)
      expect(verifies(s1, delivery)).toBe(false)
    })

    test("rotating a config-file hook → 409; unknown → 404; bad host → 400", async () => {
      await expectError(await router.admin("POST", "/v1/hooks/file.views.example/rotate-secret"), 409, "conflict")
      await expectError(await router.admin("POST", "/v1/hooks/plain.views.example/rotate-secret"), 409, "conflict")
      await expectError(await router.admin("POST", "/v1/hooks/unknown.views.example/rotate-secret"), 404, "not_found")
      await expectBadRequest(await router.admin("POST", `/v1/hooks/${encodeURIComponent("bad_host!")}/rotate-secret`), "host")
      // The file hook still signs with its own secret alone.
      const delivery = await capture.forRoom(await call(router, "file.views.example"))
      expect(signaturesOf(delivery)).toHaveLength(1)
      expect(verifies(FILE_SECRET, delivery)).toBe(true)
    })
  })

  describe("POST /v1/hooks/{host}/test", () => {
    test("against a receiver: 200 {delivered: true, status: 200}, and a router.test event that verifies", async () => {
      const secret = secretOf()
      const host = "test-ok.views.example"
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/test-ok`, secret })).status).toBe(201)
      const response = await router.admin("POST", `/v1/hooks/${host}/test`)
      expect(response.status).toBe(200)
      const body = await jsonOf(response)
      expect(body).toEqual({
        host,
        url: `${capture.url}/test-ok`,
        eventId: expect.stringMatching(/^test_/),
        delivered: true,
        status: 200,
        error: null,
        latencyMs: expect.any(Number)
      })
      expect(body.latencyMs).toBeGreaterThanOrEqual(0)

      const received = await capture.forTest(body.eventId)
      expect(received.path).toBe("/test-ok")
      expect(received.headers["webhook-id"]).toStartWith("test_")
      expect(verifies(secret, received)).toBe(true)
      expect(verifies(DEFAULT_SECRET, received)).toBe(false)
      expect(received.json).toMatchObject({
        type: "router.test",
        tenant: host,
        call: { room: null, sipCallId: null, from: null, to: null, domain: null },
        data: { event: "router.test", id: body.eventId }
      })
      // A test send is not a delivery: nothing is queued or recorded for the tenant.
      expect(await deliveriesOf(router, host)).toEqual([])
    })

    test("against a receiver answering 500: {delivered: false, status: 500}, sent once", async () => {
      const failing = startCapture({ status: 500 })
      try {
        const host = "test-500.views.example"
        expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${failing.url}/hook` })).status).toBe(201)
        const response = await router.admin("POST", `/v1/hooks/${host}/test`)
        expect(response.status).toBe(200)
        const body = await jsonOf(response)
        expect(body).toMatchObject({ host, delivered: false, status: 500 })
        expect(failing.requests).toHaveLength(1)
        expect(failing.requests[0]?.json?.type).toBe("router.test")
      } finally {
        failing.stop()
      }
    })

    test("against a closed port: delivered false, no status, an error", async () => {
      const host = "test-closed.views.example"
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `http://127.0.0.1:${closedPort()}/hook` })).status).toBe(201)
      const response = await router.admin("POST", `/v1/hooks/${host}/test`)
      expect(response.status).toBe(200)
      const body = await jsonOf(response)
      expect(body).toMatchObject({ host, delivered: false, status: null })
      expect(typeof body.error).toBe("string")
      expect(body.error.length).toBeGreaterThan(0)
    })

    test("unknown host → 404; bad host → 400", async () => {
      await expectError(await router.admin("POST", "/v1/hooks/unknown.views.example/test"), 404, "not_found")
      await expectBadRequest(await router.admin("POST", `/v1/hooks/${encodeURIComponent("bad_host!")}/test`), "host")
    })

    test("config-file hooks can be tested: with their own secret, or the default one", async () => {
      const own = await jsonOf(await router.admin("POST", "/v1/hooks/file.views.example/test"))
      expect(own).toMatchObject({ host: "file.views.example", delivered: true, status: 200 })
      const ownReceived = await capture.forTest(own.eventId)
      expect(ownReceived.path).toBe("/file")
      expect(verifies(FILE_SECRET, ownReceived)).toBe(true)
      expect(ownReceived.json).toMatchObject({ type: "router.test", tenant: "file.views.example" })

      const plain = await jsonOf(await router.admin("POST", "/v1/hooks/plain.views.example/test"))
      expect(plain).toMatchObject({ host: "plain.views.example", delivered: true, status: 200 })
      const plainReceived = await capture.forTest(plain.eventId)
      expect(plainReceived.path).toBe("/plain")
      expect(verifies(DEFAULT_SECRET, plainReceived)).toBe(true)
      expect(plainReceived.json).toMatchObject({ type: "router.test", tenant: "plain.views.example" })
    })

    test("each test send has its own webhook-id", async () => {
      const first = await jsonOf(await router.admin("POST", "/v1/hooks/plain.views.example/test"))
      const second = await jsonOf(await router.admin("POST", "/v1/hooks/plain.views.example/test"))
      expect(first.eventId).not.toBe(second.eventId)
    })
  })
})

// ---------------------------------------------------------------- short overlap

describe("secret rotation with a short rotationOverlap", () => {
  let router: RunningRouter
  let capture: Capture

  beforeAll(async () => {
    capture = startCapture()
    router = await startRouter({ signing: { rotationOverlap: "1s" } })
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
  })

  test("after the overlap only the new secret signs (one signature)", async () => {
    const host = "short.rotate.example"
    const created = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/short` })
    expect(created.status).toBe(201)
    const s1 = (await jsonOf(created)).secret as string
    const before = Date.now()
    const rotated = await router.admin("POST", `/v1/hooks/${host}/rotate-secret`)
    expect(rotated.status).toBe(200)
    const { secret: s2, previousSecretExpiresAt } = await jsonOf(rotated)
    const expires = Date.parse(previousSecretExpiresAt)
    expect(expires).toBeGreaterThanOrEqual(before + 1_000 - 500)
    expect(expires).toBeLessThan(Date.now() + 1_000 + 500)

    // Waiting on the clock is the point here; the margin only needs to beat clock granularity.
    await eventually(() => Date.now() > expires + 250, 10_000, "the overlap to end")
    const delivery = await capture.forRoom(await call(router, host))
    expect(signaturesOf(delivery)).toHaveLength(1)
    expect(verifies(s2, delivery)).toBe(true)
    expect(verifies(s1, delivery)).toBe(false)

    const sent = await jsonOf(await router.admin("POST", `/v1/hooks/${host}/test`))
    expect(sent.delivered).toBe(true)
    const received = await capture.forTest(sent.eventId)
    expect(signaturesOf(received)).toHaveLength(1)
    expect(verifies(s2, received)).toBe(true)
    expect(verifies(s1, received)).toBe(false)
  })
})

// ---------------------------------------------------------------- numbers

describe("numbers API", () => {
  let dir = ""
  const SHARED = "sip.platform.example"
  const HOOK = "dental.numbers.example"
  const HOOK_SECRET = secretOf()
  const OTHER = "other.numbers.example"
  // A number in the file names a hook of the file.
  const config = () => ({
    sharedDomains: [SHARED],
    numbers: [{ number: "+15550009999", host: "file-number.example" }],
    hooks: [{ host: "file-number.example", url: `${capture.url}/file` }]
  })
  let router: RunningRouter
  let capture: Capture

  beforeAll(async () => {
    capture = startCapture()
    dir = mkdtempSync(join(tmpdir(), "router-numbers-"))
    router = await startRouter(config(), dir)
    expect((await router.admin("PUT", `/v1/hooks/${HOOK}`, { url: `${capture.url}/dental`, secret: HOOK_SECRET })).status).toBe(201)
    expect((await router.admin("PUT", `/v1/hooks/${OTHER}`, { url: `${capture.url}/other` })).status).toBe(201)
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  test("PUT creates (201), then updates (200); the listing shows api and file numbers", async () => {
    const created = await router.admin("PUT", numberPath("+15557654321"), { host: OTHER })
    expect(created.status).toBe(201)
    expect(await jsonOf(created)).toEqual({ number: "+15557654321", host: OTHER, source: "api" })
    const updated = await router.admin("PUT", numberPath("+15557654321"), { host: HOOK })
    expect(updated.status).toBe(200)
    expect(await jsonOf(updated)).toEqual({ number: "+15557654321", host: HOOK, source: "api" })
    expect(await numbersListed(router)).toEqual([
      { number: "+15550009999", host: "file-number.example", source: "file" },
      { number: "+15557654321", host: HOOK, source: "api" }
    ])
  })

  test("GET /v1/numbers/{e164} shows one mapping; an unmapped number → 404", async () => {
    const response = await router.admin("GET", numberPath("+15557654321"))
    expect(response.status).toBe(200)
    expect(await jsonOf(response)).toEqual({ number: "+15557654321", host: HOOK, source: "api" })
    const file = await router.admin("GET", numberPath("+1 555 000 9999"))
    expect(file.status).toBe(200)
    expect(await jsonOf(file)).toEqual({ number: "+15550009999", host: "file-number.example", source: "file" })
    await expectError(await router.admin("GET", numberPath("+15550000000")), 404, "not_found")
    await expectBadRequest(await router.admin("GET", numberPath("call-me")), "number")
  })

  test("formatted numbers in the path normalise to E.164: every spelling is the same entry", async () => {
    const created = await router.admin("PUT", numberPath("+1 (555) 765-4322"), { host: HOOK })
    expect(created.status).toBe(201)
    expect((await jsonOf(created)).number).toBe("+15557654322")
    for (const spelling of ["+1-555-765-4322", "+1.555.765.4322", "tel:+15557654322", " +15557654322 ", "TEL:+1 555 765 4322"]) {
      const response = await router.admin("PUT", numberPath(spelling), { host: HOOK })
      expect({ spelling, status: response.status }).toEqual({ spelling, status: 200 })
      expect((await jsonOf(response)).number).toBe("+15557654322")
    }
    expect((await numbersListed(router)).filter((n) => n.number === "+15557654322")).toHaveLength(1)
    // Deleted by another spelling.
    expect((await router.admin("DELETE", numberPath("+1 (555) 765 4322"))).status).toBe(204)
    expect((await numbersListed(router)).some((n) => n.number === "+15557654322")).toBe(false)
  })

  test("numbers that are no possible number → 400 naming number; nothing stored", async () => {
    const before = await numbersListed(router)
    for (const bad of ["call-me", "+12345", "+0123456789", "+1234567890123456", "+1 555 CALL NOW", "++15557654321", "%2B1", "+999 1234 5678"]) {
      const response = await router.admin("PUT", numberPath(bad), { host: HOOK })
      expect({ bad, status: response.status }).toEqual({ bad, status: 400 })
      await expectBadRequest(response, "number")
      const del = await router.admin("DELETE", numberPath(bad))
      expect({ bad, status: del.status }).toEqual({ bad, status: 400 })
    }
    expect(await numbersListed(router)).toEqual(before)
  })

  test("without defaultCountry a national spelling → 400 saying so, rather than a guessed country", async () => {
    for (const national of ["(555) 123-0010", "5551230010", "1.555.123.0010"]) {
      const message = await expectBadRequest(await router.admin("PUT", numberPath(national), { host: HOOK }), "number")
      expect(message).toBe(`number: "${national}" is a national number: write it with + and its country code, or set defaultCountry`)
    }
    expect((await numbersListed(router)).some((n) => n.number.endsWith("5551230010"))).toBe(false)
  })

  test("the body is {host} exactly: bad host, missing host, unknown field, bad JSON → 400", async () => {
    const path = numberPath("+15557650000")
    for (const host of ["bad host!", "a..b", "*.com", 42, null, ""]) {
      await expectBadRequest(await router.admin("PUT", path, { host }), "host")
    }
    await expectBadRequest(await router.admin("PUT", path, {}), "host")
    const extra = await expectBadRequest(await router.admin("PUT", path, { host: HOOK, extra: 1 }), "extra")
    expect(extra).toContain("extra")
    await expectBadRequest(await router.admin("PUT", path, "{nope"), "body")
    expect((await numbersListed(router)).some((n) => n.number === "+15557650000")).toBe(false)
  })

  test("DELETE → 204, then 404", async () => {
    expect((await router.admin("PUT", numberPath("+15557650001"), { host: HOOK })).status).toBe(201)
    const first = await router.admin("DELETE", numberPath("+15557650001"))
    expect(first.status).toBe(204)
    expect(await first.text()).toBe("")
    await expectError(await router.admin("DELETE", numberPath("+15557650001")), 404, "not_found")
    expect((await numbersListed(router)).some((n) => n.number === "+15557650001")).toBe(false)
  })

  test("a number from the config file → 409 on PUT and DELETE, and stays as it is", async () => {
    await expectError(await router.admin("PUT", numberPath("+15550009999"), { host: HOOK }), 409, "conflict")
    await expectError(await router.admin("PUT", numberPath("+1 (555) 000-9999"), { host: HOOK }), 409, "conflict")
    await expectError(await router.admin("DELETE", numberPath("+15550009999")), 409, "conflict")
    expect((await numbersListed(router)).find((n) => n.number === "+15550009999")).toEqual({
      number: "+15550009999",
      host: "file-number.example",
      source: "file"
    })
  })

  test("a call to the shared domain dialling an API number reaches that number's hook; after DELETE it is unroutable", async () => {
    expect((await router.admin("PUT", numberPath("+15557654321"), { host: HOOK })).status).toBe(200)
    const room = await call(router, SHARED, "+1 (555) 765-4321")
    const delivery = await capture.forRoom(room)
    expect(delivery.path).toBe("/dental")
    expect(verifies(HOOK_SECRET, delivery)).toBe(true)
    expect(delivery.json.tenant).toBe(HOOK)
    expect(delivery.json.call.domain).toBe(SHARED)

    expect((await router.admin("DELETE", numberPath("+15557654321"))).status).toBe(204)
    const before = await router.metric(UNROUTABLE, { reason: "unknown_domain" })
    const lost = await call(router, SHARED, "+15557654321")
    await eventually(
      async () => (await router.metric(UNROUTABLE, { reason: "unknown_domain" })) === before + 1,
      WAIT,
      "the call after DELETE to count as unroutable"
    )
    const unroutable = (await jsonOf(await router.admin("GET", "/v1/unroutable?limit=10"))).items as Array<Record<string, any>>
    expect(unroutable.find((u) => u.room === lost)).toMatchObject({ domain: SHARED, reason: "unknown_domain" })
    expect(capture.requests.some((r) => r.json?.call?.room === lost)).toBe(false)
  })

  test("API numbers survive a restart on the same database; deleted ones stay deleted", async () => {
    expect((await router.admin("PUT", numberPath("+15557654323"), { host: HOOK })).status).toBe(201)
    expect((await router.admin("PUT", numberPath("+15557654324"), { host: "other.numbers.example" })).status).toBe(201)
    expect((await router.admin("DELETE", numberPath("+15557654324"))).status).toBe(204)
    const before = await numbersListed(router)
    expect(await router.stop()).toBe(0)

    router = await startRouter(config(), dir)
    const after = await numbersListed(router)
    expect(after).toEqual(before)
    expect(after.some((n) => n.number === "+15557654323" && n.host === HOOK && n.source === "api")).toBe(true)
    expect(after.some((n) => n.number === "+15557654324")).toBe(false)

    const delivery = await capture.forRoom(await call(router, SHARED, "+15557654323"))
    expect(delivery.path).toBe("/dental")
    expect(verifies(HOOK_SECRET, delivery)).toBe(true)
  })
})

// ---------------------------------------------------------------- tenant tokens

describe("tenant-scoped tokens", () => {
  const TENANT_TOKEN = `tenant-token-${randomBytes(12).toString("hex")}`
  const OTHER_SECRET = secretOf()
  const DRSMITH_SECRET = secretOf()
  let router: RunningRouter
  let capture: Capture
  const ids: Record<string, number> = {}

  const asTenant = (method: string, path: string, body?: unknown) => router.admin(method, path, body, TENANT_TOKEN)

  beforeAll(async () => {
    capture = startCapture()
    router = await startRouter({
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: ["calls.drsmith.com", "*.citydental.com"] }] }
    })
    const hooks: Array<[string, Record<string, unknown>]> = [
      ["calls.drsmith.com", { url: `${capture.url}/drsmith`, secret: DRSMITH_SECRET }],
      ["north.citydental.com", { url: `${capture.url}/north` }],
      ["*.citydental.com", { url: `${capture.url}/citywild` }],
      ["citydental.com", { url: `${capture.url}/cityapex` }],
      ["other.example.com", { url: `${capture.url}/other`, secret: OTHER_SECRET }]
    ]
    for (const [host, body] of hooks) expect((await router.admin("PUT", `/v1/hooks/${host}`, body)).status).toBe(201)
    for (const [number, host] of [
      ["+15551110001", "calls.drsmith.com"],
      ["+15551110002", "other.example.com"],
      ["+15551110003", "north.citydental.com"],
      ["+15551110004", "citydental.com"]
    ] as const) {
      expect((await router.admin("PUT", numberPath(number), { host })).status).toBe(201)
    }
    // One delivered call each for an own and a foreign tenant.
    const own = await call(router, "calls.drsmith.com")
    const foreign = await call(router, "other.example.com")
    ids.own = (await settled(router, "calls.drsmith.com", own, "delivered")).id
    ids.foreign = (await settled(router, "other.example.com", foreign, "delivered")).id
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
  })

  test("GET /v1/hooks lists only its hosts, including hosts under its wildcard but not the apex", async () => {
    expect(await hostsListed(router, TENANT_TOKEN)).toEqual(["*.citydental.com", "calls.drsmith.com", "north.citydental.com"])
    expect(await hostsListed(router)).toEqual(["*.citydental.com", "calls.drsmith.com", "citydental.com", "north.citydental.com", "other.example.com"])
  })

  test("GET/PUT/DELETE/rotate/test on another host → 403 forbidden, and nothing changes", async () => {
    const testsBefore = capture.requests.filter((r) => r.json?.type === "router.test").length
    for (const host of ["other.example.com", "citydental.com", "unknown.example.org", "*.drsmith.com", "*.example.com"]) {
      const path = `/v1/hooks/${encodeURIComponent(host)}`
      const attempts: Array<[string, string, unknown]> = [
        ["GET", path, undefined],
        ["PUT", path, { url: `${capture.url}/stolen` }],
        ["DELETE", path, undefined],
        ["POST", `${path}/rotate-secret`, undefined],
        ["POST", `${path}/test`, undefined]
      ]
      for (const [method, target, body] of attempts) {
        const response = await asTenant(method, target, body)
        expect({ method, target, status: response.status }).toEqual({ method, target, status: 403 })
        expect((await jsonOf(response)).error.code).toBe("forbidden")
      }
    }
    expect(await hostsListed(router)).toEqual(["*.citydental.com", "calls.drsmith.com", "citydental.com", "north.citydental.com", "other.example.com"])
    expect(JSON.parse((await hookView(router, "other.example.com")).text).url).toBe(`${capture.url}/other`)
    expect(JSON.parse((await hookView(router, "citydental.com")).text).url).toBe(`${capture.url}/cityapex`)
    expect(capture.requests.filter((r) => r.json?.type === "router.test").length).toBe(testsBefore)
    expect(capture.requests.some((r) => r.path === "/stolen")).toBe(false)
    // Not rotated: one signature, still the original secret.
    const delivery = await capture.forRoom(await call(router, "other.example.com"))
    expect(delivery.path).toBe("/other")
    expect(signaturesOf(delivery)).toHaveLength(1)
    expect(verifies(OTHER_SECRET, delivery)).toBe(true)
  })

  test("on its own hosts it can GET, PUT (update and create under its wildcard), rotate and test", async () => {
    const view = await hookView(router, "calls.drsmith.com", TENANT_TOKEN)
    expect(view.status).toBe(200)
    expect(JSON.parse(view.text)).toMatchObject({ host: "calls.drsmith.com", source: "api", hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null })
    expect((await hookView(router, "*.citydental.com", TENANT_TOKEN)).status).toBe(200)

    const updated = await asTenant("PUT", "/v1/hooks/north.citydental.com", { url: `${capture.url}/north-2` })
    expect(updated.status).toBe(200)
    const created = await asTenant("PUT", "/v1/hooks/south.citydental.com", { url: `${capture.url}/south`, rateLimit: "50/s" })
    expect(created.status).toBe(201)
    expect(await hostsListed(router, TENANT_TOKEN)).toEqual([
      "*.citydental.com",
      "calls.drsmith.com",
      "north.citydental.com",
      "south.citydental.com"
    ])

    const rotated = await asTenant("POST", "/v1/hooks/south.citydental.com/rotate-secret")
    expect(rotated.status).toBe(200)
    const { secret } = await jsonOf(rotated)
    const sent = await asTenant("POST", "/v1/hooks/south.citydental.com/test")
    expect(sent.status).toBe(200)
    const body = await jsonOf(sent)
    expect(body).toMatchObject({ host: "south.citydental.com", delivered: true, status: 200 })
    expect(verifies(secret, await capture.forTest(body.eventId))).toBe(true)

    expect((await asTenant("DELETE", "/v1/hooks/south.citydental.com")).status).toBe(204)
    expect(await hostsListed(router)).not.toContain("south.citydental.com")
  })

  test("numbers: the listing is filtered; mapping a new number, moving one, or touching a foreign one → 403; its own it reads and releases", async () => {
    expect((await numbersListed(router, TENANT_TOKEN)).map((n) => n.number)).toEqual(["+15551110001", "+15551110003"])

    await expectError(await asTenant("PUT", numberPath("+15551110009"), { host: "other.example.com" }), 403, "forbidden")
    await expectError(await asTenant("PUT", numberPath("+15551110009"), { host: "citydental.com" }), 403, "forbidden")
    // A number another tenant holds cannot be moved to an own host, nor deleted.
    await expectError(await asTenant("PUT", numberPath("+15551110002"), { host: "calls.drsmith.com" }), 403, "forbidden")
    await expectError(await asTenant("DELETE", numberPath("+15551110002")), 403, "forbidden")
    await expectError(await asTenant("DELETE", numberPath("+15551110004")), 403, "forbidden")
    // Reading it is refused the same way, without naming the host it belongs to.
    const foreign = await asTenant("GET", numberPath("+15551110002"))
    expect(foreign.status).toBe(403)
    expect(await foreign.text()).not.toContain("other.example.com")

    // An unmapped number may be another customer's (a port in progress): a tenant cannot take it, even for its own host.
    const taken = await expectError(await asTenant("PUT", numberPath("+15551110009"), { host: "north.citydental.com" }), 403, "forbidden")
    expect(taken).toBe("+15551110009 is not mapped: an operator token maps a new number")
    // Nor move its own number, even between its own hosts; putting it where it is changes nothing and is allowed.
    const moved = await expectError(await asTenant("PUT", numberPath("+15551110001"), { host: "north.citydental.com" }), 403, "forbidden")
    expect(moved).toBe("+15551110001 is mapped to calls.drsmith.com: an operator token moves a number")
    expect((await asTenant("PUT", numberPath("+1 555 111 0001"), { host: "calls.drsmith.com" })).status).toBe(200)
    expect((await numbersListed(router)).some((n) => n.number === "+15551110009")).toBe(false)

    // What the operator maps to its host, the tenant reads and releases.
    expect((await router.admin("PUT", numberPath("+15551110009"), { host: "north.citydental.com" })).status).toBe(201)
    const own = await asTenant("GET", numberPath("+15551110009"))
    expect(own.status).toBe(200)
    expect(await jsonOf(own)).toEqual({ number: "+15551110009", host: "north.citydental.com", source: "api" })
    expect((await asTenant("DELETE", numberPath("+15551110009"))).status).toBe(204)

    expect(await numbersListed(router)).toEqual([
      { number: "+15551110001", host: "calls.drsmith.com", source: "api" },
      { number: "+15551110002", host: "other.example.com", source: "api" },
      { number: "+15551110003", host: "north.citydental.com", source: "api" },
      { number: "+15551110004", host: "citydental.com", source: "api" }
    ])
  })

  test("deliveries: only with its own tenant named; another tenant's delivery is absent (404)", async () => {
    await expectError(await asTenant("GET", "/v1/deliveries"), 403, "forbidden")
    await expectError(await asTenant("GET", "/v1/deliveries?status=delivered"), 403, "forbidden")
    await expectError(await asTenant("GET", "/v1/deliveries?tenant=other.example.com"), 403, "forbidden")
    await expectError(await asTenant("GET", "/v1/deliveries?tenant=citydental.com"), 403, "forbidden")

    const own = await asTenant("GET", "/v1/deliveries?tenant=calls.drsmith.com")
    expect(own.status).toBe(200)
    const items = (await jsonOf(own)).items as Array<Record<string, any>>
    expect(items.length).toBeGreaterThanOrEqual(1)
    expect(items.every((d) => d.tenant === "calls.drsmith.com")).toBe(true)
    expect(items.map((d) => d.id)).toContain(ids.own)
    expect((await asTenant("GET", `/v1/deliveries?tenant=${encodeURIComponent("*.citydental.com")}`)).status).toBe(200)

    const mine = await asTenant("GET", `/v1/deliveries/${ids.own}`)
    expect(mine.status).toBe(200)
    expect((await jsonOf(mine)).tenant).toBe("calls.drsmith.com")
    await expectError(await asTenant("GET", `/v1/deliveries/${ids.foreign}`), 404, "not_found")
    await expectError(await asTenant("POST", `/v1/deliveries/${ids.foreign}/retry`), 404, "not_found")
    await expectError(await asTenant("POST", "/v1/tenants/other.example.com/recover?since=2020-01-01T00:00:00Z"), 403, "forbidden")
  })

  test("GET /v1/unroutable → 403 for a tenant token", async () => {
    await expectError(await asTenant("GET", "/v1/unroutable"), 403, "forbidden")
  })

  test("the operator token still sees everything", async () => {
    const all = await router.admin("GET", "/v1/deliveries")
    expect(all.status).toBe(200)
    const tenants = new Set(((await jsonOf(all)).items as Array<{ tenant: string }>).map((d) => d.tenant))
    expect(tenants.has("calls.drsmith.com")).toBe(true)
    expect(tenants.has("other.example.com")).toBe(true)
    expect((await router.admin("GET", `/v1/deliveries/${ids.foreign}`)).status).toBe(200)
    expect((await router.admin("GET", "/v1/unroutable")).status).toBe(200)
    expect((await numbersListed(router)).length).toBe(4)
    expect((await hookView(router, "other.example.com")).status).toBe(200)
  })

  test("a tenant token is compared whole: a prefix, an extension or another case → 401", async () => {
    for (const token of [TENANT_TOKEN.slice(0, -1), TENANT_TOKEN.slice(0, 16), `${TENANT_TOKEN}x`, TENANT_TOKEN.toUpperCase()]) {
      const response = await router.admin("GET", "/v1/hooks", undefined, token)
      expect({ token, status: response.status }).toEqual({ token, status: 401 })
      expect((await jsonOf(response)).error.code).toBe("unauthorized")
    }
    expect((await router.admin("GET", "/v1/hooks", undefined, TENANT_TOKEN)).status).toBe(200)
  })

  test("the tenant's own delivery is signed with its own secret", async () => {
    const delivery = capture.requests.find((r) => r.path === "/drsmith")
    expect(delivery).toBeDefined()
    expect(verifies(DRSMITH_SECRET, delivery!)).toBe(true)
  })
})

// ---------------------------------------------------------------- safe targets

/** Names the CI script puts in /etc/hosts; a laptop without them skips, CI fails. */
const TEST_NAMES: Record<string, ReadonlyArray<string>> = {
  "loopback-tenant.test": ["127.0.0.1"],
  "private-tenant.test": ["10.20.30.40"],
  "mixed-tenant.test": ["10.20.30.40", "8.8.8.8"]
}
const nameProblems: string[] = []
for (const [name, expected] of Object.entries(TEST_NAMES)) {
  const found = await dns.lookup(name, { all: true }).then(
    (all) => [...new Set(all.map((a) => a.address))].sort(),
    (error: Error) => [`error: ${error.message}`]
  )
  if (JSON.stringify(found) !== JSON.stringify(expected)) nameProblems.push(`${name} resolves to ${found.join(", ")}, expected ${expected.join(", ")}`)
}
const NAMES_MSG = `test names missing from /etc/hosts (.ci/run adds them): ${nameProblems.join("; ")}`
const SKIP_NAMES = nameProblems.length > 0 && process.env.CI !== "true"
const requireNames = () => {
  if (nameProblems.length > 0) throw new Error(NAMES_MSG)
}
if (SKIP_NAMES) console.warn(`skipping name-resolution tests: ${NAMES_MSG}`)

describe("safe targets (security.allowPrivateTargets: false)", () => {
  let router: RunningRouter
  let receiver: Capture

  beforeAll(async () => {
    receiver = startCapture()
    router = await startRouter({ security: { allowPrivateTargets: false } })
  })
  afterAll(async () => {
    await router?.stop()
    receiver?.stop()
  })

  const refusedUrls = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://foo.localhost/",
    "http://LOCALHOST./",
    "http://[::1]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "https://127.0.0.1:8443/hook"
  ]

  test("registration: each private, loopback or reserved literal → 400 naming url", async () => {
    for (const url of refusedUrls) {
      const response = await router.admin("PUT", "/v1/hooks/ssrf.example.com", { url })
      expect({ url, status: response.status }).toEqual({ url, status: 400 })
      await expectBadRequest(response, "url")
    }
    await expectError(await router.admin("GET", "/v1/hooks/ssrf.example.com"), 404, "not_found")
  })

  test("a public literal and a name are accepted (201)", async () => {
    const literal = await router.admin("PUT", "/v1/hooks/public-literal.example.com", { url: "https://8.8.8.8/hook" })
    expect(literal.status).toBe(201)
    const name = await router.admin("PUT", "/v1/hooks/public-name.example.com", { url: "https://hooks.example.com/x" })
    expect(name.status).toBe(201)
    const v6 = await router.admin("PUT", "/v1/hooks/public-v6.example.com", { url: "https://[2001:4860:4860::8888]/hook" })
    expect(v6.status).toBe(201)
  })

  test("changing an accepted hook to a private target → 400, and it keeps its URL", async () => {
    await expectBadRequest(await router.admin("PUT", "/v1/hooks/public-literal.example.com", { url: "http://10.0.0.1/hook" }), "url")
    expect(JSON.parse((await hookView(router, "public-literal.example.com")).text).url).toBe("https://8.8.8.8/hook")
  })

  describe.skipIf(SKIP_NAMES)("delivery time: names are resolved and every address checked", () => {
    const cases = [
      { tenant: "private.ssrf.example", name: "private-tenant.test", address: "10.20.30.40" },
      { tenant: "mixed.ssrf.example", name: "mixed-tenant.test", address: "10.20.30.40" },
      { tenant: "loopback.ssrf.example", name: "loopback-tenant.test", address: "127.0.0.1" }
    ]

    for (const { tenant, name, address } of cases) {
      test(`${name} (${address}): accepted at PUT, refused when delivering, after ONE attempt`, async () => {
        requireNames()
        const url = `http://${name}:${receiver.port}/`
        expect((await router.admin("PUT", `/v1/hooks/${tenant}`, { url })).status).toBe(201)
        const refusedBefore = await router.metric(ATTEMPTS, { tenant, result: "refused" })
        const room = await call(router, tenant)
        const failed = await settled(router, tenant, room, "failed")
        expect(failed).toMatchObject({ tenant, url, status: "failed", attempts: 1, lastStatus: null })
        expect(failed.lastError).toContain(address)
        expect(failed.lastError).toContain(name)

        const detail = await jsonOf(await router.admin("GET", `/v1/deliveries/${failed.id}`))
        expect(detail.history).toHaveLength(1)
        expect(detail.history[0]).toMatchObject({ attempt: 1, status: null })
        expect(detail.history[0].error).toContain(address)
        await eventually(
          async () => (await router.metric(ATTEMPTS, { tenant, result: "refused" })) === refusedBefore + 1,
          WAIT,
          `refused attempt counted for ${tenant}`
        )
        // The loopback receiver is where the packet would have gone for loopback-tenant.test: it saw nothing.
        expect(receiver.requests).toHaveLength(0)
      })
    }

    test("a test send to a refused name reports the refusal and sends nothing", async () => {
      requireNames()
      const response = await router.admin("POST", "/v1/hooks/private.ssrf.example/test")
      expect(response.status).toBe(200)
      const body = await jsonOf(response)
      expect(body).toMatchObject({ delivered: false, status: null })
      expect(body.error).toContain("10.20.30.40")
      expect(receiver.requests).toHaveLength(0)
    })
  })
})

describe("safe targets in the config file", () => {
  let dir = ""
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "router-ssrf-config-"))
  })
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const run = async (hooks: unknown[]) => {
    const path = join(dir, `router-${randomBytes(4).toString("hex")}.yaml`)
    writeFileSync(path, Bun.YAML.stringify(testConfig(dir, { security: { allowPrivateTargets: false }, hooks })))
    const proc = Bun.spawn(["bun", "run", join(ROOT, "src/main.ts"), "--config", path], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ROUTER_CONFIG: "", ROUTER_ADMIN_TOKEN: "", LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "" }
    })
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000)
    const code = await proc.exited
    clearTimeout(timer)
    return { code, stderr: await new Response(proc.stderr).text() }
  }

  test("a hook with a private URL stops start-up naming hooks.0.url", async () => {
    const { code, stderr } = await run([{ host: "a.example.com", url: "http://127.0.0.1:9000/voice" }])
    expect(code).toBe(1)
    expect(stderr).toContain("hooks.0.url")
    expect(stderr).toContain("127.0.0.1")
  })

  test("the index names the offending hook", async () => {
    const { code, stderr } = await run([
      { host: "a.example.com", url: "https://hooks.example.com/a" },
      { host: "b.example.com", url: "http://169.254.169.254/latest" }
    ])
    expect(code).toBe(1)
    expect(stderr).toContain("hooks.1.url")
  })
})

// ---------------------------------------------------------------- pinning the checked address

/** A self-signed certificate for `name`, made with openssl; undefined if openssl is missing or fails. */
const makeCertificate = (dir: string, name: string) => {
  const openssl = Bun.which("openssl")
  if (!openssl) return undefined
  const key = join(dir, `${name}.key`)
  const cert = join(dir, `${name}.crt`)
  const made = Bun.spawnSync(
    [
      openssl,
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-sha256",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      `subjectAltName=DNS:${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-keyout",
      key,
      "-out",
      cert
    ],
    { stdout: "pipe", stderr: "pipe" }
  )
  if (made.exitCode !== 0) return undefined
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") }
}

const certDir = mkdtempSync(join(tmpdir(), "router-pinning-certs-"))
afterAll(() => rmSync(certDir, { recursive: true, force: true }))
const goodCert = makeCertificate(certDir, "loopback-tenant.test")
const otherCert = makeCertificate(certDir, "other-tenant.test")
// .ci/run installs openssl: a laptop without it skips these (visibly), CI fails them.
const SKIP_TLS = SKIP_NAMES || ((!goodCert || !otherCert) && process.env.CI !== "true")
if (!goodCert || !otherCert) console.warn("https pinning tests: openssl could not make test certificates")

describe.skipIf(SKIP_NAMES)("connections go to the checked address under the URL's name", () => {
  const secret = secretOf()
  let router: RunningRouter
  let plain: Capture
  let tlsGood: Capture | undefined
  let tlsWrongName: Capture | undefined

  beforeAll(async () => {
    plain = startCapture()
    const env: Record<string, string> = {}
    if (goodCert && otherCert) {
      tlsGood = startCapture({ tls: goodCert })
      tlsWrongName = startCapture({ tls: otherCert })
      // Both are trusted as roots: only the name can fail the wrong one.
      const bundle = join(certDir, "trusted.pem")
      writeFileSync(bundle, goodCert.cert + otherCert.cert)
      env.NODE_EXTRA_CA_CERTS = bundle
    }
    router = await startRouter({ security: { allowPrivateTargets: true } }, undefined, env)
  })
  afterAll(async () => {
    await router?.stop()
    plain?.stop()
    tlsGood?.stop()
    tlsWrongName?.stop()
  })

  test("http: delivered to the resolved address, with Host still the URL's name and port", async () => {
    requireNames()
    const host = "pin.example.com"
    const url = `http://loopback-tenant.test:${plain.port}/voice`
    expect((await router.admin("PUT", `/v1/hooks/${host}`, { url, secret })).status).toBe(201)
    const room = await call(router, host)
    const delivery = await plain.forRoom(room)
    expect(delivery.path).toBe("/voice")
    expect(delivery.headers.host).toBe(`loopback-tenant.test:${plain.port}`)
    expect(verifies(secret, delivery)).toBe(true)
    expect(await settled(router, host, room, "delivered")).toMatchObject({ url, attempts: 1, lastStatus: 200 })
  })

  test.skipIf(SKIP_TLS)("https: the certificate is checked against the name, not the address", async () => {
    requireNames()
    const receiver = tlsGood!
    const host = "tls.example.com"
    const url = `https://loopback-tenant.test:${receiver.port}/tls`
    expect((await router.admin("PUT", `/v1/hooks/${host}`, { url, secret })).status).toBe(201)
    const room = await call(router, host)
    const delivered = await settled(router, host, room, "delivered")
    expect(delivered).toMatchObject({ url, lastStatus: 200 })
    const received = await receiver.forRoom(room)
    expect(received.path).toBe("/tls")
    expect(received.headers.host).toBe(`loopback-tenant.test:${receiver.port}`)
    expect(verifies(secret, received)).toBe(true)
  })

  test.skipIf(SKIP_TLS)("https: a certificate for another name fails the delivery with a TLS error", async () => {
    requireNames()
    const receiver = tlsWrongName!
    const host = "tls-mismatch.example.com"
    const url = `https://loopback-tenant.test:${receiver.port}/tls`
    expect((await router.admin("PUT", `/v1/hooks/${host}`, { url, secret })).status).toBe(201)
    const room = await call(router, host)
    const failed = await settled(router, host, room, "failed")
    expect(failed.lastStatus).toBeNull()
    // Both certificates are trusted, so the only thing wrong is the name.
    expect(failed.lastError).toMatch(/altname|host ?name|does not match/i)
    expect(receiver.requests).toHaveLength(0)

    const sent = await jsonOf(await router.admin("POST", `/v1/hooks/${host}/test`))
    expect(sent).toMatchObject({ delivered: false, status: null })
    expect(sent.error).toMatch(/altname|host ?name|does not match/i)
  })
})
