/**
 * A full disk, for real: the store lives on a small tmpfs that the test fills.
 * No event is acknowledged unless it is stored; the others get 503 with
 * Retry-After; /readyz says why; once space is freed the router recovers by
 * itself and delivers every acknowledged event, and the file is sound.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { integrityCheck } from "./support/sqlite.ts"
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, unlinkSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const HOST = "calls.drsmith.com"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A tmpfs of `mib` MiB, or undefined where this process may not mount one (CI runs as root and must). */
const smallDisk = (mib: number): string | undefined => {
  const dir = mkdtempSync(join(tmpdir(), "router-full-disk-"))
  const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir], { stderr: "pipe" })
  if (mounted.exitCode !== 0) {
    rmSync(dir, { recursive: true, force: true })
    if (process.env.CI === "true") throw new Error(`CI=true needs a tmpfs for the full-disk test: mount failed: ${mounted.stderr.toString()}`)
    return undefined
  }
  cleanups.push(() => {
    Bun.spawnSync(["umount", "-l", dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}
const canMount = (() => {
  const probe = mkdtempSync(join(tmpdir(), "router-mount-probe-"))
  const ok = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe]).exitCode === 0
  if (ok) Bun.spawnSync(["umount", probe])
  rmSync(probe, { recursive: true, force: true })
  if (!ok && process.env.CI === "true") throw new Error("CI=true needs to mount a tmpfs (run as root) for the full-disk test")
  return ok
})()

/** Fills the filesystem at `dir` with one file until it refuses another byte; returns the file. */
const fill = (dir: string) => {
  const path = join(dir, "filler")
  const fd = openSync(path, "w")
  const chunk = Buffer.alloc(64 * 1024, 1)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error
  }
  // What is left is smaller than a chunk: take it byte by byte.
  try {
    for (;;) writeSync(fd, chunk, 0, 512)
  } catch {}
  closeSync(fd)
  return path
}

/** Seconds of CPU the process has used (user + system). */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const pendingCount = async (router: RunningRouter) =>
  ((await (await router.admin("GET", `/v1/deliveries?status=pending&limit=500`)).json()) as { items: Array<unknown> }).items.length

const ready = async (router: RunningRouter) => {
  const answer = await fetch(`${router.url}/readyz`)
  return { status: answer.status, body: await answer.text() }
}

describe.skipIf(!canMount)("a full disk under the SQLite store", () => {
  test("only stored events are acknowledged, 503 with Retry-After and not ready while full, then recovery by itself with every acknowledged event delivered", async () => {
    const disk = smallDisk(24)!
    // A slow tenant: attempts of events acknowledged before the disk fills finish after, and cannot be recorded then.
    const tenant = startReceiver(DEFAULT_SECRET, [{ status: 200, delayMs: 400 }])
    cleanups.push(() => tenant.stop())
    const config = testConfig(disk, {
      hooks: [{ host: HOST, url: `http://127.0.0.1:${tenant.port}/voice` }],
      delivery: { timeout: "1s", maxAttempts: 1_000, initialBackoff: "100ms", maxBackoff: "500ms", concurrencyPerTenant: 4 }
    })
    const router = await startRouter(() => config, disk)
    cleanups.push(() => (router.process.exitCode === null ? router.stop("SIGKILL") : undefined))

    const acknowledged: Array<string> = []
    const refused: Array<Response> = []
    /** Sends one event; what is acknowledged must arrive, what is refused must say when to come back. */
    const send = async (i: number) => {
      const event = sipParticipantEvent("participant_joined", { room: `full-${i}`, xToIp: HOST })
      const answer = await router.post(event)
      if (answer.status === 200) acknowledged.push(event.id)
      else refused.push(answer)
      return answer.status
    }
    for (let i = 0; i < 20; i++) expect(await send(i)).toBe(200)

    const filler = fill(disk)
    expect(statfsSync(disk).bavail).toBe(0)
    // Bounded: the WAL may have room left in pages it already holds; events go on until one is refused, and 30 more.
    let i = 20
    while (refused.length === 0 && i < 3_000) await send(i++)
    for (const end = i + 30; i < end; ) await send(i++)
    expect(refused.length).toBeGreaterThan(0)
    for (const answer of refused) {
      expect(answer.status).toBe(503)
      expect(answer.headers.get("retry-after")).toBe("1")
      expect(await answer.json()).toEqual({ error: { code: "store_unavailable", message: "event could not be stored; retry" } })
    }
    await eventually(async () => (await ready(router)).status === 503, 5_000, "/readyz to answer 503 while the disk is full")
    expect(JSON.parse((await ready(router)).body).error.message).toBe("store unavailable: writes fail: database or disk is full")

    // Neither crashed nor spinning: a busy loop would take most of a core.
    const cpuBefore = cpuSeconds(router.process.pid)
    await Bun.sleep(2_000)
    expect(cpuSeconds(router.process.pid) - cpuBefore).toBeLessThan(0.5)
    expect(router.process.exitCode).toBeNull()
    expect((await ready(router)).status).toBe(503)
    expect(await fetch(`${router.url}/healthz`).then((r) => r.status)).toBe(200)

    unlinkSync(filler)
    await eventually(async () => (await ready(router)).status === 200, 10_000, "/readyz to answer 200 once space is freed")
    for (let j = 0; j < 20; j++) expect(await send(i + j)).toBe(200)

    await tenant.waitFor((received) => acknowledged.every((id) => received.some((r) => r.headers["webhook-id"] === id)), 20_000)
    // Attempts whose outcome could not be recorded are on record now: nothing is left pending.
    await eventually(async () => (await pendingCount(router)) === 0, 10_000, "no delivery left pending")
    expect(router.logs.some((line) => line.msg === "delivery attempts not recorded; trying again")).toBe(true)
    await router.stop()
    expect(integrityCheck(join(disk, "router.db"))).toEqual(["ok"])
  })

  test("stopped while the disk is full, it exits within its drain timeout; started again with room, it sends what was left pending", async () => {
    const disk = smallDisk(24)!
    const tenant = startReceiver(DEFAULT_SECRET, [{ status: 200, delayMs: 400 }])
    cleanups.push(() => tenant.stop())
    const config = testConfig(disk, {
      server: { drainTimeout: "2s" },
      hooks: [{ host: HOST, url: `http://127.0.0.1:${tenant.port}/voice` }],
      delivery: { timeout: "1s", maxAttempts: 1_000, initialBackoff: "100ms", maxBackoff: "500ms", concurrencyPerTenant: 4 }
    })
    const first = await startRouter(() => config, disk)
    cleanups.push(() => (first.process.exitCode === null ? first.stop("SIGKILL") : undefined))
    const acknowledged: Array<string> = []
    for (let i = 0; i < 20; i++) {
      const event = sipParticipantEvent("participant_joined", { room: `stop-${i}`, xToIp: HOST })
      expect((await first.post(event)).status).toBe(200)
      acknowledged.push(event.id)
    }
    const filler = fill(disk)
    await eventually(() => first.logs.some((line) => line.msg === "delivery attempts not recorded; trying again"), 5_000, "a record refused by the full disk")

    const stopping = Date.now()
    expect(await first.stop("SIGTERM")).toBe(0)
    // The drain timeout, and one wait of the record's retry at most.
    expect(Date.now() - stopping).toBeLessThan(2_000 + 2_000 + 1_000)

    unlinkSync(filler)
    const second = await startRouter(() => config, disk)
    cleanups.push(() => (second.process.exitCode === null ? second.stop("SIGKILL") : undefined))
    await tenant.waitFor((received) => acknowledged.every((id) => received.some((r) => r.headers["webhook-id"] === id)), 20_000)
    await eventually(async () => (await pendingCount(second)) === 0, 10_000, "no delivery left pending")
    await second.stop()
    expect(integrityCheck(join(disk, "router.db"))).toEqual(["ok"])
  })
})
