/**
 * Three ways a call reached the wrong place, through the real router with
 * verifying tenants: a reused room name pinned to the previous room's tenant,
 * another tenant's caller in a pinned room delivered to the room's tenant, and
 * a SIP participant whose connection aborted never ending its call.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { rmSync } from "node:fs"
import { eventId, roomEvent, sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
const receiver = () => {
  const r = startReceiver(DEFAULT_SECRET)
  cleanups.push(() => r.stop())
  return r
}
const router = async (config: Record<string, unknown>) => {
  const r = await startRouter(config)
  cleanups.push(() => r.stop("SIGKILL").then(() => rmSync(r.dir, { recursive: true, force: true })))
  return r
}

/** An event of the room instance `sid`, whatever name it has. */
const inRoom = <E extends { room: { sid: string; name: string } }>(event: E, sid: string): E => ({ ...event, room: { ...event.room, sid } })

const ids = (tenant: Receiver) => tenant.received.map((r) => r.headers["webhook-id"])

const post = async (target: RunningRouter, ...events: ReadonlyArray<unknown>) => {
  for (const event of events) expect((await target.post(event)).status).toBe(200)
}

describe("a room name used again by a new room", () => {
  test("the new room instance is a new call, routed afresh: never to the previous room's tenant", async () => {
    const [a, b] = [receiver(), receiver()]
    const r = await router({
      hooks: [
        { host: "a.example", url: `${a.url}/a` },
        { host: "b.example", url: `${b.url}/b` }
      ]
    })
    const first = inRoom(sipParticipantEvent("participant_joined", { room: "reused", xToIp: "a.example" }), "RM_first")
    await post(r, first)
    await a.waitFor((got) => got.length === 1)
    // The first room's room_finished never arrives (LiveKit dropped it); a new room gets the same name.
    const second = inRoom(sipParticipantEvent("participant_joined", { room: "reused", xToIp: "b.example" }), "RM_second")
    const track = inRoom(trackEvent("reused"), "RM_second")
    await post(r, second, track)
    await b.waitFor((got) => got.length === 2)
    expect(ids(b)).toEqual([second.id, track.id])
    expect(ids(a)).toEqual([first.id])
    expect(b.received.every((x) => x.json.tenant === "b.example")).toBe(true)
  })
})

describe("another tenant's caller in a pinned room", () => {
  test("its events reach no tenant: unroutable as tenant_conflict (listed, counted, alerted); the room's own call carries on", async () => {
    const [a, b, alerts] = [receiver(), receiver(), receiver()]
    const r = await router({
      hooks: [
        { host: "a.example", url: `${a.url}/a` },
        { host: "b.example", url: `${b.url}/b` }
      ],
      alerts: { url: `${alerts.url}/alerts` }
    })
    const caller = inRoom(sipParticipantEvent("participant_joined", { room: "mixed", xToIp: "a.example" }), "RM_mixed")
    await post(r, caller)
    await a.waitFor((got) => got.length === 1)

    // A direct dispatch rule puts b.example's caller into the same room.
    const joined = sipParticipantEvent("participant_joined", { room: "mixed", xToIp: "b.example", callId: "SCL_other" })
    const intruder = inRoom({ ...joined, participant: { ...joined.participant, sid: "PA_other", identity: "sip_+15550002222" } }, "RM_mixed")
    const agent = { event: "participant_joined", room: { sid: "RM_mixed", name: "mixed" }, participant: { sid: "PA_agent", identity: "agent-1" }, id: eventId(), createdAt: caller.createdAt }
    const left = inRoom(sipParticipantEvent("participant_left", { room: "mixed", xToIp: "a.example" }), "RM_mixed")
    await post(r, intruder, agent, left)
    await a.waitFor((got) => got.length === 3)
    expect(ids(a)).toEqual([caller.id, agent.id, left.id])
    expect(b.received).toEqual([])

    const listed = (await (await r.admin("GET", "/v1/unroutable")).json()) as { items: Array<{ eventId: string; reason: string; domain: string }> }
    expect(listed.items.find((u) => u.eventId === intruder.id)).toMatchObject({ reason: "tenant_conflict", domain: "b.example" })
    expect(await r.metric("tenant_router_unroutable_total", { reason: "tenant_conflict" })).toBe(1)
    await alerts.waitFor((got) => got.some((x) => x.json.type === "domain.unroutable"))
    expect(alerts.received.find((x) => x.json.type === "domain.unroutable")!.json.data).toMatchObject({ domain: "b.example", reason: "tenant_conflict" })
    expect(r.logs.find((l) => l.msg === "no tenant for SIP event" && l.eventId === intruder.id)).toMatchObject({ reason: "tenant_conflict", domain: "b.example" })
  })
})

describe("a SIP participant whose connection aborted", () => {
  test("ends its call: call.ended with endedBy participant_connection_aborted, once", async () => {
    const a = receiver()
    const r = await router({ hooks: [{ host: "a.example", url: `${a.url}/a`, events: ["*", "call.started", "call.ended"] }] })
    const joined = sipParticipantEvent("participant_joined", { room: "aborted", xToIp: "a.example" })
    const left = sipParticipantEvent("participant_left", { room: "aborted", xToIp: "a.example" })
    const aborted = { ...left, event: "participant_connection_aborted", id: eventId() }
    await post(r, joined, aborted, roomEvent("room_finished", "aborted"))
    await a.waitFor((got) => got.filter((x) => x.json.type === "call.ended").length === 1 && got.some((x) => x.json.type === "room_finished"))
    await eventually(() => a.received.length === 5, 2_000, "the call's five deliveries")
    expect(a.received.map((x) => x.json.type)).toEqual(["participant_joined", "call.started", "participant_connection_aborted", "call.ended", "room_finished"])
    expect(a.received.find((x) => x.json.type === "call.ended")!.json.data.endedBy).toBe("participant_connection_aborted")
  })
})
