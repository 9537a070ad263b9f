/**
 * Secrets at rest, through the real router: with `store.encryptionKey` no hook
 * secret, previous secret, credential, header value, pin or delivery secret is
 * in the SQLite file, its WAL or Redis; the key is needed to start, rotates
 * with the reencrypt command, and without one the router warns once.
 */
import { RedisClient } from "bun"
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver } from "./support/receiver.ts"
import { redisAvailable, startRedis } from "./support/redis.ts"
import { ADMIN_TOKEN, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

setDefaultTimeout(TEST_TIMEOUT_MS)

const MAIN = join(import.meta.dir, "..", "src", "main.ts")
const newKey = () => randomBytes(32).toString("base64")
const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "router-enc-"))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const FILE_HOST = "file.example.com"
const API_HOST = "api.example.com"
const BASIC_HOST = "basic.example.com"

/** A tenant on a port of its own for the whole test, down (503) until brought up. */
const downTenant = (secret: string) => {
  const tenant = startReceiver(secret, [{ status: 200 }])
  tenant.down()
  cleanups.push(() => tenant.stop())
  return tenant
}

/** Every secret the router is given, and its tenants, down until `tenants` brings them up. */
const world = () => {
  const secrets = { signing: newSecret(), file: newSecret(), api: newSecret(), basic: newSecret() }
  const down = { file: downTenant(secrets.file), api: downTenant(secrets.api), basic: downTenant(secrets.basic) }
  return {
    ...secrets,
    header: `hdr-${randomBytes(12).toString("hex")}`,
    bearer: `tok-${randomBytes(12).toString("hex")}`,
    password: `pw-${randomBytes(12).toString("hex")}`,
    tenants: down,
    ports: { file: down.file.port, api: down.api.port, basic: down.basic.port }
  }
}
type World = ReturnType<typeof world>

const configFor = (dir: string, w: World, store: Record<string, unknown>) => ({
  ...testConfig(dir, {
    signing: { secret: w.signing },
    hooks: [{ host: FILE_HOST, url: `http://127.0.0.1:${w.ports.file}/voice`, secret: w.file }],
    delivery: { timeout: "1s", maxAttempts: 1_000, initialBackoff: "100ms", maxBackoff: "300ms", concurrencyPerTenant: 4 }
  }),
  store
})

const start = async (dir: string, w: World, store: Record<string, unknown>, env: Record<string, string> = {}) => {
  const router = await startRouter(() => configFor(dir, w, store), dir, env)
  cleanups.push(() => (router.process.exitCode === null ? router.stop("SIGKILL") : undefined))
  return router
}

/** A start that must fail: its exit code and what it printed. */
const startFails = async (dir: string, w: World, store: Record<string, unknown>) => {
  const configPath = join(dir, "refused.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(configFor(dir, w, store)))
  const proc = Bun.spawn(["bun", "run", MAIN, "--config", configPath], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "", ROUTER_ADMIN_TOKEN: "", ROUTER_ENCRYPTION_KEY: "" }
  })
  // A router that starts instead would run until killed, and fail the exit code check.
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, output: stdout + stderr }
}

/** The API hooks with their secrets, credentials and headers, a rotation, and calls pinned to all three tenants, each leaving a pending delivery. */
const populate = async (router: RunningRouter, w: World, rooms: string) => {
  const api = await router.admin("PUT", `/v1/hooks/${API_HOST}`, {
    url: `http://127.0.0.1:${w.ports.api}/voice`,
    secret: w.api,
    headers: { "X-Api-Key": w.header },
    auth: { bearer: w.bearer }
  })
  expect(api.status).toBeLessThan(300)
  const rotated = await router.admin("POST", `/v1/hooks/${API_HOST}/rotate-secret`)
  expect(rotated.status).toBe(200)
  // The API hook's secret is the generated one now; the one it was given is its previous secret.
  const previous = w.api
  w.api = ((await rotated.json()) as { secret: string }).secret
  const basic = await router.admin("PUT", `/v1/hooks/${BASIC_HOST}`, {
    url: `http://127.0.0.1:${w.ports.basic}/voice`,
    secret: w.basic,
    auth: { basic: { username: "router", password: w.password } }
  })
  expect(basic.status).toBeLessThan(300)
  for (const host of [FILE_HOST, API_HOST, BASIC_HOST]) {
    expect((await router.post(sipParticipantEvent("participant_joined", { room: `${rooms}-${host}`, xToIp: host }))).status).toBe(200)
  }
  return previous
}

/** Whether `bytes` hold any of `w`'s secrets: as text, and a `whsec_` secret's key bytes too. */
const leaked = (bytes: Buffer, secrets: ReadonlyArray<string>) =>
  secrets.flatMap((secret) => {
    const forms = [Buffer.from(secret), ...(secret.startsWith("whsec_") ? [Buffer.from(secret.slice(6), "base64")] : [])]
    return forms.some((form) => bytes.includes(form)) ? [secret.slice(0, 10)] : []
  })

const secretsOf = (w: World, previous: string) => [w.signing, w.file, w.api, previous, w.basic, w.header, w.bearer, w.password]

/** The tenants up, each verifying with its secret; the API tenant also checks its header and token arrive. */
const tenants = (w: World) => {
  Object.values(w.tenants).forEach((tenant) => tenant.up())
  return w.tenants
}

const delivered = async (up: ReturnType<typeof tenants>, w: World, rooms: string) => {
  await up.file.waitFor((r) => r.some((x) => x.json.call?.room === `${rooms}-${FILE_HOST}`), 20_000)
  await up.api.waitFor((r) => r.some((x) => x.json.call?.room === `${rooms}-${API_HOST}`), 20_000)
  await up.basic.waitFor((r) => r.some((x) => x.json.call?.room === `${rooms}-${BASIC_HOST}`), 20_000)
  const api = up.api.received.find((x) => x.json.call?.room === `${rooms}-${API_HOST}`)!
  expect(api.headers["x-api-key"]).toBe(w.header)
  expect(api.headers.authorization).toBe(`Bearer ${w.bearer}`)
  const basic = up.basic.received.find((x) => x.json.call?.room === `${rooms}-${BASIC_HOST}`)!
  expect(basic.headers.authorization).toBe(`Basic ${Buffer.from(`router:${w.password}`).toString("base64")}`)
}

const reencrypt = async (router: RunningRouter) => {
  const proc = Bun.spawn(["bun", "run", MAIN, "reencrypt", "--url", router.url], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: ADMIN_TOKEN }
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
  expect(stdout).toMatch(/^re-encrypted \d+ values? with key /)
}

const pendingCount = async (router: RunningRouter) =>
  ((await (await router.admin("GET", "/v1/deliveries?status=pending&limit=500")).json()) as { items: Array<unknown> }).items.length

/** Everything the issue asks of one store: nothing leaks, the key is needed, rotation works. `inspect` reads what the store holds. */
const lifecycle = async (dir: string, store: Record<string, unknown>, inspect: () => Promise<Buffer>) => {
  const w = world()
  const oldKey = newKey()
  const first = await start(dir, w, { ...store, encryptionKey: oldKey })
  const previous = await populate(first, w, "a")
  await eventually(async () => (await pendingCount(first)) >= 3, 10_000, "pending deliveries")
  // Read while the router runs: on SQLite the WAL is still there, not yet checkpointed.
  expect(leaked(await inspect(), secretsOf(w, previous))).toEqual([])
  expect(first.logs.some((line) => String(line.msg).includes("stored unencrypted"))).toBe(false)
  await first.stop()

  // Without its key the store is refused, naming the setting.
  const refused = await startFails(dir, w, store)
  // Refused by the key check at start, before anything is read: not a failure met later, nor a kill.
  expect(refused.code).toBe(1)
  expect(refused.output).toContain("the store holds secrets encrypted with key")
  expect(refused.output).toContain("set store.encryptionKey (or ROUTER_ENCRYPTION_KEY) to the key it was written with")
  expect(refused.output).not.toContain(oldKey)

  // With it, the pending deliveries arrive, signed and with their credentials.
  const up = tenants(w)
  const second = await start(dir, w, { ...store, encryptionKey: oldKey })
  await delivered(up, w, "a")
  await second.stop()
  Object.values(up).forEach((tenant) => tenant.down())

  // Rotation: the new key first, the old one still read; new calls queue while the tenants are down.
  const key = newKey()
  const third = await start(dir, w, { ...store, encryptionKey: [key, oldKey] })
  for (const host of [FILE_HOST, API_HOST, BASIC_HOST]) {
    expect((await third.post(sipParticipantEvent("participant_joined", { room: `b-${host}`, xToIp: host }))).status).toBe(200)
  }
  await reencrypt(third)
  expect(leaked(await inspect(), secretsOf(w, previous))).toEqual([])
  await third.stop()

  const stale = await startFails(dir, w, { ...store, encryptionKey: oldKey })
  expect(stale.code).toBe(1)
  expect(stale.output).toContain("which store.encryptionKey (or ROUTER_ENCRYPTION_KEY) does not list")

  const again = tenants(w)
  const fourth = await start(dir, w, { ...store, encryptionKey: key })
  await delivered(again, w, "b")
  await fourth.stop()
}

describe("encryption at rest on SQLite", () => {
  test("no secret is in the file or its WAL; the key is needed to start, and rotates with reencrypt", async () => {
    const dir = freshDir()
    const path = join(dir, "router.db")
    await lifecycle(dir, { path }, async () =>
      Buffer.concat([readFileSync(path), ...(existsSync(`${path}-wal`) ? [readFileSync(`${path}-wal`)] : [])])
    )
  })

  test("without a key: one warning at start, secrets stay as they were, and deliveries verify", async () => {
    const dir = freshDir()
    const w = world()
    const first = await start(dir, w, { path: join(dir, "router.db") })
    await populate(first, w, "plain")
    await eventually(async () => (await pendingCount(first)) >= 3, 10_000, "pending deliveries")
    const warnings = [...first.logs.map((line) => JSON.stringify(line)), ...first.stderr().split("\n")].filter((line) => line.includes("stored unencrypted"))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain("store.encryptionKey")
    const path = join(dir, "router.db")
    const bytes = Buffer.concat([readFileSync(path), ...(existsSync(`${path}-wal`) ? [readFileSync(`${path}-wal`)] : [])])
    // Plain, as before: the file secret is there as text.
    expect(bytes.includes(Buffer.from(w.file))).toBe(true)
    await first.stop()
    const up = tenants(w)
    const second = await start(dir, w, { path })
    await delivered(up, w, "plain")
    await second.stop()
  })
})

describe("encryption at rest on Redis", () => {
  test.skipIf(!redisAvailable())("no secret is in any key of any type; the key is needed to start, and rotates with reencrypt", async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.stop())
    const client = new RedisClient(redis.url(0))
    cleanups.push(() => client.close())
    /** Every key's value, whatever its type. */
    const dump = async () => {
      const parts: Array<string> = []
      for (const key of (await client.send("KEYS", ["*"])) as Array<string>) {
        const type = (await client.send("TYPE", [key])) as string
        const value =
          type === "string" ? await client.send("GET", [key])
          : type === "hash" ? await client.send("HGETALL", [key])
          : type === "list" ? await client.send("LRANGE", [key, "0", "-1"])
          : type === "set" ? await client.send("SMEMBERS", [key])
          : type === "zset" ? await client.send("ZRANGE", [key, "0", "-1", "WITHSCORES"])
          : type === "stream" ? await client.send("XRANGE", [key, "-", "+"])
          : null
        parts.push(key, JSON.stringify(value))
      }
      return Buffer.from(parts.join("\n"))
    }
    await lifecycle(freshDir(), { redis: redis.url(0) }, dump)
  })
})

describe("store.encryptionKey in the config", () => {
  const check = async (store: Record<string, unknown>, env: Record<string, string> = {}) => {
    const dir = freshDir()
    const configPath = join(dir, "router.yaml")
    writeFileSync(configPath, Bun.YAML.stringify({ ...testConfig(dir), store: { path: join(dir, "router.db"), ...store } }))
    const proc = Bun.spawn(["bun", "run", MAIN, "check-config", configPath], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "", ROUTER_ADMIN_TOKEN: "", ROUTER_ENCRYPTION_KEY: "", ...env }
    })
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    return { code, output: stdout + stderr }
  }

  test("a key that is not base64 is refused, by its position, without being shown", async () => {
    const bad = "this is not base64 at all!"
    const answer = await check({ encryptionKey: [newKey(), bad] })
    expect(answer.code).toBe(1)
    expect(answer.output).toContain("store.encryptionKey.1")
    expect(answer.output).not.toContain(bad)
  })

  test("a key of the wrong length is refused, in the file or the env's list, without being shown", async () => {
    const short = randomBytes(16).toString("base64")
    const inFile = await check({ encryptionKey: short })
    expect(inFile.code).toBe(1)
    expect(inFile.output).toContain("store.encryptionKey")
    expect(inFile.output).toContain("exactly 32 bytes, got 16")
    expect(inFile.output).not.toContain(short)
    const inEnv = await check({}, { ROUTER_ENCRYPTION_KEY: `${newKey()},${short}` })
    expect(inEnv.code).toBe(1)
    expect(inEnv.output).toContain("ROUTER_ENCRYPTION_KEY")
    expect(inEnv.output).toContain("key 2 of the list")
    expect(inEnv.output).not.toContain(short)
    expect((await check({}, { ROUTER_ENCRYPTION_KEY: `${newKey()}, ${newKey()}` })).code).toBe(0)
  })
})
