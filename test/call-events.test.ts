/**
 * Call lifecycle events through the real router: call.started and call.ended,
 * derived from LiveKit's events, delivered in the call's lane to hooks that
 * list them, each exactly once: across retries, one batch, a kill -9 and two
 * instances sharing Redis. Tenants verify every request with standardwebhooks.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { rmSync } from "node:fs"
import { eventId, roomEvent, sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { redisAvailable } from "./support/redis.ts"
import { startRedisCluster } from "./support/redisCluster.ts"
import { DEFAULT_SECRET, startRouter, type RunningRouter } from "./support/router.ts"

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
const router = async (...args: Parameters<typeof startRouter>) => {
  const r = await startRouter(...args)
  cleanups.push(() => r.stop("SIGKILL").then(() => rmSync(r.dir, { recursive: true, force: true })))
  return r
}

const HOST = "calls.drsmith.com"
const ALL = ["*", "call.started", "call.ended"]
const T0 = 1_767_225_601 // LiveKit's createdAt, in seconds

let rooms = 0
const uniqueRoom = () => `call-${Date.now().toString(36)}-${++rooms}`

/** A SIP call's LiveKit events, with createdAt `T0 + offset` seconds. */
const callOf = (room: string, host = HOST) => {
  const at = <E extends { createdAt: string }>(event: E, offset: number): E => ({ ...event, createdAt: String(T0 + offset) })
  return {
    room,
    joined: at(sipParticipantEvent("participant_joined", { room, xToIp: host, to: `<sip:+15557654321@${host}>` }), 0),
    track: at(trackEvent(room), 1),
    left: at({ ...sipParticipantEvent("participant_left", { room, xToIp: host }), participant: { ...sipParticipantEvent("participant_left", { room, xToIp: host }).participant, disconnectReason: "CLIENT_INITIATED" } }, 42),
    finished: at(roomEvent("room_finished", room), 50)
  }
}

const postAll = async (target: RunningRouter, ...events: ReadonlyArray<unknown>) => {
  for (const event of events) expect((await target.post(event)).status).toBe(200)
}

/** What the tenant was sent for a room, in arrival order: `type` per distinct webhook-id (a retry of one id counts once). */
const typesFor = (tenant: Receiver, room: string) => {
  const seen = new Set<string>()
  return tenant.received
    .filter((r) => r.json.call?.room === room)
    .filter((r) => !seen.has(r.headers["webhook-id"]!) && seen.add(r.headers["webhook-id"]!))
    .map((r) => r.json.type as string)
}
const bodyOf = (tenant: Receiver, room: string, type: string) => tenant.received.find((r) => r.json.call?.room === room && r.json.type === type)!

const settle = () => Bun.sleep(600)

describe("call.started and call.ended", () => {
  test("joined → track → left → room_finished: call.started after the join, call.ended after the leave, once each, in the call's order", async () => {
    const tenant = receiver()
    const r = await router({ hooks: [{ host: HOST, url: `${tenant.url}/voice`, events: ALL }] })
    const call = callOf(uniqueRoom())
    await postAll(r, call.joined, call.track, call.left, call.finished)
    await tenant.waitFor(() => typesFor(tenant, call.room).length === 6)
    // LiveKit retries (same ids) are duplicates: nothing is derived twice.
    await postAll(r, call.left, call.finished, call.joined)
    await settle()
    expect(typesFor(tenant, call.room)).toEqual(["participant_joined", "call.started", "track_published", "participant_left", "call.ended", "room_finished"])

    const started = bodyOf(tenant, call.room, "call.started")
    expect(started.headers["webhook-id"]).toBe(`${call.joined.id}.call.started`)
    expect(started.json).toEqual({
      type: "call.started",
      timestamp: new Date(T0 * 1000).toISOString(),
      tenant: HOST,
      call: { room: call.room, sipCallId: `SCL_${call.room}`, from: "+15550001111", to: "+15557654321", domain: HOST },
      data: {
        startedAt: new Date(T0 * 1000).toISOString(),
        trunkId: "ST_test",
        participant: { identity: "sip_+15550001111", sid: `PA_${call.room}` },
        headers: { "x-to-ip": HOST, to: `<sip:+15557654321@${HOST}>` }
      }
    })
    const ended = bodyOf(tenant, call.room, "call.ended")
    expect(ended.headers["webhook-id"]).toBe(`${call.left.id}.call.ended`)
    expect(ended.json).toEqual({
      type: "call.ended",
      timestamp: new Date((T0 + 42) * 1000).toISOString(),
      tenant: HOST,
      call: started.json.call,
      data: {
        startedAt: new Date(T0 * 1000).toISOString(),
        endedAt: new Date((T0 + 42) * 1000).toISOString(),
        durationSeconds: 42,
        endedBy: "participant_left",
        disconnectReason: "CLIENT_INITIATED"
      }
    })
    // Listed like any delivery.
    const page = await (await r.admin("GET", `/v1/deliveries?tenant=${HOST}&limit=100`)).json()
    expect((page as any).items.filter((d: any) => d.type.startsWith("call.")).map((d: any) => [d.type, d.eventId, d.status]).sort()).toEqual([
      ["call.ended", `${call.left.id}.call.ended`, "delivered"],
      ["call.started", `${call.joined.id}.call.started`, "delivered"]
    ])
  })

  test("opt-in: no events keeps LiveKit's events only; listing call events gets just those; * stands for every LiveKit event", async () => {
    const plain = receiver()
    const callsOnly = receiver()
    const star = receiver()
    const r = await router({
      hooks: [
        { host: "plain.example.com", url: `${plain.url}/voice` },
        { host: "calls-only.example.com", url: `${callsOnly.url}/voice`, events: ["call.started", "call.ended"] },
        { host: "star.example.com", url: `${star.url}/voice`, events: ["*"] }
      ]
    })
    const calls = [callOf(uniqueRoom(), "plain.example.com"), callOf(uniqueRoom(), "calls-only.example.com"), callOf(uniqueRoom(), "star.example.com")]
    for (const call of calls) await postAll(r, call.joined, call.track, call.left, call.finished)
    await plain.waitFor(() => typesFor(plain, calls[0]!.room).length >= 4)
    await callsOnly.waitFor(() => typesFor(callsOnly, calls[1]!.room).length >= 2)
    await star.waitFor(() => typesFor(star, calls[2]!.room).length >= 4)
    await settle()
    const livekit = ["participant_joined", "track_published", "participant_left", "room_finished"]
    expect(typesFor(plain, calls[0]!.room)).toEqual(livekit)
    expect(typesFor(callsOnly, calls[1]!.room)).toEqual(["call.started", "call.ended"])
    expect(typesFor(star, calls[2]!.room)).toEqual(livekit)
  })

  test("a room that finishes before its SIP participant is seen leaving: call.ended by room_finished, and a late leave ends nothing", async () => {
    const tenant = receiver()
    const r = await router({ hooks: [{ host: HOST, url: `${tenant.url}/voice`, events: ["call.started", "call.ended"] }] })
    const call = callOf(uniqueRoom())
    await postAll(r, call.joined, call.finished)
    await tenant.waitFor(() => typesFor(tenant, call.room).length === 2)
    await postAll(r, call.left)
    await settle()
    expect(typesFor(tenant, call.room)).toEqual(["call.started", "call.ended"])
    const ended = bodyOf(tenant, call.room, "call.ended")
    expect(ended.headers["webhook-id"]).toBe(`${call.finished.id}.call.ended`)
    expect(ended.json.data).toEqual({
      startedAt: new Date(T0 * 1000).toISOString(),
      endedAt: new Date((T0 + 50) * 1000).toISOString(),
      durationSeconds: 50,
      endedBy: "room_finished",
      disconnectReason: null
    })
  })

  test("another participant leaving (an agent) does not end the call; its SIP participant leaving does", async () => {
    const tenant = receiver()
    const r = await router({ hooks: [{ host: HOST, url: `${tenant.url}/voice`, events: ALL }] })
    const call = callOf(uniqueRoom())
    const agentLeft = {
      event: "participant_left",
      room: { sid: `RM_${call.room}`, name: call.room },
      participant: { sid: "PA_agent", identity: "agent-1", kind: "AGENT", attributes: { "lk.agent.state": "idle" } },
      id: eventId(),
      createdAt: String(T0 + 30)
    }
    await postAll(r, call.joined, agentLeft, call.left)
    await tenant.waitFor(() => typesFor(tenant, call.room).length === 5)
    expect(typesFor(tenant, call.room)).toEqual(["participant_joined", "call.started", "participant_left", "participant_left", "call.ended"])
    expect(bodyOf(tenant, call.room, "call.ended").headers["webhook-id"]).toBe(`${call.left.id}.call.ended`)
  })

  test("the leave and the room finishing at the same moment (one batch): one call.ended", async () => {
    const tenant = receiver()
    const r = await router({ hooks: [{ host: HOST, url: `${tenant.url}/voice`, events: ALL }] })
    const calls = Array.from({ length: 8 }, () => callOf(uniqueRoom()))
    for (const call of calls) await postAll(r, call.joined)
    await Promise.all(calls.flatMap((call) => [r.post(call.left), r.post(call.finished), r.post(call.left)]))
    await tenant.waitFor(() => calls.every((call) => typesFor(tenant, call.room).includes("call.ended")))
    await settle()
    for (const call of calls) expect(typesFor(tenant, call.room).filter((t) => t === "call.ended")).toHaveLength(1)
  })

  test("exactly once across a kill -9: a restarted router neither repeats nor loses a call event", async () => {
    const tenant = receiver()
    const config = { hooks: [{ host: HOST, url: `${tenant.url}/voice`, events: ALL }] }
    const first = await router(config)
    const calls = Array.from({ length: 6 }, () => callOf(uniqueRoom()))
    // Half the calls end before the crash, half after; the crash comes right after the acks, with deliveries in flight.
    await Promise.all(calls.map((call, i) => postAll(first, call.joined, ...(i % 2 === 0 ? [call.left] : []))))
    expect(await first.stop("SIGKILL")).not.toBe(0)
    const second = await router(config, first.dir)
    // LiveKit retries what it may not have seen acknowledged, then the calls go on.
    for (const [i, call] of calls.entries()) await postAll(second, call.joined, call.left, ...(i % 2 === 0 ? [call.finished] : [call.finished, call.left]))
    await tenant.waitFor(() => calls.every((call) => typesFor(tenant, call.room).length === 5))
    await settle()
    for (const call of calls) {
      expect(typesFor(tenant, call.room)).toEqual(["participant_joined", "call.started", "participant_left", "call.ended", "room_finished"])
      expect(bodyOf(tenant, call.room, "call.ended").json.data.endedBy).toBe("participant_left")
    }
  }, 60_000)
})

describe.skipIf(!redisAvailable())("call events on two instances sharing Redis", () => {
  test("a call's events spread over both instances, the leave and the room finishing on different ones at once: one call.started, one call.ended", async () => {
    const tenant = receiver()
    const cluster = await startRedisCluster(2, { hooks: [{ host: HOST, url: `${tenant.url}/voice`, events: ALL }] })
    cleanups.push(() => cluster.stop())
    const [a, b] = cluster.routers as [RunningRouter, RunningRouter]
    const calls = Array.from({ length: 10 }, () => callOf(uniqueRoom()))
    await Promise.all(calls.map((call, i) => postAll(i % 2 === 0 ? a : b, call.joined, call.track)))
    await Promise.all(
      calls.flatMap((call, i) => [
        (i % 2 === 0 ? b : a).post(call.left),
        (i % 2 === 0 ? a : b).post(call.finished),
        // LiveKit retrying the leave on the other instance.
        (i % 2 === 0 ? a : b).post(call.left)
      ])
    )
    await tenant.waitFor(() => calls.every((call) => typesFor(tenant, call.room).includes("call.ended") && typesFor(tenant, call.room).includes("room_finished")))
    await settle()
    for (const call of calls) {
      const types = typesFor(tenant, call.room)
      expect(types.filter((t) => t === "call.started")).toHaveLength(1)
      expect(types.filter((t) => t === "call.ended")).toHaveLength(1)
      // Each instance keeps its own part of the call in order (see Ordering in docs/scale-out.md): the start follows the join.
      expect(types.indexOf("call.started")).toBeGreaterThan(types.indexOf("participant_joined"))
      expect(types.filter((t) => !t.startsWith("call.")).sort()).toEqual(["participant_joined", "participant_left", "room_finished", "track_published"].sort())
    }
  }, 60_000)
})
