/**
 * Online backups: `GET /v1/backup` and `backup --to FILE`, through the real
 * router. A snapshot taken while events keep arriving must be a sound
 * database, and a router started on it must deliver what was pending then.
 */
import { Database } from "bun:sqlite"
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { integrityCheck } from "./support/sqlite.ts"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { startRedis, redisAvailable } from "./support/redis.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const HOST = "calls.drsmith.com"
const MAIN = join(import.meta.dir, "..", "src", "main.ts")

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "router-backup-"))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const start = async (dir: string, overrides: Record<string, unknown>, store?: Record<string, unknown>) => {
  const config = testConfig(dir, overrides)
  const router = await startRouter(() => (store === undefined ? config : { ...config, store }), dir)
  cleanups.push(() => (router.process.exitCode === null ? router.stop("SIGKILL") : undefined))
  return router
}

/** A tenant down (503) until `up()`, on a port it keeps all along. */
const downTenant = () => {
  const tenant = startReceiver(DEFAULT_SECRET, [{ status: 200 }])
  tenant.down()
  cleanups.push(() => tenant.stop())
  return tenant
}

const backup = (router: RunningRouter, token: string | null = ADMIN_TOKEN) =>
  fetch(`${router.url}/v1/backup`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } })

/** How many times each webhook-id reached the tenant. */
const receipts = (tenant: Receiver) => {
  const counts = new Map<string, number>()
  for (const r of tenant.received) counts.set(r.headers["webhook-id"]!, (counts.get(r.headers["webhook-id"]!) ?? 0) + 1)
  return counts
}

const pending = async (router: RunningRouter) =>
  ((await (await router.admin("GET", `/v1/deliveries?status=pending&tenant=${HOST}&limit=500`)).json()) as { items: Array<unknown> }).items.length

describe("GET /v1/backup on SQLite", () => {
  test("a snapshot taken while events arrive is sound, and a router started on it delivers what was pending then, exactly once", async () => {
    // The tenant is down: every delivery stays pending, retried, until the restored router reaches it.
    const tenant = downTenant()
    const config = {
      hooks: [{ host: HOST, url: `${tenant.url}/voice` }],
      delivery: { timeout: "1s", maxAttempts: 1_000, initialBackoff: "100ms", maxBackoff: "300ms", concurrencyPerTenant: 4 }
    }
    const first = await start(freshDir(), config)

    const acknowledged: Array<string> = []
    let backupDone = false
    let afterBackup = 0
    /** Four senders, bounded, that keep going until the backup is done and some events came after it. */
    const sender = async (lane: number) => {
      for (let i = 0; i < 500 && !(backupDone && afterBackup >= 20); i++) {
        const event = sipParticipantEvent("participant_joined", { room: `backup-${lane}-${i}`, xToIp: HOST })
        const answer = await first.post(event)
        expect(answer.status).toBe(200)
        acknowledged.push(event.id)
        if (backupDone) afterBackup++
      }
    }
    const taking = (async () => {
      await eventually(() => acknowledged.length >= 40, 10_000, "events acknowledged before the backup")
      const before = [...acknowledged]
      const answer = await backup(first)
      const bytes = new Uint8Array(await answer.arrayBuffer())
      backupDone = true
      return { before, answer, bytes }
    })()
    const [{ before, answer, bytes }] = await Promise.all([taking, sender(0), sender(1), sender(2), sender(3)])

    expect(answer.status).toBe(200)
    expect(answer.headers.get("content-type")).toBe("application/vnd.sqlite3")
    expect(answer.headers.get("content-disposition")).toMatch(/^attachment; filename="router-.+\.db"$/)
    expect(Buffer.from(bytes.subarray(0, 16)).toString("latin1")).toBe("SQLite format 3\0")
    // Nothing of the snapshot is left beside the store.
    expect(readdirSync(first.dir).filter((name) => name.includes("backup"))).toEqual([])

    const restoredDir = freshDir()
    writeFileSync(join(restoredDir, "router.db"), bytes)
    expect(integrityCheck(join(restoredDir, "router.db"))).toEqual(["ok"])
    await first.stop()

    tenant.up()
    const second = await start(restoredDir, config)
    await tenant.waitFor((received) => before.every((id) => received.some((r) => r.headers["webhook-id"] === id)), 20_000)
    await eventually(async () => (await pending(second)) === 0, 20_000, "the restored queue drained")
    const counts = receipts(tenant)
    for (const id of before) expect(counts.get(id)).toBe(1)
    // Only events the first router acknowledged, each once; those after the snapshot are not in it.
    const ours = new Set(acknowledged)
    for (const [id, count] of counts) {
      expect(ours.has(id)).toBe(true)
      expect(count).toBe(1)
    }
    expect(counts.size).toBeLessThan(acknowledged.length)
  })

  test("operators only: a tenant token is refused (403), no token is 401", async () => {
    const router = await start(freshDir(), {
      hooks: [{ host: HOST, url: "http://127.0.0.1:9/voice" }],
      admin: { tokens: [ADMIN_TOKEN], tenantTokens: [{ token: "tenant-token-for-backup-0123456789", hosts: [HOST] }] }
    })
    const tenant = await backup(router, "tenant-token-for-backup-0123456789")
    expect(tenant.status).toBe(403)
    expect(((await tenant.json()) as any).error.code).toBe("forbidden")
    const anonymous = await backup(router, null)
    expect(anonymous.status).toBe(401)
    expect(((await anonymous.json()) as any).error.code).toBe("unauthorized")
  })

  test("backup --to FILE writes a database that passes integrity_check, and never replaces a file", async () => {
    const router = await start(freshDir(), { hooks: [{ host: HOST, url: "http://127.0.0.1:9/voice" }] })
    expect((await router.post(sipParticipantEvent("participant_joined", { room: "cli-backup", xToIp: HOST }))).status).toBe(200)
    const out = join(freshDir(), "snapshot.db")
    const run = (to: string) =>
      Bun.spawnSync(["bun", "run", MAIN, "backup", "--to", to, "--url", router.url], {
        env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: ADMIN_TOKEN, LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "" }
      })
    const written = run(out)
    expect(written.stderr.toString()).toBe("")
    expect(written.exitCode).toBe(0)
    expect(written.stdout.toString()).toContain(`wrote ${out}`)
    expect(integrityCheck(out)).toEqual(["ok"])
    const db = new Database(out, { readonly: true })
    const rows = db.query<{ n: number }, []>("SELECT COUNT(*) AS n FROM deliveries").get()!.n
    db.close()
    expect(rows).toBeGreaterThanOrEqual(1)

    const kept = readFileSync(out)
    const again = run(out)
    expect(again.exitCode).toBe(1)
    expect(again.stderr.toString()).toContain("exists")
    expect(readFileSync(out).equals(kept)).toBe(true)
  })
})

describe.skipIf(!redisAvailable())("GET /v1/backup on Redis", () => {
  test("501 not_implemented, naming Redis's own procedure", async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.stop())
    const router = await start(freshDir(), { hooks: [{ host: HOST, url: "http://127.0.0.1:9/voice" }] }, { redis: redis.url(0), lease: "2s" })
    const answer = await backup(router)
    expect(answer.status).toBe(501)
    const body = (await answer.json()) as any
    expect(body.error.code).toBe("not_implemented")
    expect(body.error.message).toContain("AOF")
    expect(body.error.message).toContain("RDB")
  })
})

