/**
 * Tenant tokens without restarts, through the real router: made, used and
 * revoked through /v1/tokens (on SQLite, and on Redis across two instances),
 * the file's tokens reloaded while it runs, only hashes in the store, the
 * CLI's `tokens` commands, and `admin.metricsToken` on /metrics.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Database } from "bun:sqlite"
import { RedisClient } from "bun"
import { createHash } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { redisAvailable } from "./support/redis.ts"
import { startRedisCluster, type RedisCluster } from "./support/redisCluster.ts"
import { ADMIN_TOKEN, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const DRSMITH = "calls.drsmith.com"
const CITYDENTAL = "*.citydental.com"
const FILE_TENANT_TOKEN = "file-tenant-token-0123456789"
const MAIN = join(import.meta.dir, "..", "src", "main.ts")

const hooks = [
  { host: DRSMITH, url: "https://hooks.drsmith.example/voice" },
  { host: CITYDENTAL, url: "https://hooks.citydental.example/voice" },
  { host: "calls.other.example", url: "https://hooks.other.example/voice" }
]

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

const create = async (router: RunningRouter, body: unknown, token = ADMIN_TOKEN) => {
  const response = await router.admin("POST", "/v1/tokens", body, token)
  return { status: response.status, body: (await response.json()) as Record<string, any> }
}

const hostsSeenBy = async (router: RunningRouter, token: string) => {
  const response = await router.admin("GET", "/v1/hooks", undefined, token)
  return response.status === 200 ? ((await response.json()) as { hooks: Array<{ host: string }> }).hooks.map((h) => h.host).sort() : response.status
}

describe("tokens made through the API (SQLite)", () => {
  let router: RunningRouter

  beforeAll(async () => {
    router = await startRouter({ hooks, admin: { tokens: [ADMIN_TOKEN], tenantTokens: [{ token: FILE_TENANT_TOKEN, hosts: [DRSMITH] }] } })
  })
  afterAll(() => router.stop())

  test("created (201, the token once), used at once for its hosts only, listed without it, revoked: refused from the next request", async () => {
    const created = await create(router, { hosts: [DRSMITH, "*.CityDental.com"], label: "Dr Smith and City Dental" })
    expect(created.status).toBe(201)
    const { token, id } = created.body
    expect(created.body).toEqual({
      id: expect.stringMatching(/^tok_[0-9a-f]{16}$/),
      token: expect.stringMatching(/^srt_[A-Za-z0-9_-]{43}$/),
      hosts: [DRSMITH, CITYDENTAL],
      label: "Dr Smith and City Dental",
      createdAt: expect.any(String)
    })

    // A tenant token: its own hosts (and what lies under its wildcard), nobody else's, no operator endpoints.
    expect(await hostsSeenBy(router, token)).toEqual([CITYDENTAL, DRSMITH])
    expect((await router.admin("GET", "/v1/hooks/calls.other.example", undefined, token)).status).toBe(403)
    expect((await router.admin("GET", "/v1/unroutable", undefined, token)).status).toBe(403)

    const listed = await router.admin("GET", "/v1/tokens")
    const text = await listed.text()
    expect(listed.status).toBe(200)
    expect(JSON.parse(text).tokens).toContainEqual({ id, hosts: [DRSMITH, CITYDENTAL], label: "Dr Smith and City Dental", createdAt: created.body.createdAt })
    expect(text).not.toContain(token)
    expect(text).not.toContain(sha256(token))

    expect((await router.admin("DELETE", `/v1/tokens/${id}`)).status).toBe(204)
    expect(await hostsSeenBy(router, token)).toBe(401)
    expect(JSON.parse(await (await router.admin("GET", "/v1/tokens")).text()).tokens.map((t: { id: string }) => t.id)).not.toContain(id)
    const again = await router.admin("DELETE", `/v1/tokens/${id}`)
    expect(again.status).toBe(404)
    expect(await again.json()).toEqual({ error: { code: "not_found", message: `no token ${id}` } })
  })

  test("the store keeps only each token's SHA-256: no table of the data file holds a token", async () => {
    const made = await Promise.all([create(router, { hosts: [DRSMITH] }), create(router, { hosts: [CITYDENTAL], label: "kept" })])
    const db = new Database(join(router.dir, "router.db"), { readonly: true })
    try {
      const tables = db.query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table'").all()
      const everything = tables.map(({ name }) => JSON.stringify(db.query(`SELECT * FROM "${name}"`).all())).join("\n")
      const hashes = db.query<{ hash: string }, []>("SELECT hash FROM tokens").all().map((row) => row.hash)
      for (const { body } of made) {
        expect(everything).not.toContain(body.token)
        expect(everything).not.toContain(body.token.slice(4))
        expect(hashes).toContain(sha256(body.token))
      }
    } finally {
      db.close()
    }
    // And a token that only looks right is refused.
    expect(await hostsSeenBy(router, `srt_${"A".repeat(43)}`)).toBe(401)
  })

  test("refused: bad hosts, bad bodies and bad ids (400 naming the field), non-operator callers (403), no token (401)", async () => {
    const refused: Array<[unknown, string]> = [
      [{ hosts: ["not a host"] }, "hosts.0"],
      [{ hosts: [] }, "hosts"],
      [{}, "hosts"],
      [{ hosts: DRSMITH }, "hosts"],
      [{ hosts: [DRSMITH], label: "" }, "label"],
      [{ hosts: [DRSMITH], label: "x".repeat(201) }, "label"],
      [{ hosts: [DRSMITH], admin: true }, "admin"],
      ["[1,", "body"]
    ]
    for (const [body, field] of refused) {
      const answer = await create(router, body)
      expect([JSON.stringify(body), answer.status, answer.body.error.code]).toEqual([JSON.stringify(body), 400, "bad_request"])
      expect(answer.body.error.message).toStartWith(`${field}: `)
    }
    const badId = await router.admin("DELETE", "/v1/tokens/not-an-id")
    expect(badId.status).toBe(400)
    expect(((await badId.json()) as any).error.message).toStartWith("id: ")

    const tenant = await create(router, { hosts: [DRSMITH] })
    for (const caller of [FILE_TENANT_TOKEN, tenant.body.token]) {
      expect((await create(router, { hosts: [DRSMITH] }, caller)).status).toBe(403)
      expect((await router.admin("GET", "/v1/tokens", undefined, caller)).status).toBe(403)
      expect((await router.admin("DELETE", `/v1/tokens/${tenant.body.id}`, undefined, caller)).status).toBe(403)
    }
    expect((await create(router, { hosts: [DRSMITH] }, "")).status).toBe(401)
    expect((await router.admin("GET", "/v1/tokens", undefined, "wrong-token-0123456789")).status).toBe(401)
  })

  test("the CLI: tokens create prints the token once, list shows it without, revoke refuses it", async () => {
    const cli = async (...args: Array<string>) => {
      const proc = Bun.spawn(["bun", "run", MAIN, "tokens", ...args, "--url", router.url], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: ADMIN_TOKEN }
      })
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      return { stdout, stderr, code }
    }
    const made = await cli("create", "--hosts", `${DRSMITH}, *.citydental.com`, "--label", "front desk")
    expect(made.code).toBe(0)
    const [token, summary] = made.stdout.trim().split("\n")
    expect(token).toMatch(/^srt_/)
    const id = /created (tok_[0-9a-f]{16}) for calls\.drsmith\.com,\*\.citydental\.com \(front desk\)/.exec(summary!)?.[1]
    expect(id).toBeDefined()
    expect(await hostsSeenBy(router, token!)).toEqual([CITYDENTAL, DRSMITH])

    const listed = await cli("list")
    expect(listed.code).toBe(0)
    expect(listed.stdout).toMatch(new RegExp(`${id}\\s+calls\\.drsmith\\.com,\\*\\.citydental\\.com\\s+front desk`))
    expect(listed.stdout).not.toContain(token)

    expect(await cli("revoke", id!)).toMatchObject({ code: 0, stdout: `revoked ${id}\n` })
    expect(await hostsSeenBy(router, token!)).toBe(401)
    expect(await cli("revoke", id!)).toMatchObject({ code: 1, stderr: `error: 404 not_found: no token ${id}\n` })
    expect(await cli("create", "--hosts", "not a host")).toMatchObject({ code: 2 })
  })
})

describe("the config file's tokens reload without a restart", () => {
  test("a tenant token added to the file works, removed is refused; an operator token likewise", async () => {
    const EDITED_TENANT = "edited-tenant-token-0123456789"
    const EDITED_OPERATOR = "edited-operator-token-0123456789"
    const router = await startRouter({ hooks })
    try {
      const rewrite = (admin: Record<string, unknown>) => writeFileSync(router.configPath, Bun.YAML.stringify(testConfig(router.dir, { hooks, admin })))
      expect(await hostsSeenBy(router, EDITED_TENANT)).toBe(401)

      rewrite({ tokens: [ADMIN_TOKEN, EDITED_OPERATOR], tenantTokens: [{ token: EDITED_TENANT, hosts: [DRSMITH] }] })
      await eventually(async () => (await hostsSeenBy(router, EDITED_TENANT)) !== 401, 10_000, "the added tenant token")
      expect(await hostsSeenBy(router, EDITED_TENANT)).toEqual([DRSMITH])
      expect((await hostsSeenBy(router, EDITED_OPERATOR)) as Array<string>).toHaveLength(hooks.length)

      rewrite({ tokens: [ADMIN_TOKEN] })
      await eventually(async () => (await hostsSeenBy(router, EDITED_TENANT)) === 401, 10_000, "the removed tenant token refused")
      expect(await hostsSeenBy(router, EDITED_OPERATOR)).toBe(401)
      // Reloaded keys are not among those the router asks a restart for.
      expect(router.logs.filter((l) => l.msg === "config edit needs a restart")).toEqual([])
    } finally {
      await router.stop()
    }
  })
})

describe("/metrics with admin.metricsToken", () => {
  test("answers only the scraper that sends the token", async () => {
    const METRICS_TOKEN = "metrics-token-0123456789"
    const router = await startRouter({ hooks, admin: { tokens: [ADMIN_TOKEN], metricsToken: METRICS_TOKEN } })
    try {
      const scrape = (authorization?: string) => fetch(`${router.url}/metrics`, { headers: authorization ? { authorization } : {} })
      for (const refused of [undefined, `Bearer ${ADMIN_TOKEN}`, `Basic ${METRICS_TOKEN}`, `Bearer ${METRICS_TOKEN}x`]) {
        const answer = await scrape(refused)
        expect([refused, answer.status]).toEqual([refused, 401])
        expect(await answer.json()).toEqual({ error: { code: "unauthorized", message: "/metrics needs the bearer token admin.metricsToken" } })
      }
      const scraped = await scrape(`Bearer ${METRICS_TOKEN}`)
      expect(scraped.status).toBe(200)
      expect(await scraped.text()).toContain("# TYPE")
    } finally {
      await router.stop()
    }
  })
})

describe.skipIf(!redisAvailable())("tokens on Redis, across two instances", () => {
  let cluster: RedisCluster

  beforeAll(async () => {
    cluster = await startRedisCluster(2, { hooks })
  })
  afterAll(() => cluster.stop())

  test("made on A, used on B at once; revoked on A, refused on B from the next request; Redis holds only hashes", async () => {
    const [a, b] = cluster.routers as [RunningRouter, RunningRouter]
    const created = await create(a, { hosts: [CITYDENTAL], label: "City Dental" })
    expect(created.status).toBe(201)
    const { token, id } = created.body
    expect(await hostsSeenBy(b, token)).toEqual([CITYDENTAL])
    expect((await (await b.admin("GET", "/v1/tokens")).json()) as unknown).toEqual({
      tokens: [{ id, hosts: [CITYDENTAL], label: "City Dental", createdAt: created.body.createdAt }]
    })

    const redis = new RedisClient(cluster.redis.url())
    try {
      const keys = (await redis.send("KEYS", ["*"])) as Array<string>
      const values = await Promise.all(
        keys.map(async (key) => {
          const type = String(await redis.send("TYPE", [key]))
          return type === "hash" ? JSON.stringify(await redis.send("HGETALL", [key])) : type === "string" ? String(await redis.get(key)) : ""
        })
      )
      const everything = [...keys, ...values].join("\n")
      expect(everything).not.toContain(token)
      expect(everything).not.toContain(token.slice(4))
      expect(everything).toContain(sha256(token))
    } finally {
      redis.close()
    }

    expect((await a.admin("DELETE", `/v1/tokens/${id}`)).status).toBe(204)
    expect(await hostsSeenBy(b, token)).toBe(401)
    expect((await b.admin("DELETE", `/v1/tokens/${id}`)).status).toBe(404)
  })
})
