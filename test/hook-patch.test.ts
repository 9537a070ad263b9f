/**
 * `PATCH /v1/hooks/{host}` through the real process and a real tenant that
 * verifies with `standardwebhooks`: only the fields given change (the secret,
 * headers, auth, events, rate limit and maxAge are kept, and the next call
 * goes to the new URL with them), null removes an optional field, and the
 * refusals (404, 409, 400, 403) are those of PUT.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { startCapture, verifies, type Capture, type Captured } from "./support/capture.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const secretOf = () => "whsec_" + randomBytes(32).toString("base64")
const unique = (label: string) => `${label}${randomBytes(12).toString("hex")}`
const SECRET = secretOf()
const API_KEY = unique("apikey")
const BEARER = unique("bearer")
const TENANT_TOKEN = "tenant-token-patch-0123456789"
const TENANT_HOST = "tenant.patch.example"
const FILE_HOST = "file.patch.example"

let roomCounter = 0

describe("PATCH /v1/hooks/{host}", () => {
  let router: RunningRouter
  let capture: Capture

  beforeAll(async () => {
    capture = startCapture()
    router = await startRouter({
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [TENANT_HOST] }] },
      hooks: [{ host: FILE_HOST, url: `${capture.url}/file` }]
    })
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
  })

  const patch = (host: string, body: unknown, token?: string) => router.admin("PATCH", `/v1/hooks/${encodeURIComponent(host)}`, body, token)
  const view = async (host: string) => (await router.admin("GET", `/v1/hooks/${encodeURIComponent(host)}`)).json() as Promise<Record<string, unknown>>

  /** A new call for `domain`; resolves with each request of it that arrived, once `count` have. */
  const call = async (domain: string, count = 1): Promise<Array<Captured>> => {
    const room = `room-patch-${Date.now().toString(36)}-${++roomCounter}`
    expect((await router.post(sipParticipantEvent("participant_joined", { room, xToIp: domain }))).status).toBe(200)
    await capture.waitFor(() => capture.requests.filter((r) => r.json?.call?.room === room).length >= count, `${count} requests for ${room}`)
    return capture.requests.filter((r) => r.json?.call?.room === room)
  }

  /** A full API hook: its own secret, headers, auth, events (call events included), a rate limit and a maxAge. */
  const createFull = async (host: string, path: string) => {
    const created = await router.admin("PUT", `/v1/hooks/${host}`, {
      url: `${capture.url}${path}`,
      secret: SECRET,
      events: ["participant_joined", "call.started"],
      rateLimit: "50/s",
      maxAge: "10m",
      headers: { "X-Api-Key": API_KEY },
      auth: { bearer: BEARER }
    })
    expect(created.status).toBe(201)
  }

  test("only the url: the secret, headers, auth, events, rateLimit and maxAge are kept, and the next call goes to the new URL with them", async () => {
    const host = "keep.patch.example"
    await createFull(host, "/old")
    const before = await view(host)

    const response = await patch(host, { url: `${capture.url}/new` })
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(JSON.parse(text)).toEqual({ ...before, url: `${capture.url}/new`, cleared: [] })
    expect(JSON.parse(text)).toMatchObject({ events: ["participant_joined", "call.started"], rateLimit: "50/s", maxAge: "10m", headers: ["X-Api-Key"], hasAuth: true, hasOwnSecret: true })
    for (const secret of [SECRET, API_KEY, BEARER]) expect(text).not.toContain(secret)
    expect(await view(host)).toEqual({ ...before, url: `${capture.url}/new` })

    // The events filter still takes call.started: the call brings two requests, both to the new URL.
    const requests = await call(host, 2)
    expect(requests.map((r) => [r.path, r.json.type]).sort()).toEqual([
      ["/new", "call.started"],
      ["/new", "participant_joined"]
    ])
    for (const request of requests) {
      expect(verifies(SECRET, request)).toBe(true)
      expect(request.headers["x-api-key"]).toBe(API_KEY)
      expect(request.headers["authorization"]).toBe(`Bearer ${BEARER}`)
    }
    expect(capture.at("/old")).toEqual([])
  })

  test("null removes a field, and the answer names what it removed; a field it did not have is not named", async () => {
    const host = "clear.patch.example"
    await createFull(host, "/clear")
    const response = await patch(host, { headers: null, maxAge: null, rateLimit: "600/m" })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ headers: [], maxAge: null, rateLimit: "600/m", hasAuth: true, events: ["participant_joined", "call.started"], cleared: ["maxAge", "headers"] })

    const [request] = await call(host)
    expect(verifies(SECRET, request!)).toBe(true)
    expect(request!.headers["x-api-key"]).toBeUndefined()
    expect(request!.headers["authorization"]).toBe(`Bearer ${BEARER}`)

    // Already gone: nothing to name.
    const again = await patch(host, { headers: null, events: null, auth: null })
    expect(await again.json()).toMatchObject({ headers: [], events: null, hasAuth: false, cleared: ["events", "auth"] })
    // {} changes nothing.
    const none = await patch(host, {})
    expect(none.status).toBe(200)
    expect(await none.json()).toMatchObject({ url: `${capture.url}/clear`, rateLimit: "600/m", cleared: [] })
  })

  test("a new secret signs alone from the next delivery on (rotate-secret is the way with an overlap)", async () => {
    const host = "secret.patch.example"
    await createFull(host, "/secret")
    const next = secretOf()
    const response = await patch(host, { secret: next })
    expect(response.status).toBe(200)
    expect(await response.text()).not.toContain(next)
    const [request] = await call(host)
    expect(verifies(next, request!)).toBe(true)
    expect(verifies(SECRET, request!)).toBe(false)
    expect(request!.headers["x-api-key"]).toBe(API_KEY)
  })

  test("404 for an unknown host, 409 for a config-file hook, like PUT; nothing is created or changed", async () => {
    const unknown = await patch("nobody.patch.example", { url: `${capture.url}/x` })
    expect(unknown.status).toBe(404)
    expect(((await unknown.json()) as any).error).toEqual({ code: "not_found", message: "no hook for nobody.patch.example" })
    expect((await router.admin("GET", "/v1/hooks/nobody.patch.example")).status).toBe(404)

    const file = await patch(FILE_HOST, { url: `${capture.url}/hijack` })
    expect(file.status).toBe(409)
    expect(((await file.json()) as any).error.message).toContain("defined in the config file")
    expect((await view(FILE_HOST)).url).toBe(`${capture.url}/file`)
  })

  test("400 naming the field for a bad one, before anything changes; no refusal quotes a credential", async () => {
    const host = "bad.patch.example"
    await createFull(host, "/bad")
    const before = await view(host)
    const cases: Array<[unknown, string]> = [
      [{ url: "ftp://t.example/" }, "url"],
      [{ url: null }, "url"],
      [{ secret: null }, "secret"],
      [{ secret: "whsec_short" }, "secret"],
      [{ events: ["nope"] }, "events.0"],
      [{ rateLimit: "fast" }, "rateLimit"],
      [{ maxAge: "0s" }, "maxAge"],
      [{ headers: { Host: API_KEY } }, "headers.Host"],
      [{ auth: { bearer: `not a token ${BEARER}` } }, "auth.bearer"],
      [{ evnets: ["participant_joined"] }, "evnets"],
      [[], "body"]
    ]
    for (const [body, field] of cases) {
      const response = await patch(host, body)
      const text = await response.text()
      expect({ body, status: response.status }).toEqual({ body, status: 400 })
      const { error } = JSON.parse(text)
      expect({ body, code: error.code, field: error.message.split(":")[0] }).toEqual({ body, code: "bad_request", field })
      for (const secret of [API_KEY, BEARER]) expect(text).not.toContain(secret)
    }
    const notJson = await fetch(`${router.url}/v1/hooks/${host}`, { method: "PATCH", headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: "{nope" })
    expect(notJson.status).toBe(400)
    expect((await patch("bad..host", { url: `${capture.url}/x` })).status).toBe(400)
    expect(await view(host)).toEqual(before)
  })

  test("a tenant token: its own hook, yes; any other host, 403 whether it exists or not", async () => {
    const created = await router.admin("PUT", `/v1/hooks/${TENANT_HOST}`, { url: `${capture.url}/tenant` }, TENANT_TOKEN)
    expect(created.status).toBe(201)
    const { secret } = (await created.json()) as { secret: string }
    const own = await patch(TENANT_HOST, { url: `${capture.url}/tenant2`, maxAge: "30s" }, TENANT_TOKEN)
    expect(own.status).toBe(200)
    expect(await own.json()).toMatchObject({ host: TENANT_HOST, url: `${capture.url}/tenant2`, maxAge: "30s", cleared: [] })

    await createFull("other.patch.example", "/other")
    for (const host of ["other.patch.example", "nobody.other.example", FILE_HOST]) {
      const response = await patch(host, { url: `${capture.url}/stolen` }, TENANT_TOKEN)
      expect({ host, status: response.status }).toEqual({ host, status: 403 })
    }
    expect((await view("other.patch.example")).url).toBe(`${capture.url}/other`)
    // Still signed with the secret it was given when created.
    const [request] = await call(TENANT_HOST)
    expect(request!.path).toBe("/tenant2")
    expect(verifies(secret, request!)).toBe(true)
    expect(verifies(DEFAULT_SECRET, request!)).toBe(false)
  })
})
