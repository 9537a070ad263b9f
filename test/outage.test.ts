/**
 * A tenant that goes down for far longer than its deliveries' attempt budget,
 * through the real router: its calls pause at the open circuit (probes spend
 * no attempts) and, once it is back, every event arrives, each call in order,
 * none failed.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startScriptedEndpoint, type ScriptedEndpoint } from "./support/receiver.ts"
import { ADMIN_TOKEN, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const SECRET = "whsec_" + Buffer.alloc(32, 61).toString("base64")
const HOST = "calls.outage.example"
// Two failures open the circuit; then a probe every 100 ms doubling to 400 ms. Before probes stopped
// spending attempts, a call's first event ran out of its three within about half a second.
const DELIVERY = { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "400ms", circuitBreaker: { failureThreshold: 2, cooldown: "100ms" } }
const OUTAGE_MS = 4_000

let router: RunningRouter
let tenant: ScriptedEndpoint
let down = true

beforeAll(async () => {
  tenant = startScriptedEndpoint(SECRET, () => (down ? 503 : 200))
  router = await startRouter({ delivery: DELIVERY, hooks: [{ host: HOST, url: `${tenant.url}/voice`, secret: SECRET, events: ["participant_joined", "track_published", "participant_left", "call.started", "call.ended"] }] })
})
afterAll(async () => {
  await router?.stop()
  tenant?.stop()
})

test("a tenant down ten times longer than the attempt budget gets every event of its calls once it is back, each call in order, none failed", async () => {
  const rooms = ["outage-a", "outage-b"]
  const sent = new Map<string, Array<string>>()
  const startedAt = Date.now()
  for (const room of rooms) {
    const events = [sipParticipantEvent("participant_joined", { room, xToIp: HOST }), trackEvent(room), sipParticipantEvent("participant_left", { room, xToIp: HOST })]
    for (const event of events) expect((await router.post(event)).status).toBe(200)
    sent.set(room, events.map((e) => e.id))
  }
  await eventually(() => Date.now() - startedAt >= OUTAGE_MS, OUTAGE_MS + 1_000, "the outage")
  // Probed all along, and nothing ran out of attempts while the tenant was down.
  expect(tenant.hits.length).toBeGreaterThan(DELIVERY.maxAttempts * 2)
  expect(await router.metric("tenant_router_deliveries_total", { tenant: HOST, outcome: "failed" })).toBe(0)
  down = false

  const delivered = () => tenant.hits.filter((h) => h.status === 200 && h.json !== undefined)
  // Each room's LiveKit events, and the call.started / call.ended the router adds.
  await eventually(() => delivered().length === rooms.length * 5, 15_000, "every event delivered")
  for (const room of rooms) {
    const ofRoom = delivered().filter((h) => h.json.call?.room === room)
    expect(ofRoom.map((h) => h.json.type)).toEqual(["participant_joined", "call.started", "track_published", "participant_left", "call.ended"])
    expect(ofRoom.filter((h) => h.json.data?.id !== undefined).map((h) => h.json.data.id)).toEqual(sent.get(room)!)
    // A call's later event never reached the tenant while an earlier one was still owed.
    const firstHit = (type: string) => tenant.hits.findIndex((h) => h.json?.call?.room === room && h.json.type === type)
    const lastHit = (type: string) => tenant.hits.map((h) => h.json?.call?.room === room && h.json.type === type).lastIndexOf(true)
    expect(firstHit("track_published")).toBeGreaterThan(lastHit("participant_joined"))
  }
  expect(await router.metric("tenant_router_deliveries_total", { tenant: HOST, outcome: "failed" })).toBe(0)
  const failed = await router.admin("GET", `/v1/deliveries?tenant=${HOST}&status=failed`, undefined, ADMIN_TOKEN)
  expect(((await failed.json()) as { items: unknown }).items).toEqual([])
  // The probes are logged as such, without an attempt number: they were not the delivery's.
  const probes = router.logs.filter((line) => line.msg === "circuit probe failed: the delivery waits for the tenant, its attempts unspent")
  expect(probes.length).toBeGreaterThan(0)
  expect(probes.every((line) => line.status === 503 && line.tenant === HOST)).toBe(true)
})
