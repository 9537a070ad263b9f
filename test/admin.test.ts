/**
 * The admin API (src/http/Admin.ts) through the real process: bearer-token
 * auth, input validation, the hook lifecycle as seen by new calls, wildcards,
 * persistence across a restart, and secrets that never come back out.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startCapture, verifies } from "./support/capture.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

// ---------------------------------------------------------------- helpers

const secretOf = (bytes: number) => "whsec_" + randomBytes(bytes).toString("base64")
const FILE_SECRET = secretOf(32)
const UNROUTABLE = "tenant_router_unroutable_total"


let roomCounter = 0
const newRoom = (label: string) => `room-${label}-${Date.now().toString(36)}-${++roomCounter}`

/** A new SIP call reaching the router for `domain`; LiveKit must always get 200. */
const call = async (router: RunningRouter, domain: string, room = newRoom(domain)) => {
  const response = await router.post(sipParticipantEvent("participant_joined", { room, xToIp: domain }))
  expect(response.status).toBe(200)
  expect(await jsonOf(response)).toEqual({ status: "received" })
  return room
}

/** A JSON answer, loosely typed: the assertions are the type check. */
const jsonOf = (response: Response): Promise<any> => response.json()

const rawRequest = (router: RunningRouter, method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
  fetch(`${router.url}${path}`, { method, headers: { "content-type": "application/json", ...headers }, ...(body === undefined ? {} : { body }) })

const expectError = async (response: Response, status: number, code: string) => {
  expect(response.status).toBe(status)
  expect(response.headers.get("content-type") ?? "").toContain("application/json")
  const body = (await jsonOf(response)) as { error: { code: string; message: string } }
  expect(body.error.code).toBe(code)
  expect(typeof body.error.message).toBe("string")
  return body.error.message
}

/** Fails naming the secret's label and where it leaked, so a failure is readable. */
const expectNoLeaks = (sources: Record<string, string>, secrets: Record<string, string>) => {
  const leaks: string[] = []
  for (const [label, secret] of Object.entries(secrets)) {
    // The key part alone is as secret as the whole thing.
    const needles = [secret, secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret]
    for (const [where, text] of Object.entries(sources)) if (needles.some((n) => text.includes(n))) leaks.push(`${label} in ${where}`)
  }
  expect(leaks).toEqual([])
}

const unknownDomainCount = (router: RunningRouter) => router.metric(UNROUTABLE, { reason: "unknown_domain" })

// ---------------------------------------------------------------- one router for most of the file

describe("admin API on a running router", () => {
  let router: RunningRouter
  let capture: ReturnType<typeof startCapture>
  /** Every secret this router was ever given or gave out, by label. */
  const secrets: Record<string, string> = { default: DEFAULT_SECRET, file: FILE_SECRET, "admin token": ADMIN_TOKEN }
  /** Every admin response body that must not carry a secret (all but the one-time PUT answers). */
  const responses: string[] = []

  const list = async () => {
    const response = await router.admin("GET", "/v1/hooks")
    expect(response.status).toBe(200)
    const text = await response.text()
    responses.push(text)
    return JSON.parse(text).hooks as Array<Record<string, unknown>>
  }
  const entry = async (host: string) => (await list()).find((h) => h.host === host)

  beforeAll(async () => {
    capture = startCapture()
    router = await startRouter({
      server: { maxBodyBytes: 4096 },
      // Tenants here live on loopback.
      security: { allowPrivateTargets: true },
      hooks: [
        { host: "file.example.com", url: `${capture.url}/file`, secret: FILE_SECRET },
        { host: "*.filewild.example.com", url: `${capture.url}/filewild` }
      ]
    })
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
  })

  describe("auth", () => {
    test("no Authorization header → 401 JSON error", async () => {
      await expectError(await rawRequest(router, "GET", "/v1/hooks"), 401, "unauthorized")
    })

    test("wrong tokens and wrong schemes → 401", async () => {
      const wrong = [
        "Bearer not-the-admin-token-at-all",
        `Bearer ${ADMIN_TOKEN}x`,
        `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
        `Bearer ${ADMIN_TOKEN.toUpperCase()}`,
        "Bearer ",
        "Bearer",
        ADMIN_TOKEN,
        `Basic ${ADMIN_TOKEN}`,
        `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}`
      ]
      for (const authorization of wrong) {
        const response = await rawRequest(router, "GET", "/v1/hooks", { authorization })
        expect({ authorization, status: response.status }).toEqual({ authorization, status: 401 })
        responses.push(await response.text())
      }
    })

    test("Bearer with the right token → 200 (scheme is case-insensitive)", async () => {
      for (const scheme of ["Bearer", "bearer"]) {
        const response = await rawRequest(router, "GET", "/v1/hooks", { authorization: `${scheme} ${ADMIN_TOKEN}` })
        expect(response.status).toBe(200)
        const body = await jsonOf(response)
        expect(Array.isArray(body.hooks)).toBe(true)
      }
    })

    test("auth is checked before anything else and an unauthorised write changes nothing", async () => {
      const bad = { authorization: "Bearer wrong-token-0123456789" }
      await expectError(await rawRequest(router, "PUT", "/v1/hooks/noauth.example.com", bad, "{nope"), 401, "unauthorized")
      await expectError(await rawRequest(router, "PUT", "/v1/hooks/bad_host!", bad, "{}"), 401, "unauthorized")
      await expectError(await rawRequest(router, "DELETE", "/v1/hooks/unknown.example.com", bad), 401, "unauthorized")
      await expectError(await rawRequest(router, "DELETE", "/v1/hooks/file.example.com", bad), 401, "unauthorized")
      await expectError(
        await rawRequest(router, "PUT", "/v1/hooks/noauth.example.com", {}, JSON.stringify({ url: `${capture.url}/noauth` })),
        401,
        "unauthorized"
      )
      await expectError(
        await rawRequest(router, "PUT", "/v1/hooks/file.example.com", bad, JSON.stringify({ url: `${capture.url}/stolen` })),
        401,
        "unauthorized"
      )
      expect(await entry("noauth.example.com")).toBeUndefined()
      expect((await entry("file.example.com"))?.url).toBe(`${capture.url}/file`)
    })
  })

  describe("validation", () => {
    const host = "invalid.example.com"
    const url = "https://tenant.example.com/hook"

    const expectBadRequest = async (response: Response, field: string) => {
      const message = await expectError(response, 400, "bad_request")
      // The message names the offending field first: "<field>: <what is wrong>".
      expect(message.startsWith(field)).toBe(true)
      return message
    }

    test("malformed or non-object JSON bodies → 400 naming body", async () => {
      for (const body of ["{nope", "", "{\"url\": ", "[]", "null", "\"https://x.example/\"", "42"]) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, body)
        expect({ body, status: response.status }).toEqual({ body, status: 400 })
        await expectBadRequest(response, "body")
      }
    })

    test("unknown field → 400 naming it", async () => {
      const message = await expectBadRequest(await router.admin("PUT", `/v1/hooks/${host}`, { url, bogus: 1 }), "bogus")
      expect(message).toContain("bogus")
    })

    test("missing url → 400 naming url", async () => {
      await expectBadRequest(await router.admin("PUT", `/v1/hooks/${host}`, {}), "url")
      await expectBadRequest(await router.admin("PUT", `/v1/hooks/${host}`, { secret: secretOf(32) }), "url")
    })

    test("hosts that are not host names → 400 naming host", async () => {
      // "*.com": HostPattern requires at least two labels after "*." (a wildcard may not cover a whole TLD), so it is refused.
      const hosts = ["bad_host!", "a..b", "*", "*.com", "*.", ".example.com", "-lead.example.com", "a*.example.com", "*.*.example.com", "x%41.example.com", "a%zz.example.com", "a%2Fb.example.com", "a b.example.com", "ünicode.example.com", `${"a".repeat(64)}.example.com`]
      for (const bad of hosts) {
        const response = await router.admin("PUT", `/v1/hooks/${encodeURIComponent(bad)}`, { url })
        expect({ bad, status: response.status }).toEqual({ bad, status: 400 })
        await expectBadRequest(response, "host")
        const del = await router.admin("DELETE", `/v1/hooks/${encodeURIComponent(bad)}`)
        expect({ bad, status: del.status }).toEqual({ bad, status: 400 })
        await expectBadRequest(del, "host")
      }
      // The path is decoded exactly once: "%2541" is the literal "%41", not "A".
      expect(await entry("xa.example.com")).toBeUndefined()
    })

    test("bad urls → 400 naming url", async () => {
      const urls: unknown[] = ["ftp://x", "https://user:pw@x.example/", "https://user@x.example/", "not a url", "/relative/hook", "", "javascript:alert(1)", "file:///etc/passwd", 42, null]
      for (const bad of urls) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: bad })
        expect({ bad, status: response.status }).toEqual({ bad, status: 400 })
        await expectBadRequest(response, "url")
      }
    })

    test("credentials in a url are not echoed back", async () => {
      const message = await expectBadRequest(
        await router.admin("PUT", `/v1/hooks/${host}`, { url: "https://user:hunter2hunter2@x.example/" }),
        "url"
      )
      expect(message).not.toContain("hunter2hunter2")
    })

    test("bad secrets → 400 naming secret", async () => {
      const bad: Record<string, unknown> = {
        "too short (23 bytes)": secretOf(23),
        "too long (65 bytes)": secretOf(65),
        "not base64": "whsec_not*base64!at~all#0123456789abcdefghij",
        "missing prefix": randomBytes(32).toString("base64"),
        "wrong prefix": "whsek_" + randomBytes(32).toString("base64"),
        "prefix only": "whsec_",
        "not a string": 12345
      }
      for (const [label, secret] of Object.entries(bad)) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url, secret })
        expect({ label, status: response.status }).toEqual({ label, status: 400 })
        await expectBadRequest(response, "secret")
      }
    })

    test("secrets of exactly 24 and 64 key bytes are accepted", async () => {
      const at24 = secretOf(24)
      const at64 = secretOf(64)
      secrets["24-byte secret"] = at24
      secrets["64-byte secret"] = at64
      const first = await router.admin("PUT", "/v1/hooks/boundary.example.com", { url, secret: at24 })
      expect(first.status).toBe(201)
      responses.push(await first.text())
      const second = await router.admin("PUT", "/v1/hooks/boundary.example.com", { url, secret: at64 })
      expect(second.status).toBe(200)
      responses.push(await second.text())
      expect(await router.admin("DELETE", "/v1/hooks/boundary.example.com").then((r) => r.status)).toBe(204)
    })

    test("unknown event names → 400 naming events", async () => {
      for (const events of [["nope"], ["participant_joined", "participant_exploded"], "participant_joined", [42]]) {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url, events })
        expect({ events, status: response.status }).toEqual({ events, status: 400 })
        await expectBadRequest(response, "events")
      }
    })

    test("body over server.maxBodyBytes → 413, with or without Content-Length; just under is fine", async () => {
      const big = JSON.stringify({ url: `https://tenant.example.com/${"a".repeat(5000)}` })
      await expectError(await router.admin("PUT", "/v1/hooks/big.example.com", big), 413, "payload_too_large")
      // Chunked: no Content-Length to refuse up front, so the read itself must stop at the limit.
      const chunked = await fetch(`${router.url}/v1/hooks/big.example.com`, {
        method: "PUT",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(big))
            controller.close()
          }
        })
      })
      await expectError(chunked, 413, "payload_too_large")
      expect(await entry("big.example.com")).toBeUndefined()

      const fits = JSON.stringify({ url: `https://tenant.example.com/${"a".repeat(3900)}` })
      expect(fits.length).toBeLessThan(4096)
      const ok = await router.admin("PUT", "/v1/hooks/big.example.com", fits)
      expect(ok.status).toBe(201)
      secrets["big generated"] = (await jsonOf(ok)).secret
      expect(await router.admin("DELETE", "/v1/hooks/big.example.com").then((r) => r.status)).toBe(204)
    })

    test("nothing invalid was stored", async () => {
      expect(await entry(host)).toBeUndefined()
      expect((await list()).map((h) => h.host).sort()).toEqual(["*.filewild.example.com", "file.example.com"])
    })
  })

  describe("lifecycle", () => {
    const host = "life.example.com"
    let generated = ""
    const provided = secretOf(32)

    test("PUT creates (201) and returns a generated whsec_ secret once", async () => {
      const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/life-1` })
      expect(response.status).toBe(201)
      const body = await jsonOf(response)
      expect(body).toEqual({
        host,
        url: `${capture.url}/life-1`,
        events: null,
        source: "api",
        rateLimit: null,
        maxAge: null,
        hasOwnSecret: true,
        headers: [],
        hasAuth: false, disabled: false, disabledAt: null,
        secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+={0,2}$/)
      })
      generated = body.secret
      secrets["generated #1"] = generated
      expect(Buffer.from(generated.slice("whsec_".length), "base64").length).toBe(32)
      expect(generated).not.toBe(DEFAULT_SECRET)
    })

    test("GET lists it as an api hook, with no secret", async () => {
      expect(await entry(host)).toEqual({ host, url: `${capture.url}/life-1`, events: null, source: "api", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null })
      expect(responses.at(-1)).not.toContain('"secret"')
    })

    test("a new call reaches the hook, signed with the generated secret (not the default)", async () => {
      const room = await call(router, host)
      const delivery = await capture.forRoom(room)
      expect(delivery.path).toBe("/life-1")
      expect(verifies(generated, delivery)).toBe(true)
      expect(verifies(DEFAULT_SECRET, delivery)).toBe(false)
      const body = JSON.parse(delivery.body)
      expect(body.tenant).toBe(host)
      expect(body.call.domain).toBe(host)
      expect(body.type).toBe("participant_joined")
    })

    test("PUT again changes it (200) with a provided secret, not echoed; a new call uses it at once", async () => {
      const response = await router.admin("PUT", `/v1/hooks/${host}`, {
        url: `${capture.url}/life-2`,
        secret: provided,
        events: ["participant_joined"]
      })
      expect(response.status).toBe(200)
      const text = await response.text()
      responses.push(text)
      secrets["provided"] = provided
      expect(JSON.parse(text)).toEqual({
        host,
        url: `${capture.url}/life-2`,
        events: ["participant_joined"],
        source: "api",
        rateLimit: null,
        maxAge: null,
        hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null,
        // A replacement says what it took away: nothing, here.
        cleared: []
      })
      expect(await entry(host)).toEqual({
        host,
        url: `${capture.url}/life-2`,
        events: ["participant_joined"],
        source: "api",
        rateLimit: null,
        maxAge: null,
        hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })

      const before = capture.at("/life-1").length
      const room = await call(router, host)
      const delivery = await capture.forRoom(room)
      expect(delivery.path).toBe("/life-2")
      expect(verifies(provided, delivery)).toBe(true)
      expect(verifies(generated, delivery)).toBe(false)
      expect(capture.at("/life-1").length).toBe(before)
    })

    test("PUT without a secret replaces the hook's fields but keeps its secret (rotation is its own endpoint)", async () => {
      const response = await router.admin("PUT", `/v1/hooks/${host}`, { url: `${capture.url}/life-3` })
      expect(response.status).toBe(200)
      const body = await jsonOf(response)
      expect(body.secret).toBeUndefined()
      // Not merged with the previous PUT: the event filter is gone, and the answer says so.
      expect(body.cleared).toEqual(["events"])
      expect(await entry(host)).toEqual({ host, url: `${capture.url}/life-3`, events: null, source: "api", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null })

      const delivery = await capture.forRoom(await call(router, host))
      expect(delivery.path).toBe("/life-3")
      expect(verifies(provided, delivery)).toBe(true)
      expect(verifies(generated, delivery)).toBe(false)
    })

    test("DELETE → 204; a new call is then unroutable (unknown_domain); DELETE again → 404", async () => {
      const response = await router.admin("DELETE", `/v1/hooks/${host}`)
      expect(response.status).toBe(204)
      expect(await response.text()).toBe("")
      expect(await entry(host)).toBeUndefined()

      const delivered = capture.requests.length
      const before = await unknownDomainCount(router)
      await call(router, host)
      await eventually(async () => (await unknownDomainCount(router)) === before + 1, 5_000, "unknown_domain count")
      // The count is taken after routing decided there is no hook, so nothing can be on its way.
      expect(capture.requests.length).toBe(delivered)

      await expectError(await router.admin("DELETE", `/v1/hooks/${host}`), 404, "not_found")
    })

    test("host names are normalised: case and a trailing dot address the same hook", async () => {
      const created = await router.admin("PUT", "/v1/hooks/Norm.Example.COM.", { url: `${capture.url}/norm`, secret: provided })
      expect(created.status).toBe(201)
      expect((await jsonOf(created)).host).toBe("norm.example.com")
      expect((await router.admin("PUT", "/v1/hooks/norm.example.com", { url: `${capture.url}/norm`, secret: provided })).status).toBe(200)
      expect((await list()).filter((h) => String(h.host).startsWith("norm.")).length).toBe(1)
      expect((await router.admin("DELETE", "/v1/hooks/NORM.example.com")).status).toBe(204)
      expect(await entry("norm.example.com")).toBeUndefined()
    })

    test("a percent-encoded wildcard host is decoded once", async () => {
      const created = await router.admin("PUT", "/v1/hooks/%2A.enc.example.com", { url: `${capture.url}/enc`, secret: provided })
      expect(created.status).toBe(201)
      expect((await jsonOf(created)).host).toBe("*.enc.example.com")
      expect((await router.admin("DELETE", "/v1/hooks/*.enc.example.com")).status).toBe(204)
    })
  })

  describe("config-file hooks", () => {
    const fileEntry = { host: "file.example.com", url: "", events: null, source: "file", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null }

    test("PUT and DELETE on a file host → 409, including spelling variants, and it is unchanged", async () => {
      const attempts: Array<[string, string, unknown]> = [
        ["PUT", "/v1/hooks/file.example.com", { url: `${capture.url}/hijack`, secret: secretOf(32) }],
        ["PUT", "/v1/hooks/file.example.com", { url: `${capture.url}/hijack` }],
        ["PUT", "/v1/hooks/FILE.example.com.", { url: `${capture.url}/hijack` }],
        ["DELETE", "/v1/hooks/file.example.com", undefined],
        ["DELETE", "/v1/hooks/File.Example.Com", undefined],
        ["PUT", "/v1/hooks/*.filewild.example.com", { url: `${capture.url}/hijack` }],
        ["DELETE", "/v1/hooks/*.filewild.example.com", undefined]
      ]
      for (const [method, path, body] of attempts) {
        const response = await router.admin(method, path, body)
        expect({ method, path, status: response.status }).toEqual({ method, path, status: 409 })
        await expectError(response, 409, "conflict")
      }
      expect(await entry("file.example.com")).toEqual({ ...fileEntry, url: `${capture.url}/file` })
      expect(await entry("*.filewild.example.com")).toEqual({
        host: "*.filewild.example.com",
        url: `${capture.url}/filewild`,
        events: null,
        source: "file",
        rateLimit: null,
        maxAge: null,
        hasOwnSecret: false, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })
    })

    test("calls to file hosts still go where the file says, signed as the file says", async () => {
      const exact = await capture.forRoom(await call(router, "file.example.com"))
      expect(exact.path).toBe("/file")
      expect(verifies(FILE_SECRET, exact)).toBe(true)
      const wild = await capture.forRoom(await call(router, "x.filewild.example.com"))
      expect(wild.path).toBe("/filewild")
      expect(verifies(DEFAULT_SECRET, wild)).toBe(true)
      expect(capture.at("/hijack")).toEqual([])
    })
  })

  describe("wildcards", () => {
    const wildSecret = secretOf(32)
    const exactSecret = secretOf(48)

    test("PUT *.citydental.com; calls to its subdomains reach it, the bare domain does not", async () => {
      secrets["wildcard"] = wildSecret
      const response = await router.admin("PUT", "/v1/hooks/*.citydental.com", { url: `${capture.url}/wild`, secret: wildSecret })
      expect(response.status).toBe(201)
      responses.push(await response.text())
      expect(await entry("*.citydental.com")).toEqual({
        host: "*.citydental.com",
        url: `${capture.url}/wild`,
        events: null,
        source: "api",
        rateLimit: null,
        maxAge: null,
        hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null
      })

      for (const domain of ["calls.citydental.com", "a.b.citydental.com"]) {
        const delivery = await capture.forRoom(await call(router, domain))
        expect(delivery.path).toBe("/wild")
        expect(verifies(wildSecret, delivery)).toBe(true)
        const body = JSON.parse(delivery.body)
        expect(body.tenant).toBe("*.citydental.com")
        expect(body.call.domain).toBe(domain)
      }

      const before = await unknownDomainCount(router)
      await call(router, "citydental.com")
      await eventually(async () => (await unknownDomainCount(router)) === before + 1, 5_000, "apex unroutable")
    })

    test("an exact host beats the wildcard; deleting it falls back to the wildcard", async () => {
      secrets["exact"] = exactSecret
      const response = await router.admin("PUT", "/v1/hooks/front.citydental.com", { url: `${capture.url}/exact`, secret: exactSecret })
      expect(response.status).toBe(201)
      responses.push(await response.text())

      const exact = await capture.forRoom(await call(router, "front.citydental.com"))
      expect(exact.path).toBe("/exact")
      expect(verifies(exactSecret, exact)).toBe(true)
      expect(JSON.parse(exact.body).tenant).toBe("front.citydental.com")
      const sibling = await capture.forRoom(await call(router, "calls.citydental.com"))
      expect(sibling.path).toBe("/wild")

      expect((await router.admin("DELETE", "/v1/hooks/front.citydental.com")).status).toBe(204)
      const fallback = await capture.forRoom(await call(router, "front.citydental.com"))
      expect(fallback.path).toBe("/wild")
      expect(verifies(wildSecret, fallback)).toBe(true)
    })

    test("the wildcard and an exact host of the same name are distinct entries", async () => {
      await expectError(await router.admin("DELETE", "/v1/hooks/citydental.com"), 404, "not_found")
      expect(await entry("*.citydental.com")).toBeDefined()
      expect((await router.admin("DELETE", "/v1/hooks/*.citydental.com")).status).toBe(204)
      expect(await entry("*.citydental.com")).toBeUndefined()
    })
  })

  describe("routes", () => {
    test("unknown paths → 404", async () => {
      for (const path of ["/v1/nothing", "/v1/hookz", "/v2/hooks", "/v1/hooks/a.example.com/extra", "/admin/v1/hooks"]) {
        const response = await router.admin("GET", path)
        expect({ path, status: response.status }).toEqual({ path, status: 404 })
        responses.push(await response.text())
      }
    })

    test("wrong methods on known paths are not 2xx and change nothing", async () => {
      const attempts: Array<[string, string]> = [
        ["POST", "/v1/hooks"],
        ["PUT", "/v1/hooks"],
        ["DELETE", "/v1/hooks"],
        ["PATCH", "/v1/hooks/method.example.com"],
        ["POST", "/v1/hooks/method.example.com"],
        ["GET", "/v1/hooks/method.example.com"]
      ]
      for (const [method, path] of attempts) {
        const response = await router.admin(method, path, method === "GET" ? undefined : { url: `${capture.url}/method` })
        expect({ method, path, ok: response.ok }).toEqual({ method, path, ok: false })
        expect(response.status).toBeGreaterThanOrEqual(400)
        responses.push(await response.text())
      }
      expect(await entry("method.example.com")).toBeUndefined()
    })
  })

  describe("secrets", () => {
    test("no secret or token appears in listings, error answers, log lines or stderr", async () => {
      await list()
      // The logs must have had the chance to leak: deliveries and unroutable warnings were logged.
      expect(router.logs.some((l) => l.msg === "delivery attempt")).toBe(true)
      expect(router.logs.some((l) => l.msg === "no tenant for SIP event")).toBe(true)
      expect(Object.keys(secrets).length).toBeGreaterThanOrEqual(10)
      expectNoLeaks(
        {
          "GET and error responses": responses.join("\n"),
          logs: router.logs.map((l) => JSON.stringify(l)).join("\n"),
          stderr: router.stderr()
        },
        secrets
      )
    })
  })
})

// ---------------------------------------------------------------- token sources

describe("admin tokens", () => {
  test("with no token configured every admin call answers 401, whatever is presented", async () => {
    const router = await startRouter({ admin: { tokens: [] }, security: { allowPrivateTargets: true } })
    try {
      const presented = [undefined, "", ADMIN_TOKEN, "x".repeat(32), " "]
      for (const token of presented) {
        const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
        for (const [method, path, body] of [
          ["GET", "/v1/hooks", undefined],
          ["PUT", "/v1/hooks/open.example.com", JSON.stringify({ url: "https://open.example.com/hook" })],
          ["DELETE", "/v1/hooks/open.example.com", undefined]
        ] as const) {
          const response = await rawRequest(router, method, path, headers, body)
          expect({ token, method, status: response.status }).toEqual({ token, method, status: 401 })
          expect((await jsonOf(response)).error.code).toBe("unauthorized")
        }
      }
      // None of those PUTs took effect: the domain is still unknown.
      const before = await unknownDomainCount(router)
      await call(router, "open.example.com")
      await eventually(async () => (await unknownDomainCount(router)) === before + 1, 5_000, "open.example.com unroutable")
    } finally {
      await router.stop()
    }
  })

  test("ROUTER_ADMIN_TOKEN adds a token next to the configured ones, and is never printed", async () => {
    const envToken = `env-admin-token-${randomBytes(12).toString("hex")}`
    const router = await startRouter({ security: { allowPrivateTargets: true } }, undefined, { ROUTER_ADMIN_TOKEN: envToken })
    try {
      expect((await router.admin("GET", "/v1/hooks", undefined, envToken)).status).toBe(200)
      expect((await router.admin("GET", "/v1/hooks", undefined, ADMIN_TOKEN)).status).toBe(200)
      expect((await router.admin("GET", "/v1/hooks", undefined, `${envToken}x`)).status).toBe(401)
      const created = await router.admin("PUT", "/v1/hooks/env.example.com", { url: "https://env.example.com/hook" }, envToken)
      expect(created.status).toBe(201)
      const listed = await router.admin("GET", "/v1/hooks", undefined, ADMIN_TOKEN)
      const text = await listed.text()
      expect(JSON.parse(text).hooks.map((h: { host: string }) => h.host)).toEqual(["env.example.com"])
      expectNoLeaks(
        { listing: text, logs: router.logs.map((l) => JSON.stringify(l)).join("\n"), stderr: router.stderr() },
        { "env token": envToken, "admin token": ADMIN_TOKEN }
      )
    } finally {
      await router.stop()
    }
  })

  test("only ROUTER_ADMIN_TOKEN, with no tokens in the file, is enough", async () => {
    const envToken = `env-only-token-${randomBytes(12).toString("hex")}`
    const router = await startRouter({ admin: { tokens: [] } }, undefined, { ROUTER_ADMIN_TOKEN: envToken })
    try {
      expect((await router.admin("GET", "/v1/hooks", undefined, envToken)).status).toBe(200)
      expect((await router.admin("GET", "/v1/hooks", undefined, ADMIN_TOKEN)).status).toBe(401)
    } finally {
      await router.stop()
    }
  })

  test("an env token shorter than 16 characters stops start-up without printing it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "router-admin-short-"))
    try {
      const outcome = await startRouter({}, dir, { ROUTER_ADMIN_TOKEN: "tiny-token-15ch" }).then(
        async (router) => {
          await router.stop()
          return "started"
        },
        (error: Error) => error.message
      )
      expect(outcome).not.toBe("started")
      expect(outcome).toContain("16")
      expect(outcome).toContain("config: ROUTER_ADMIN_TOKEN (env): ")
      expect(outcome).not.toContain("tiny-token-15ch")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

// ---------------------------------------------------------------- persistence

describe("persistence", () => {
  const dir = mkdtempSync(join(tmpdir(), "router-admin-persist-"))
  let capture: ReturnType<typeof startCapture>
  let router: RunningRouter | undefined
  const provided = secretOf(32)
  let generated = ""
  const config = (extraHooks: unknown[] = []) => ({ security: { allowPrivateTargets: true }, hooks: extraHooks })

  beforeAll(() => {
    capture = startCapture()
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const restart = async (hooks: unknown[] = []) => {
    if (router) expect(await router.stop("SIGTERM")).toBe(0)
    router = undefined
    router = await startRouter(config(hooks), dir)
    return router
  }

  test("API hooks, their secrets and deletions survive restarts on the same database", async () => {
    let r = await restart()
    expect((await r.admin("PUT", "/v1/hooks/persist.example.com", { url: `${capture.url}/persist`, secret: provided, events: ["participant_joined"] })).status).toBe(201)
    const wild = await r.admin("PUT", "/v1/hooks/*.persist.example.net", { url: `${capture.url}/persist-wild` })
    expect(wild.status).toBe(201)
    generated = (await jsonOf(wild)).secret
    expect((await r.admin("PUT", "/v1/hooks/gone.example.com", { url: `${capture.url}/gone`, secret: provided })).status).toBe(201)
    expect((await r.admin("PUT", "/v1/hooks/claimed.example.com", { url: `${capture.url}/claimed-api`, secret: provided })).status).toBe(201)

    r = await restart()
    const listed = await r.admin("GET", "/v1/hooks")
    const listing = await listed.text()
    expect(JSON.parse(listing).hooks).toEqual([
      { host: "*.persist.example.net", url: `${capture.url}/persist-wild`, events: null, source: "api", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null },
      { host: "claimed.example.com", url: `${capture.url}/claimed-api`, events: null, source: "api", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null },
      { host: "gone.example.com", url: `${capture.url}/gone`, events: null, source: "api", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null },
      { host: "persist.example.com", url: `${capture.url}/persist`, events: ["participant_joined"], source: "api", rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null }
    ])
    const exact = await capture.forRoom(await call(r, "persist.example.com"))
    expect(exact.path).toBe("/persist")
    expect(verifies(provided, exact)).toBe(true)
    const viaWildcard = await capture.forRoom(await call(r, "calls.persist.example.net"))
    expect(viaWildcard.path).toBe("/persist-wild")
    expect(verifies(generated, viaWildcard)).toBe(true)
    expect((await r.admin("DELETE", "/v1/hooks/gone.example.com")).status).toBe(204)

    // Restart once more, now with the config file claiming a host the API had set: the file wins.
    r = await restart([{ host: "claimed.example.com", url: `${capture.url}/claimed-file` }])
    const hosts = JSON.parse(await (await r.admin("GET", "/v1/hooks")).text()).hooks as Array<Record<string, unknown>>
    expect(hosts.map((h) => h.host)).toEqual(["*.persist.example.net", "claimed.example.com", "persist.example.com"])
    expect(hosts.find((h) => h.host === "claimed.example.com")).toEqual({
      host: "claimed.example.com",
      url: `${capture.url}/claimed-file`,
      events: null,
      source: "file",
      rateLimit: null,
      maxAge: null,
      hasOwnSecret: false, headers: [], hasAuth: false, disabled: false, disabledAt: null
    })
    const claimed = await capture.forRoom(await call(r, "claimed.example.com"))
    expect(claimed.path).toBe("/claimed-file")
    expect(verifies(DEFAULT_SECRET, claimed)).toBe(true)
    await expectError(await r.admin("DELETE", "/v1/hooks/claimed.example.com"), 409, "conflict")

    const before = await unknownDomainCount(r)
    await call(r, "gone.example.com")
    await eventually(async () => (await unknownDomainCount(r)) === before + 1, 5_000, "gone.example.com unroutable")

    expectNoLeaks(
      { listing, logs: r.logs.map((l) => JSON.stringify(l)).join("\n"), stderr: r.stderr() },
      { provided, generated, default: DEFAULT_SECRET, "admin token": ADMIN_TOKEN }
    )
  }, 30_000)
})
