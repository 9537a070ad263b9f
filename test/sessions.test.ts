/**
 * Console sessions and tenant portal links through the real router: a token
 * exchanged for a cookie with the right attributes, the cookie taken in place
 * of the bearer token with the token's rights as they are now, changes refused
 * from another origin, sign-out, expiry, restarts, single-use links, and
 * sessions shared by two instances on Redis.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { RedisClient } from "bun"
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import fc from "fast-check"
import { redisAvailable } from "./support/redis.ts"
import { startRedisCluster, type RedisCluster } from "./support/redisCluster.ts"
import { ADMIN_TOKEN, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const DRSMITH = "calls.drsmith.com"
const CITYDENTAL = "calls.citydental.com"
const TENANT_TOKEN = "drsmith-tenant-token-0123456789"
const hooks = [
  { host: DRSMITH, url: "https://hooks.drsmith.example/voice" },
  { host: CITYDENTAL, url: "https://hooks.citydental.example/voice" }
]
const admin = { tokens: [ADMIN_TOKEN], tenantTokens: [{ token: TENANT_TOKEN, hosts: [DRSMITH] }] }

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

interface Answer {
  readonly status: number
  readonly body: any
  readonly setCookie: string | null
}

const answer = async (response: Response): Promise<Answer> => {
  const text = await response.text()
  return { status: response.status, body: text ? JSON.parse(text) : null, setCookie: response.headers.get("set-cookie") }
}

/** The cookie header a browser would send back, from a Set-Cookie. */
const cookieFrom = (setCookie: string | null) => {
  const pair = /^srt_session=([^;]*)/.exec(setCookie ?? "")
  if (!pair) throw new Error(`no session cookie in ${setCookie}`)
  return `srt_session=${pair[1]}`
}

const signIn = async (router: RunningRouter, token: string, headers: Record<string, string> = {}) =>
  answer(await fetch(`${router.url}/v1/sessions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ token }) }))

/** A request as the console makes it: the cookie, and for a change the router's own origin (unless `origin` says otherwise). */
const withCookie = async (
  router: RunningRouter,
  cookie: string,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly origin?: string | null; readonly headers?: Record<string, string> } = {}
) => {
  const origin = options.origin === undefined ? router.url : options.origin
  return answer(
    await fetch(`${router.url}${path}`, {
      method,
      headers: {
        cookie,
        "content-type": "application/json",
        ...(origin === null || method === "GET" ? {} : { origin }),
        ...options.headers
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
    })
  )
}

const portalLink = async (router: RunningRouter, host: string, token = ADMIN_TOKEN) => answer(await router.admin("POST", `/v1/tenants/${host}/portal-links`, undefined, token))

const secretOf = (url: string) => new URL(url).hash.slice(1)

const redeem = async (router: RunningRouter, secret: string) =>
  answer(await fetch(`${router.url}/v1/portal-links/redeem`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret }) }))

const hostsSeen = async (router: RunningRouter, cookie: string) => {
  const listed = await withCookie(router, cookie, "GET", "/v1/hooks")
  return listed.status === 200 ? listed.body.hooks.map((hook: { host: string }) => hook.host).sort() : listed.status
}

describe("console sessions (SQLite)", () => {
  let router: RunningRouter

  beforeAll(async () => {
    router = await startRouter({ hooks, admin: { ...admin, sessionTtl: "8h", portalLinkTtl: "15m" } })
  })
  afterAll(() => router.stop())

  test("an operator token becomes an HttpOnly, SameSite=Strict cookie for 8 hours, which the API takes in place of the token", async () => {
    const signedIn = await signIn(router, ADMIN_TOKEN)
    expect(signedIn.status).toBe(201)
    expect(signedIn.body).toEqual({ role: "operator", hosts: [], expiresAt: expect.any(String) })
    const hours = (Date.parse(signedIn.body.expiresAt) - Date.now()) / 3_600_000
    expect(hours).toBeGreaterThan(7.9)
    expect(hours).toBeLessThanOrEqual(8)
    const attributes = signedIn.setCookie!.split(";").map((part) => part.trim())
    expect(attributes).toEqual(expect.arrayContaining(["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"]))
    // Plain http, no proxy saying otherwise: a Secure cookie would never come back.
    expect(attributes).not.toContain("Secure")
    // The body never carries the secret, and the secret is not the token.
    expect(JSON.stringify(signedIn.body)).not.toContain(cookieFrom(signedIn.setCookie).slice("srt_session=".length))
    expect(signedIn.setCookie).not.toContain(ADMIN_TOKEN)

    const cookie = cookieFrom(signedIn.setCookie)
    expect(await hostsSeen(router, cookie)).toEqual([CITYDENTAL, DRSMITH])
    const current = await withCookie(router, cookie, "GET", "/v1/sessions/current")
    expect(current).toMatchObject({ status: 200, body: { role: "operator", hosts: [], expiresAt: signedIn.body.expiresAt } })
    // With a bearer token instead, the same endpoint says who the token is, with no expiry.
    expect(await answer(await router.admin("GET", "/v1/sessions/current", undefined, TENANT_TOKEN))).toMatchObject({
      status: 200,
      body: { role: "tenant", hosts: [DRSMITH], expiresAt: null }
    })
  })

  test("the cookie is Secure over a proxy that says https was used", async () => {
    const signedIn = await signIn(router, ADMIN_TOKEN, { "x-forwarded-proto": "https" })
    expect(signedIn.setCookie!.split(";").map((part) => part.trim())).toContain("Secure")
  })

  test("a refused token, a bad body and an oversized one sign nobody in, each with its own error", async () => {
    const refused = await signIn(router, "not-a-token-anybody-gave-out")
    expect(refused).toMatchObject({ status: 401, body: { error: { code: "unauthorized", message: "that token is not one this router knows" } }, setCookie: null })
    const bad = await answer(await fetch(`${router.url}/v1/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"token": 1}' }))
    expect(bad).toMatchObject({ status: 400, body: { error: { code: "bad_request" } }, setCookie: null })
    const extra = await answer(await fetch(`${router.url}/v1/sessions`, { method: "POST", body: JSON.stringify({ token: ADMIN_TOKEN, role: "operator" }) }))
    expect(extra).toMatchObject({ status: 400, setCookie: null })
    const huge = await answer(await fetch(`${router.url}/v1/sessions`, { method: "POST", body: JSON.stringify({ token: "x".repeat(2_000_000) }) }))
    expect(huge).toMatchObject({ status: 413, setCookie: null })
  })

  test("a tenant token's session sees and changes only its hosts, and no operator endpoint", async () => {
    const cookie = cookieFrom((await signIn(router, TENANT_TOKEN)).setCookie)
    expect(await hostsSeen(router, cookie)).toEqual([DRSMITH])
    expect((await withCookie(router, cookie, "GET", `/v1/hooks/${CITYDENTAL}`)).status).toBe(403)
    expect((await withCookie(router, cookie, "GET", "/v1/overview")).status).toBe(403)
    expect((await withCookie(router, cookie, "POST", `/v1/tenants/${DRSMITH}/portal-links`)).status).toBe(403)
    expect((await withCookie(router, cookie, "POST", "/v1/tokens", { body: { hosts: [DRSMITH] } })).status).toBe(403)
  })

  test("a change made with the cookie from another origin, or with no origin at all, is a 403 and changes nothing", async () => {
    const cookie = cookieFrom((await signIn(router, ADMIN_TOKEN)).setCookie)
    const hook = { url: "https://hooks.csrf.example/voice" }
    const refusals = [
      await withCookie(router, cookie, "PUT", "/v1/hooks/calls.csrf.example", { body: hook, origin: "https://evil.example" }),
      await withCookie(router, cookie, "PUT", "/v1/hooks/calls.csrf.example", { body: hook, origin: router.url.replace("127.0.0.1", "localhost") }),
      await withCookie(router, cookie, "PUT", "/v1/hooks/calls.csrf.example", { body: hook, origin: null }),
      await withCookie(router, cookie, "PUT", "/v1/hooks/calls.csrf.example", { body: hook, origin: router.url, headers: { "sec-fetch-site": "cross-site" } }),
      await withCookie(router, cookie, "DELETE", `/v1/hooks/${DRSMITH}`, { origin: "null" })
    ]
    for (const refused of refusals) {
      expect(refused).toMatchObject({ status: 403, body: { error: { code: "forbidden", message: "a request made with a console session must come from the console's own origin" } } })
    }
    expect((await router.admin("GET", "/v1/hooks/calls.csrf.example")).status).toBe(404)
    // From the router's own page, the same change is made.
    expect((await withCookie(router, cookie, "PUT", "/v1/hooks/calls.csrf.example", { body: hook, headers: { "sec-fetch-site": "same-origin" } })).status).toBe(201)
    // And signing in from another site's page is refused too (no session forced on the browser).
    expect(await signIn(router, ADMIN_TOKEN, { origin: "https://evil.example" })).toMatchObject({ status: 403, setCookie: null })
  })

  test("no cookie value, however odd, nor any foreign origin, gets in or breaks the router", async () => {
    const cookie = cookieFrom((await signIn(router, ADMIN_TOKEN)).setCookie)
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }).filter((value) => /^[\x21-\x7e]*$/.test(value) && !value.includes(";")), async (value) => {
        const tried = await withCookie(router, `srt_session=${value}`, "GET", "/v1/hooks")
        expect(tried.status).toBe(401)
      }),
      { numRuns: 40 }
    )
    await fc.assert(
      fc.asyncProperty(fc.webUrl({ withQueryParameters: false, withFragments: false }), async (origin) => {
        fc.pre(new URL(origin).host !== new URL(router.url).host)
        const tried = await withCookie(router, cookie, "POST", `/v1/hooks/${DRSMITH}/enable`, { origin: new URL(origin).origin })
        expect(tried.status).toBe(403)
      }),
      { numRuns: 40 }
    )
  })

  test("sign-out ends the session on the server and clears the cookie; the cookie kept anyway is refused", async () => {
    const cookie = cookieFrom((await signIn(router, ADMIN_TOKEN)).setCookie)
    const signedOut = await withCookie(router, cookie, "DELETE", "/v1/sessions/current")
    expect(signedOut.status).toBe(204)
    expect(signedOut.setCookie).toMatch(/^srt_session=; Max-Age=0; Path=\/;/)
    expect(await withCookie(router, cookie, "GET", "/v1/hooks")).toMatchObject({
      status: 401,
      body: { error: { code: "unauthorized", message: "the console session has ended; sign in again" } }
    })
  })

  test("a session opened with an API token ends when the token is revoked", async () => {
    const created = await answer(await router.admin("POST", "/v1/tokens", { hosts: [CITYDENTAL] }))
    const cookie = cookieFrom((await signIn(router, created.body.token)).setCookie)
    expect(await hostsSeen(router, cookie)).toEqual([CITYDENTAL])
    expect((await router.admin("DELETE", `/v1/tokens/${created.body.id}`)).status).toBe(204)
    expect(await hostsSeen(router, cookie)).toBe(401)
  })

  test("a portal link: operator-only, opens once into a tenant session for its host, then says it was used", async () => {
    expect((await portalLink(router, DRSMITH, TENANT_TOKEN)).status).toBe(403)
    const made = await portalLink(router, DRSMITH)
    expect(made.status).toBe(201)
    expect(made.body.url).toMatch(new RegExp(`^${router.url}/console/portal#[A-Za-z0-9_-]{43}$`))
    const minutes = (Date.parse(made.body.expiresAt) - Date.now()) / 60_000
    expect(minutes).toBeGreaterThan(14.9)
    expect(minutes).toBeLessThanOrEqual(15)

    const opened = await redeem(router, secretOf(made.body.url))
    expect(opened).toMatchObject({ status: 201, body: { role: "tenant", hosts: [DRSMITH] } })
    const cookie = cookieFrom(opened.setCookie)
    expect(await hostsSeen(router, cookie)).toEqual([DRSMITH])
    expect((await withCookie(router, cookie, "GET", "/v1/numbers")).status).toBe(200)
    expect((await withCookie(router, cookie, "GET", "/v1/unroutable")).status).toBe(403)

    expect(await redeem(router, secretOf(made.body.url))).toMatchObject({
      status: 401,
      body: { error: { code: "unauthorized", message: "this portal link was used or has expired; ask for a new one" } },
      setCookie: null
    })
    expect((await redeem(router, "made-up")).status).toBe(401)
  })

  test("neither a link's secret, a cookie nor a token appears in the router's logs", async () => {
    const made = await portalLink(router, CITYDENTAL)
    const cookie = cookieFrom((await redeem(router, secretOf(made.body.url))).setCookie)
    await withCookie(router, cookie, "GET", "/v1/hooks")
    const logs = JSON.stringify(router.logs) + router.stderr()
    expect(logs).toContain("console session started")
    for (const secret of [secretOf(made.body.url), cookie.slice("srt_session=".length), ADMIN_TOKEN, TENANT_TOKEN]) expect(logs).not.toContain(secret)
  })
})

describe("sessions that expire, and survive a restart", () => {
  const dir = mkdtempSync(join(tmpdir(), "sessions-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test("a session and a link end when their time is up; a live session outlasts a restart; `admin.secureCookies` marks every cookie Secure", async () => {
    const short = await startRouter({ hooks, admin: { ...admin, sessionTtl: "1s", portalLinkTtl: "1s", secureCookies: true } }, dir)
    let restarted: RunningRouter | undefined
    try {
      const signedIn = await signIn(short, ADMIN_TOKEN)
      expect(signedIn.setCookie!.split(";").map((part) => part.trim())).toEqual(expect.arrayContaining(["Secure", "Max-Age=1"]))
      const link = await portalLink(short, DRSMITH)
      await Bun.sleep(1_200)
      expect(await hostsSeen(short, cookieFrom(signedIn.setCookie))).toBe(401)
      expect((await redeem(short, secretOf(link.body.url))).status).toBe(401)
      await short.stop()

      restarted = await startRouter({ hooks, admin }, dir)
      const kept = cookieFrom((await signIn(restarted, TENANT_TOKEN)).setCookie)
      await restarted.stop()
      restarted = await startRouter({ hooks, admin }, dir)
      expect(await hostsSeen(restarted, kept)).toEqual([DRSMITH])
    } finally {
      await short.stop().catch(() => {})
      await restarted?.stop()
    }
  })
})

describe.skipIf(!redisAvailable())("sessions on Redis, across two instances", () => {
  let cluster: RedisCluster

  beforeAll(async () => {
    cluster = await startRedisCluster(2, { hooks, admin })
  })
  afterAll(() => cluster.stop())

  test("signed in on A, used and ended on B; a link made on A opens once, on one instance only; Redis holds hashes only", async () => {
    const [a, b] = cluster.routers as [RunningRouter, RunningRouter]
    const cookie = cookieFrom((await signIn(a, ADMIN_TOKEN)).setCookie)
    expect(await hostsSeen(b, cookie)).toEqual([CITYDENTAL, DRSMITH])

    const link = await portalLink(a, DRSMITH)
    const secret = secretOf(link.body.url)
    const raced = await Promise.all([redeem(a, secret), redeem(b, secret), redeem(a, secret), redeem(b, secret)])
    expect(raced.map((tried) => tried.status).sort()).toEqual([201, 401, 401, 401])

    const redis = new RedisClient(cluster.redis.url())
    try {
      const keys = (await redis.send("KEYS", ["*"])) as Array<string>
      const secretOfCookie = cookie.slice("srt_session=".length)
      expect(keys.join("\n")).toContain(sha256(secretOfCookie))
      const values = await Promise.all(keys.filter((key) => key.includes(":x:")).map((key) => redis.get(key)))
      for (const text of [...keys, ...values]) {
        expect(String(text)).not.toContain(secretOfCookie)
        expect(String(text)).not.toContain(ADMIN_TOKEN)
      }
    } finally {
      redis.close()
    }

    expect((await withCookie(b, cookie, "DELETE", "/v1/sessions/current")).status).toBe(204)
    expect(await hostsSeen(a, cookie)).toBe(401)
  })
})
