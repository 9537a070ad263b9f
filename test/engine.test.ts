/**
 * The delivery engine in-process with controlled time (see support/engine.ts):
 * the window and its lanes, fairness, retry timings, the tenant's health,
 * auto-disable, expiry, and the wall clock stepping while retries wait. Each
 * case moves a manual clock, so nothing here sleeps.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { startEngine, type Engine, type EngineOptions } from "./support/engine.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const A = "http://a.example/voice"
const B = "http://b.example/voice"
const C = "http://c.example/voice"
const ALERTS = "http://alerts.example/hook"
const HOUR = 3_600_000

const hooks = (...urls: Array<string>) => urls.map((url) => ({ host: new URL(url).hostname, url }))

let engine: Engine | undefined
const start = async (options: EngineOptions) => (engine = await startEngine(options))
afterEach(async () => {
  await engine?.stop()
  engine = undefined
})

/** The attempts of each event, in the order the tenant saw them. */
const sentOrder = (e: Engine, url: string) => e.sent.filter((s) => s.url === url).map((s) => s.eventId)

describe("the window", () => {
  test("a call's events go out in order, one at a time; a retrying head holds back only its own call", async () => {
    const e = await start({
      config: { hooks: hooks(A) },
      answer: (sent, nth) => (sent.eventId === "a1" && nth === 0 ? 503 : 200)
    })
    await e.accept([
      { url: A, eventId: "a1", room: "a" },
      { url: A, eventId: "a2", room: "a" },
      { url: A, eventId: "b1", room: "b" },
      { url: A, eventId: "b2", room: "b" }
    ])
    await e.clock.settle()
    expect(sentOrder(e, A)).toEqual(["a1", "b1", "b2"])
    await e.clock.advance(1_199)
    expect(sentOrder(e, A)).toEqual(["a1", "b1", "b2", "a1", "a2"])
    const [first, retried] = e.attemptsOf("a1")
    expect(retried! - first!).toBeGreaterThanOrEqual(800)
    expect(e.attemptsOf("a2")[0]).toBe(retried!)
  })

  test("the window holds `lanes` calls of a tenant; the rest wait in the store and follow in arrival order", async () => {
    const e = await start({
      config: { hooks: hooks(A), delivery: { concurrencyPerTenant: 1, window: { lanes: 2, perLane: 1 } } },
      latencyMs: () => 100
    })
    const calls = ["c1", "c2", "c3", "c4"]
    await e.accept(calls.flatMap((room) => [1, 2].map((n) => ({ url: A, eventId: `${room}.${n}`, room }))))
    await e.clock.advance(1_000)
    // Lanes are taken in turn: after a call's event the worker moves to the other call in the window.
    expect(sentOrder(e, A)).toEqual(["c1.1", "c2.1", "c1.2", "c2.2", "c3.1", "c4.1", "c3.2", "c4.2"])
    expect(e.maxInFlightOf(A)).toBe(1)
  })

  test("a slow tenant delays no other: each has its own workers, at most concurrencyPerTenant", async () => {
    const e = await start({
      config: { hooks: hooks(A, B), delivery: { concurrencyPerTenant: 3 } },
      latencyMs: (sent) => (sent.url === A ? 10_000 : 0)
    })
    await e.accept([...Array.from({ length: 8 }, (_, i) => ({ url: A, room: `slow-${i}` })), ...Array.from({ length: 8 }, (_, i) => ({ url: B, room: `fast-${i}` }))])
    await e.clock.advance(0)
    expect(e.sent.filter((s) => s.url === B).map((s) => s.mono)).toEqual(Array(8).fill(0))
    expect(e.sent.filter((s) => s.url === A)).toHaveLength(3)
    await e.clock.advance(30_000)
    expect(e.sent.filter((s) => s.url === A)).toHaveLength(8)
    expect(e.maxInFlightOf(A)).toBe(3)
  })
})

describe("retries", () => {
  test("a failing delivery is retried on its exponential schedule, with jitter, capped, until its attempts run out", async () => {
    const e = await start({ config: { hooks: hooks(A), delivery: { maxAttempts: 6, initialBackoff: "1s", maxBackoff: "10s", circuitBreaker: { failureThreshold: 100 } } }, answer: () => 503 })
    const [queued] = await e.accept([{ url: A, eventId: "x" }])
    await e.clock.advance(120_000)
    const at = e.attemptsOf("x")
    expect(at).toHaveLength(6)
    const gaps = at.slice(1).map((t, i) => t - at[i]!)
    ;[1_000, 2_000, 4_000, 8_000, 16_000].forEach((nominal, i) => {
      expect(gaps[i]!).toBeGreaterThanOrEqual(Math.min(10_000, nominal * 0.8))
      expect(gaps[i]!).toBeLessThanOrEqual(Math.min(10_000, nominal * 1.2))
    })
    const stored = await e.delivery(queued!.id)
    expect(stored.status).toBe("failed")
    expect(stored.history.map((h) => h.status)).toEqual(Array(6).fill(503))
    // Recorded on the wall clock: each attempt's time is when the tenant saw it.
    expect(stored.history.map((h) => h.at)).toEqual(e.sent.map((s) => s.wall))
  })

  test("with the same seed the same timings: runs are deterministic", async () => {
    const timings = async (seed: string) => {
      const e = await startEngine({ seed, config: { hooks: hooks(A), delivery: { maxAttempts: 4, circuitBreaker: { failureThreshold: 100 } } }, answer: () => 503 })
      await e.accept([{ url: A, eventId: "x" }])
      await e.clock.advance(60_000)
      await e.stop()
      return e.attemptsOf("x")
    }
    const first = await timings("one")
    expect(first).toHaveLength(4)
    expect(await timings("one")).toEqual(first)
    expect(await timings("two")).not.toEqual(first)
  })

  test("Retry-After decides the wait, up to maxBackoff", async () => {
    const e = await start({
      config: { hooks: hooks(A, B), delivery: { maxAttempts: 3, initialBackoff: "1s", maxBackoff: "10s" } },
      answer: (sent, nth) => (nth > 0 ? 200 : { status: sent.url === A ? 429 : 503, retryAfterSeconds: sent.url === A ? 3 : 60 })
    })
    await e.accept([
      { url: A, eventId: "asked-3s" },
      { url: B, eventId: "asked-60s" }
    ])
    await e.clock.advance(20_000)
    expect(e.attemptsOf("asked-3s")).toEqual([0, 3_000])
    expect(e.attemptsOf("asked-60s")).toEqual([0, 10_000])
  })

  test("what is recorded as the next attempt is the wall time it is made, in whole milliseconds", async () => {
    const e = await start({ config: { hooks: hooks(A), delivery: { initialBackoff: "10s", maxBackoff: "20s" } }, answer: (_, nth) => (nth === 0 ? 503 : 200) })
    const [queued] = await e.accept([{ url: A, eventId: "x" }])
    await e.clock.settle()
    const pending = await e.delivery(queued!.id)
    expect(pending.status).toBe("pending")
    expect(Number.isInteger(pending.nextAttemptAt)).toBe(true)
    await e.clock.advance(20_000)
    expect(e.sent[1]!.wall).toBe(pending.nextAttemptAt)
  })
})

describe("the wall clock steps while retries wait", () => {
  // Three tenants, each failing once, with retries due about ten seconds later.
  const failingOnce = (): EngineOptions => ({
    config: { hooks: hooks(A, B, C), delivery: { initialBackoff: "10s", maxBackoff: "20s" } },
    answer: (_, nth) => (nth === 0 ? 503 : 200)
  })
  const accepted = async (e: Engine) => {
    await e.accept([A, B, C].map((url) => ({ url, eventId: new URL(url).hostname })))
    await e.clock.settle()
    expect(e.sent).toHaveLength(3)
  }

  test("an hour forward: no retry fires early, none in a burst", async () => {
    const e = await start(failingOnce())
    await accepted(e)
    e.clock.stepWall(HOUR)
    await e.clock.advance(7_999)
    expect(e.sent).toHaveLength(3)
    await e.clock.advance(4_001)
    expect(e.sent).toHaveLength(6)
    for (const retry of e.sent.slice(3)) expect(retry.mono).toBeGreaterThanOrEqual(8_000)
  })

  test("an hour back: no retry stalls for the hour", async () => {
    const e = await start(failingOnce())
    await accepted(e)
    e.clock.stepWall(-HOUR)
    await e.clock.advance(12_000)
    expect(e.sent).toHaveLength(6)
    for (const retry of e.sent.slice(3)) expect(retry.mono).toBeLessThanOrEqual(12_000)
  })

  test("an open circuit's cooldown and a rate limit run on the monotonic clock too", async () => {
    const e = await start({
      config: {
        hooks: [
          { host: "a.example", url: A },
          { host: "b.example", url: B, rateLimit: "1/s" }
        ],
        delivery: { circuitBreaker: { failureThreshold: 1, cooldown: "5s" }, initialBackoff: "1s", maxBackoff: "1s" }
      },
      answer: (sent, nth) => (sent.url === A && sent.eventId === "a1" && nth === 0 ? 503 : 200)
    })
    await e.accept([{ url: A, eventId: "a1", room: "r1" }, ...[1, 2, 3].map((n) => ({ url: B, eventId: `b${n}` }))])
    await e.clock.settle()
    await e.accept([{ url: A, eventId: "a2", room: "r2" }])
    e.clock.stepWall(-HOUR)
    await e.clock.advance(6_000)
    // The circuit opened on a1's failure: a2 waited out the cooldown, then went through as the probe.
    expect(e.attemptsOf("a2")).toEqual([5_000])
    expect([1, 2, 3].map((n) => e.attemptsOf(`b${n}`)[0])).toEqual([0, 1_000, 2_000])
  })

  test("an event's age runs on the monotonic clock: a wall step neither expires a fresh event nor spares a stale one", async () => {
    const e = await start({
      config: { hooks: [{ host: "a.example", url: A, maxAge: "30s" }], delivery: { initialBackoff: "10s", maxBackoff: "10s" } },
      answer: (_, nth) => (nth === 0 ? 503 : 200)
    })
    const [queued] = await e.accept([{ url: A, eventId: "x" }])
    await e.clock.settle()
    e.clock.stepWall(HOUR)
    await e.clock.advance(10_000)
    expect((await e.delivery(queued!.id)).status).toBe("delivered")
  })
})

describe("expiry", () => {
  test("a delivery whose retry would come after its maxAge expires on time, unsent, and the call moves on", async () => {
    const e = await start({
      config: { hooks: [{ host: "a.example", url: A, maxAge: "3s" }], delivery: { initialBackoff: "10s", maxBackoff: "10s" } },
      answer: (sent, nth) => (sent.eventId === "old" && nth === 0 ? 503 : 200)
    })
    const [old] = await e.accept([{ url: A, eventId: "old", room: "r" }])
    await e.clock.advance(2_000)
    const [next] = await e.accept([{ url: A, eventId: "next", room: "r" }])
    await e.clock.advance(1_100)
    const expired = await e.delivery(old!.id)
    expect(expired.status).toBe("expired")
    expect(expired.attempts).toBe(1)
    expect(e.attemptsOf("old")).toEqual([0])
    // The call's next event, two seconds younger, goes out as soon as the old one expires.
    expect(e.attemptsOf("next")).toEqual([3_001])
    expect((await e.delivery(next!.id)).status).toBe("delivered")
  })

  test("a delivery waiting at an open circuit expires when its maxAge passes, not when the circuit lets it through", async () => {
    const e = await start({
      config: { hooks: [{ host: "a.example", url: A, maxAge: "5s" }], delivery: { circuitBreaker: { failureThreshold: 1, cooldown: "30s" }, maxAttempts: 1 } },
      answer: (sent) => (sent.eventId === "breaks" ? 503 : 200)
    })
    await e.accept([{ url: A, eventId: "breaks", room: "r1" }])
    await e.clock.settle()
    const [waiting] = await e.accept([{ url: A, eventId: "waits", room: "r2" }])
    await e.clock.advance(6_000)
    expect(e.attemptsOf("waits")).toEqual([])
    expect((await e.delivery(waiting!.id)).status).toBe("expired")
  })
})

describe("outages", () => {
  test("a tenant down for half an hour, on the defaults, pauses its calls: probes spend no attempts, then every event goes out, each call in order, none failed", async () => {
    let down = true
    // The router's own defaults, not this suite's quicker ones.
    const defaults = { maxAttempts: 8, initialBackoff: "500ms", maxBackoff: "5m", circuitBreaker: { failureThreshold: 5, cooldown: "30s" } }
    const e = await start({ config: { hooks: hooks(A), delivery: defaults }, answer: () => (down ? "unreachable" : 200) })
    // One call: its head is the probe every time (two calls would share the probes between them).
    const calls = ["c1"]
    const queued = await e.accept(calls.flatMap((room) => ["joined", "track", "left"].map((step) => ({ url: A, eventId: `${room}.${step}`, room }))))
    await e.clock.advance(30 * 60_000)
    const duringOutage = e.sent.length
    // The five failures that open the circuit, then a probe after each cooldown: 30 s doubling to maxBackoff (5 m).
    const cooldowns = [30, 60, 120, 240, 300, 300, 300, 300]
    const probes = cooldowns.filter((_, i) => cooldowns.slice(0, i + 1).reduce((a, b) => a + b, 0) <= 1_790).length
    expect(duringOutage).toBeGreaterThanOrEqual(5 + probes - 1)
    expect(duringOutage).toBeLessThanOrEqual(5 + probes + 1)
    // Well past the old budget of eight attempts, no delivery has run out or been spent on the probes.
    for (const d of queued) expect((await e.delivery(d.id)).status).toBe("pending")
    expect(Math.max(...(await Promise.all(queued.map(async (d) => (await e.delivery(d.id)).attempts))))).toBeLessThan(e.config.delivery.maxAttempts)
    down = false
    await e.clock.advance(5 * 60_000)
    for (const d of queued) expect((await e.delivery(d.id)).status).toBe("delivered")
    const delivered = e.sent.slice(duringOutage).map((s) => s.eventId)
    for (const room of calls) expect(delivered.filter((id) => id.startsWith(room))).toEqual([`${room}.joined`, `${room}.track`, `${room}.left`])
    // A call's later event never went out while an earlier one was owed.
    for (const room of calls) {
      const firstOf = (step: string) => e.sent.findIndex((s) => s.eventId === `${room}.${step}`)
      const lastJoined = e.sent.map((s) => s.eventId).lastIndexOf(`${room}.joined`)
      expect(firstOf("track")).toBeGreaterThan(lastJoined)
    }
  })

  test("a failed probe is not recorded against the delivery it probed; a delivery the tenant refuses while it answers others still runs out of attempts", async () => {
    let down = true
    const e = await start({
      config: { hooks: hooks(A), delivery: { maxAttempts: 3, initialBackoff: "1s", maxBackoff: "1s", circuitBreaker: { failureThreshold: 2, cooldown: "5s" } } },
      answer: (sent) => (sent.eventId === "refused" ? 500 : down ? 503 : 200)
    })
    const [probed] = await e.accept([{ url: A, eventId: "probed", room: "r1" }])
    await e.clock.advance(60_000)
    // Two failures opened the circuit; the probes after them left no trace on the delivery.
    expect(e.attemptsOf("probed").length).toBeGreaterThan(3)
    const waiting = await e.delivery(probed!.id)
    expect(waiting.status).toBe("pending")
    expect(waiting.attempts).toBe(2)
    expect(waiting.history.map((h) => h.status)).toEqual([503, 503])
    down = false
    await e.clock.advance(10_000)
    expect((await e.delivery(probed!.id)).status).toBe("delivered")
    // Up, but refusing one delivery with 500 while the others get through: maxAttempts ends it.
    const [refused] = await e.accept([{ url: A, eventId: "refused", room: "r2" }])
    const [fine] = await e.accept([{ url: A, eventId: "fine", room: "r3" }])
    await e.clock.advance(1_500)
    await e.accept([{ url: A, eventId: "fine2", room: "r4" }])
    await e.clock.advance(10_000)
    expect((await e.delivery(fine!.id)).status).toBe("delivered")
    const ended = await e.delivery(refused!.id)
    expect(ended.status).toBe("failed")
    expect(ended.attempts).toBe(3)
  })
})

describe("tenant health", () => {
  const alerting = (config: Record<string, unknown>): Record<string, unknown> => ({ ...config, alerts: { url: ALERTS } })
  const alertTypes = (e: Engine) => e.sent.filter((s) => s.url === ALERTS).map((s) => s.eventId.split(".").slice(0, 2).join("."))

  test("failures start a streak, the circuit opening tells of it once, and the 2xx that ends it says it recovered", async () => {
    let down = true
    const e = await start({
      config: alerting({ hooks: hooks(A), delivery: { circuitBreaker: { failureThreshold: 2, cooldown: "5s" }, initialBackoff: "1s", maxBackoff: "1s", maxAttempts: 20 } }),
      answer: (sent) => (sent.url === A && down ? 503 : 200)
    })
    await e.accept([{ url: A, eventId: "x" }])
    await e.clock.settle()
    const since = e.sent[0]!.wall
    expect(await e.run(e.store.tenantHealth("a.example"))).toEqual({ failingSince: since, failingAlerted: false, disabledAt: null })
    await e.clock.advance(1_200)
    expect(alertTypes(e)).toEqual(["tenant.failing"])
    expect((await e.run(e.store.tenantHealth("a.example"))).failingAlerted).toBe(true)
    down = false
    await e.clock.advance(10_000)
    expect(alertTypes(e)).toEqual(["tenant.failing", "tenant.recovered"])
    expect(await e.run(e.store.tenantHealth("a.example"))).toEqual({ failingSince: null, failingAlerted: false, disabledAt: null })
  })

  test("a tenant failing for disableAfter is disabled: what waits ends failed at once, nothing more is sent until it is enabled and recovered", async () => {
    let down = true
    const e = await start({
      config: alerting({
        hooks: hooks(A),
        delivery: { disableAfter: "10s", circuitBreaker: { failureThreshold: 1000 }, initialBackoff: "2s", maxBackoff: "2s", maxAttempts: 100 }
      }),
      answer: (sent) => (sent.url === A && down ? 503 : 200)
    })
    const first = await e.accept([
      { url: A, eventId: "r1", room: "r1" },
      { url: A, eventId: "r2", room: "r2" }
    ])
    // Retries every 2 s (the first one jittered down to 1.6 s): the first failure 10 s into the streak comes by 12 s.
    await e.clock.advance(12_500)
    const disabledAt = (await e.run(e.store.tenantHealth("a.example"))).disabledAt
    expect(disabledAt).not.toBeNull()
    expect(alertTypes(e)).toContain("tenant.disabled")
    // Both calls' retries were waiting: they end at once, each on its last real attempt.
    for (const queued of first) {
      const stored = await e.delivery(queued.id)
      expect(stored.status).toBe("failed")
      expect(stored.lastError).toBe("disabled")
    }
    const attemptsWhenDisabled = e.sent.filter((s) => s.url === A).length
    const [later] = await e.accept([{ url: A, eventId: "later" }])
    await e.clock.advance(5_000)
    expect(e.sent.filter((s) => s.url === A)).toHaveLength(attemptsWhenDisabled)
    expect((await e.delivery(later!.id)).lastError).toBe("disabled")

    down = false
    await e.run(e.admin.enable("a.example"))
    expect(await e.run(e.admin.recover("a.example", 0))).toBe(3)
    await e.clock.advance(1_000)
    for (const queued of [...first, later!]) expect((await e.delivery(queued.id)).status).toBe("delivered")
  })

  test("the alerts endpoint is never disabled: nothing would then say it is down", async () => {
    const e = await start({
      config: alerting({ hooks: hooks(A), delivery: { disableAfter: "5s", initialBackoff: "1s", maxBackoff: "1s", maxAttempts: 50, circuitBreaker: { failureThreshold: 1000 } } }),
      answer: (sent) => (sent.url === ALERTS ? "unreachable" : 503)
    })
    await e.accept([{ url: A, eventId: "x" }])
    await e.clock.advance(20_000)
    expect((await e.run(e.store.tenantHealth("@alerts"))).disabledAt).toBeNull()
    expect(e.sent.filter((s) => s.url === ALERTS).at(-1)!.mono).toBeGreaterThan(15_000)
  })
})
