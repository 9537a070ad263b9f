/**
 * A burst past what the router may hold: beyond `server.maxWebhooksWaiting`
 * webhooks are refused at once with 503 and Retry-After, /healthz stays
 * prompt, and every acknowledged event (and every refused one, sent again as
 * LiveKit would) is delivered.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const HOST = "calls.drsmith.com"
const CLIENTS = 64
const PER_CLIENT = 15

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const start = async (config: Record<string, unknown>) => {
  const router = await startRouter(config)
  cleanups.push(() => (router.process.exitCode === null ? router.stop("SIGKILL") : undefined))
  return router
}

/** The slowest /healthz answer while `busy` runs, polled one after another. */
const slowestHealth = async (router: RunningRouter, busy: Promise<unknown>) => {
  let done = false
  void busy.finally(() => (done = true))
  let slowest = 0
  let polls = 0
  while (!done) {
    const started = performance.now()
    expect((await fetch(`${router.url}/healthz`)).status).toBe(200)
    slowest = Math.max(slowest, performance.now() - started)
    polls++
  }
  return { slowest, polls }
}

describe("a burst past server.maxWebhooksWaiting", () => {
  test("the excess is refused at once with 503, Retry-After and its own code; /healthz stays prompt; everything acknowledged or sent again arrives", async () => {
    const tenant = startReceiver(DEFAULT_SECRET, [{ status: 200 }])
    cleanups.push(() => tenant.stop())
    const router = await start({ server: { maxWebhooksWaiting: 8 }, hooks: [{ host: HOST, url: `${tenant.url}/voice` }] })

    const acknowledged: Array<string> = []
    const refused: Array<{ readonly event: ReturnType<typeof sipParticipantEvent>; readonly answer: Response; readonly body: unknown }> = []
    const client = async (c: number) => {
      for (let i = 0; i < PER_CLIENT; i++) {
        const event = sipParticipantEvent("participant_joined", { room: `burst-${c}-${i}`, xToIp: HOST })
        const answer = await router.post(event)
        if (answer.status === 200) acknowledged.push(event.id)
        else refused.push({ event, answer, body: await answer.json() })
      }
    }
    const burst = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)))
    const health = await slowestHealth(router, burst)
    await burst

    expect(refused.length).toBeGreaterThan(0)
    expect(acknowledged.length).toBeGreaterThan(0)
    for (const { answer, body } of refused) {
      expect(answer.status).toBe(503)
      expect(answer.headers.get("retry-after")).toBe("1")
      expect(body).toEqual({ error: { code: "overloaded", message: "too many webhooks waiting to be stored; retry" } })
    }
    expect(health.polls).toBeGreaterThan(0)
    // Liveness is answered beside the burst, not behind it.
    expect(health.slowest).toBeLessThan(1_000)
    expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "overloaded" })).toBe(refused.length)

    // LiveKit sends a refused event again: one at a time, it is taken.
    for (const { event } of refused) {
      expect((await router.post(event)).status).toBe(200)
      acknowledged.push(event.id)
    }
    expect(acknowledged.length).toBe(CLIENTS * PER_CLIENT)
    await tenant.waitFor((received) => new Set(received.map((r) => r.headers["webhook-id"])).size === CLIENTS * PER_CLIENT, 30_000)
    const arrived = new Set(tenant.received.map((r) => r.headers["webhook-id"]))
    expect(acknowledged.every((id) => arrived.has(id))).toBe(true)
  })

  test("under the bound nothing is refused: the default holds a burst of 64 clients", async () => {
    const tenant = startReceiver(DEFAULT_SECRET, [{ status: 200 }])
    cleanups.push(() => tenant.stop())
    const router = await start({ hooks: [{ host: HOST, url: `${tenant.url}/voice` }] })
    const statuses = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const seen: Array<number> = []
        for (let i = 0; i < 5; i++) seen.push((await router.post(sipParticipantEvent("participant_joined", { room: `calm-${c}-${i}`, xToIp: HOST }))).status)
        return seen
      })
    )
    expect(statuses.flat().every((status) => status === 200)).toBe(true)
    expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "overloaded" })).toBe(0)
  })
})
