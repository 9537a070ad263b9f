/**
 * Secrets changed in the config file overlap like an API rotation: a hook's own
 * `secret`, and `signing.secret` (reloaded without a restart), each sign next to
 * the secret they replaced for `signing.rotationOverlap`, across a restart too,
 * as a tenant verifying with `standardwebhooks` sees them.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Webhook } from "standardwebhooks"
import { sipParticipantEvent } from "./support/livekit.ts"
import { redisAvailable, startRedis } from "./support/redis.ts"
import { startScriptedEndpoint, type ScriptedEndpoint, type ScriptedHit } from "./support/receiver.ts"
import { eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const secret = (fill: number) => "whsec_" + Buffer.alloc(32, fill).toString("base64")
const OLD = secret(71)
const NEW = secret(72)
const OWN = "calls.own.example"
const DEFAULTED = "calls.defaulted.example"

let tenant: ScriptedEndpoint
let router: RunningRouter | undefined
let dir: string
afterEach(async () => {
  await router?.stop()
  router = undefined
  store = undefined
  tenant?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** Where the routers of a case keep their state: their dir's SQLite file, unless a case sets Redis. */
let store: Record<string, unknown> | undefined

/** The config with the hook OWN signed by `own` and DEFAULTED by `signing`, overlapping for `overlap`. */
const configWith = (own: string, signing: string, overlap: string): Record<string, any> => ({
  ...testConfig(dir, {
    signing: { secret: signing, rotationOverlap: overlap },
    hooks: [
      { host: OWN, url: `${tenant.url}/own`, secret: own },
      { host: DEFAULTED, url: `${tenant.url}/defaulted` }
    ]
  }),
  ...(store === undefined ? {} : { store })
})

const start = async (own: string, signing: string, overlap = "1h") => {
  router = await startRouter(() => configWith(own, signing, overlap), dir)
}

/** Rewrites the running router's file and waits until the table in force has the rotation of each of `changed`. */
const edit = async (own: string, signing: string, changed: ReadonlyArray<string>, overlap = "1h") => {
  const mark = router!.logs.length
  writeFileSync(router!.configPath, Bun.YAML.stringify(configWith(own, signing, overlap)))
  const rotated = () => router!.logs.slice(mark).filter((l) => l.msg === "signing secret changed; the old one keeps signing too").map((l) => l.signer)
  await eventually(() => changed.every((signer) => rotated().includes(signer)), 10_000, `the rotations of ${changed.join(", ")}`)
  expect(rotated().sort()).toEqual([...changed].sort())
}

let rooms = 0
/** Sends a call to `host` and returns the request the tenant got for it. */
const deliveredTo = async (host: string): Promise<ScriptedHit> => {
  const event = sipParticipantEvent("participant_joined", { room: `rotation-${Date.now()}-${++rooms}`, xToIp: host })
  expect((await router!.post(event)).status).toBe(200)
  await eventually(() => tenant.hits.some((h) => h.id === event.id), 10_000, `the delivery to ${host}`)
  return tenant.hits.find((h) => h.id === event.id)!
}

const verifies = (hit: ScriptedHit, secret: string) => {
  try {
    new Webhook(secret).verify(hit.body, hit.headers)
    return true
  } catch {
    return false
  }
}
const signatures = (hit: ScriptedHit) => hit.headers["webhook-signature"]!.split(" ")

const expectSignedBy = (hit: ScriptedHit, ...secrets: Array<string>) => {
  expect(signatures(hit)).toHaveLength(secrets.length)
  for (const s of secrets) expect(verifies(hit, s)).toBe(true)
}

describe("a secret changed in the config file overlaps like a rotation", () => {
  test("a hook's own secret, edited while running: both sign through the overlap, across a restart, then only the new one", async () => {
    dir = mkdtempSync(join(tmpdir(), "router-rotation-"))
    tenant = startScriptedEndpoint(NEW, () => 200)
    await start(OLD, secret(73), "6s")
    expectSignedBy(await deliveredTo(OWN), OLD)

    await edit(NEW, secret(73), [OWN], "6s")
    const during = await deliveredTo(OWN)
    expectSignedBy(during, NEW, OLD)
    // A tenant that already switched verifies it, as one that has not yet does.
    expect(during.json).toBeDefined()
    // The other hook's secret did not change: it signs alone.
    expectSignedBy(await deliveredTo(DEFAULTED), secret(73))

    // The overlap is in the store: a restart keeps it.
    await router!.stop()
    await start(NEW, secret(73), "6s")
    expectSignedBy(await deliveredTo(OWN), NEW, OLD)

    await Bun.sleep(6_000)
    expectSignedBy(await deliveredTo(OWN), NEW)
  })

  test("signing.secret, edited while running, is in force without a restart and overlaps for every hook without its own", async () => {
    dir = mkdtempSync(join(tmpdir(), "router-rotation-"))
    tenant = startScriptedEndpoint(NEW, () => 200)
    await start(secret(74), OLD)
    expectSignedBy(await deliveredTo(DEFAULTED), OLD)

    await edit(secret(74), NEW, ["@default"])
    expect(router!.logs.some((l) => l.msg === "config edit needs a restart")).toBe(false)
    expectSignedBy(await deliveredTo(DEFAULTED), NEW, OLD)
    expectSignedBy(await deliveredTo(OWN), secret(74))

    await router!.stop()
    await start(secret(74), NEW)
    expectSignedBy(await deliveredTo(DEFAULTED), NEW, OLD)
  })

  test("a secret changed while the router was stopped overlaps from the start that first sees it", async () => {
    dir = mkdtempSync(join(tmpdir(), "router-rotation-"))
    tenant = startScriptedEndpoint(NEW, () => 200)
    await start(OLD, OLD)
    expectSignedBy(await deliveredTo(OWN), OLD)
    await router!.stop()
    await start(NEW, NEW)
    expectSignedBy(await deliveredTo(OWN), NEW, OLD)
    expectSignedBy(await deliveredTo(DEFAULTED), NEW, OLD)
  })

  test("removing signing.secret while running is refused: the edit is logged and the secret in force stays", async () => {
    dir = mkdtempSync(join(tmpdir(), "router-rotation-"))
    tenant = startScriptedEndpoint(OLD, () => 200)
    await start(OLD, OLD)
    const mark = router!.logs.length
    const { signing: _, ...withoutSigning } = configWith(OLD, OLD, "1h")
    writeFileSync(router!.configPath, Bun.YAML.stringify({ ...withoutSigning, hooks: [{ host: OWN, url: `${tenant.url}/own`, secret: OLD }] }))
    await eventually(() => router!.logs.slice(mark).some((l) => l.msg === "config edit refused; the last good config stays in force"), 10_000, "the refusal")
    expect(router!.logs.slice(mark).find((l) => l.msg === "config edit refused; the last good config stays in force")).toMatchObject({ key: "signing.secret" })
    expectSignedBy(await deliveredTo(DEFAULTED), OLD)
  })
})

test.skipIf(!redisAvailable())("on Redis, the overlap is shared: an instance started after another saw the change signs with both too", async () => {
  const redis = await startRedis()
  dir = mkdtempSync(join(tmpdir(), "router-rotation-"))
  tenant = startScriptedEndpoint(NEW, () => 200)
  store = { redis: redis.url(3) }
  let first: RunningRouter | undefined
  try {
    await start(OLD, OLD)
    expectSignedBy(await deliveredTo(OWN), OLD)
    await edit(NEW, OLD, [OWN])
    first = router
    // Started with the new file after the first saw the change: its first sight of NEW is no rotation, yet it signs with both.
    router = await startRouter(() => configWith(NEW, OLD, "1h"), mkdtempSync(join(tmpdir(), "router-rotation-")))
    expect(router.logs.some((l) => l.msg === "signing secret changed; the old one keeps signing too")).toBe(false)
    expectSignedBy(await deliveredTo(OWN), NEW, OLD)
  } finally {
    await first?.stop()
    await redis.stop()
  }
})
