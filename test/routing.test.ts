import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { eventId, roomEvent, sipParticipantEvent, trackEvent, type SipCall } from "./support/livekit.ts"
import { startReceiver, type Receiver, type Received } from "./support/receiver.ts"
import { startRouter, testConfig, type RunningRouter } from "./support/router.ts"
import fc from "fast-check"
import { sharedDomainMatcher } from "../src/ingest/SipDecision.ts"

setDefaultTimeout(20_000)

/** A Standard Webhooks secret: whsec_ + base64 of 32 random bytes. */
const newSecret = () => "whsec_" + randomBytes(32).toString("base64")

let rooms = 0
const room = (prefix: string) => `${prefix}-${++rooms}-${Math.random().toString(36).slice(2, 8)}`

const now = () => String(Math.floor(Date.now() / 1000))

/** Another participant in the room that is not a SIP caller (an AI agent). */
const agentJoined = (roomName: string, id = eventId()) => ({
  event: "participant_joined",
  room: { sid: `RM_${roomName}`, name: roomName },
  participant: { sid: "PA_agent", identity: "agent-1", state: "ACTIVE", kind: "AGENT" },
  id,
  createdAt: now()
})

/** A browser participant: no SIP kind, no sip.* attributes. */
const webJoined = (roomName: string, id = eventId()) => ({
  event: "participant_joined",
  room: { sid: `RM_${roomName}`, name: roomName },
  participant: { sid: "PA_web", identity: "web-user", state: "ACTIVE", kind: "STANDARD", attributes: { "lk.agent.state": "idle" } },
  id,
  createdAt: now()
})

/** Egress events name their room only in egressInfo. */
const egressStarted = (roomName: string, id = eventId()) => ({
  event: "egress_started",
  egressInfo: { egressId: "EG_1", roomId: `RM_${roomName}`, roomName, status: "EGRESS_STARTING" },
  id,
  createdAt: now()
})

const expectAccepted = async (response: Promise<Response>) => {
  const r = await response
  expect(r.status).toBe(200)
  expect(await r.json()).toEqual({ status: "received" })
}

const byId = (receiver: Receiver, id: string) => receiver.received.filter((x) => x.json.data.id === id)

/** Waits for the event at `receiver` and checks the Standard Webhooks id is LiveKit's event id. */
const deliveredTo = async (receiver: Receiver, id: string): Promise<Received> => {
  await receiver.waitFor((r) => r.some((x) => x.json.data.id === id))
  const got = byId(receiver, id)
  expect(got).toHaveLength(1)
  expect(got[0]!.headers["webhook-id"]).toBe(id)
  return got[0]!
}

const warningFor = (router: RunningRouter, id: string) =>
  router.logs.find((l) => l.msg === "no tenant for SIP event" && l.eventId === id)

/** Counters move by exactly `by` across `action`. */
const expectMetricDelta = async (
  router: RunningRouter,
  name: string,
  labels: Record<string, string>,
  by: number,
  action: () => Promise<unknown>
) => {
  const before = await router.metric(name, labels)
  await action()
  expect((await router.metric(name, labels)) - before).toBe(by)
}

// ---------------------------------------------------------------------------

describe("shared domain patterns", () => {
  const label = fc.stringMatching(/^[a-z0-9]{1,8}$/)
  test("a wildcard covers every deeper subdomain and nothing else; an exact entry only itself", () => {
    fc.assert(
      fc.property(fc.array(label, { minLength: 2, maxLength: 4 }), fc.array(label, { minLength: 1, maxLength: 3 }), label, (base, sub, other) => {
        const apex = base.join(".")
        const isShared = sharedDomainMatcher([`*.${apex}`, `exact.${other}.net`])
        return (
          isShared(`${sub.join(".")}.${apex}`) &&
          !isShared(apex) &&
          !isShared(`${other}${apex}`) &&
          isShared(`exact.${other}.net`) &&
          !isShared(`x.exact.${other}.net`)
        )
      })
    )
  })
})

describe("tenant resolution through the real router", () => {
  const secrets = { drsmith: newSecret(), dental: newSecret(), east: newSecret(), main: newSecret(), moving: newSecret() }
  const R = {} as Record<"drsmith" | "dental" | "east" | "main" | "oldUrl" | "newUrl", Receiver>
  let router: RunningRouter

  beforeAll(async () => {
    R.drsmith = startReceiver(secrets.drsmith)
    R.dental = startReceiver(secrets.dental)
    R.east = startReceiver(secrets.east)
    R.main = startReceiver(secrets.main)
    // One tenant moving its endpoint: both URLs verify with the tenant's secret.
    R.oldUrl = startReceiver(secrets.moving)
    R.newUrl = startReceiver(secrets.moving)
    router = await startRouter({
      security: { allowPrivateTargets: true },
      hooks: [
        { host: "calls.drsmith.com", url: `${R.drsmith.url}/drsmith`, secret: secrets.drsmith },
        { host: "*.citydental.com", url: `${R.dental.url}/dental`, secret: secrets.dental },
        { host: "*.east.citydental.com", url: `${R.east.url}/east`, secret: secrets.east },
        { host: "main.citydental.com", url: `${R.main.url}/main`, secret: secrets.main }
      ],
      sharedDomains: ["sip.sharedcarrier.net", "*.pool.bigcarrier.net"],
      numbers: [
        { number: "+1 (555) 765-4321", host: "calls.drsmith.com" },
        { number: "+44 20 7946 0958", host: "north.citydental.com" }
      ]
    })
  })

  afterAll(async () => {
    await router?.stop()
    for (const receiver of Object.values(R)) receiver.stop()
  })

  const all = () => Object.values(R)

  /** Posts a routable event and waits for it: deliveries queued before it have had their turn. */
  const flush = async () => {
    const event = sipParticipantEvent("participant_joined", { room: room("flush"), xToIp: "calls.drsmith.com" })
    await expectAccepted(router.post(event))
    await deliveredTo(R.drsmith, event.id)
  }

  /** No receiver got these events and the router never tried to deliver them. */
  const expectNotDelivered = async (...ids: string[]) => {
    await flush()
    for (const receiver of all()) for (const id of ids) expect(byId(receiver, id)).toHaveLength(0)
    expect(router.logs.filter((l) => l.msg === "delivery attempt" && ids.includes(l.eventId))).toEqual([])
  }

  /** A new call joining with these SIP attributes; returns what the expected tenant received. */
  const joinAndExpect = async (call: Omit<SipCall, "room">, receiver: Receiver, tenant: string) => {
    const event = sipParticipantEvent("participant_joined", { room: room("call"), ...call })
    await expectAccepted(router.post(event))
    const got = await deliveredTo(receiver, event.id)
    expect(got.json.tenant).toBe(tenant)
    expect(got.json.type).toBe("participant_joined")
    expect(got.json.call.room).toBe(event.room.name)
    expect(got.json.data).toEqual(event)
    return got
  }

  const TO = (host: string) => `"Dr Smith" <sip:+15557654321@${host}:5060;user=phone>;tag=SCL_x`

  describe("domain source", () => {
    test.each<[string, Omit<SipCall, "room">]>([
      ["x-to-ip bare host", { xToIp: "calls.drsmith.com" }],
      ["x-to-ip with port", { xToIp: "calls.drsmith.com:5060" }],
      ["x-to-ip upper-case", { xToIp: "CALLS.DRSMITH.COM" }],
      ["x-to-ip with trailing dot", { xToIp: "calls.drsmith.com." }],
      ["x-to-ip as a SIP URI", { xToIp: "sip:+15557654321@Calls.DrSmith.com;user=phone" }],
      ["x-to-ip missing: To used", { to: TO("calls.drsmith.com") }],
      ["x-to-ip blank: To used", { xToIp: "   ", to: TO("calls.drsmith.com") }],
      ["x-to-ip garbage: To used", { xToIp: "not a host!!", to: TO("calls.drsmith.com") }],
      ["x-to-ip is preferred over To", { xToIp: "calls.drsmith.com", to: TO("north.citydental.com") }]
    ])("%s → calls.drsmith.com", async (_, call) => {
      const got = await joinAndExpect(call, R.drsmith, "calls.drsmith.com")
      expect(got.path).toBe("/drsmith")
      expect(got.json.call.domain).toBe("calls.drsmith.com")
      expect(got.json.call.sipCallId).toMatch(/^SCL_call-/)
      expect(got.json.call.from).toBe("+15550001111")
      expect(got.json.call.to).toBe("+15557654321")
    })

    test("To is used when x-to-ip is garbage, even if To names another tenant", async () => {
      const got = await joinAndExpect({ xToIp: "<sip:@>", to: TO("north.citydental.com") }, R.dental, "*.citydental.com")
      expect(got.json.call.domain).toBe("north.citydental.com")
    })

    test("both headers missing (and an unmapped number): unroutable missing_header, acknowledged, warned, not forwarded", async () => {
      const event = sipParticipantEvent("participant_joined", { room: room("nohdr"), dialled: "+15550009999" })
      expect(event.participant.attributes["sip.h.x-to-ip"]).toBeUndefined()
      expect(event.participant.attributes["sip.h.to"]).toBeUndefined()
      await expectMetricDelta(router, "tenant_router_unroutable_total", { reason: "missing_header" }, 1, () =>
        expectAccepted(router.post(event))
      )
      const warning = warningFor(router, event.id)
      expect(warning).toMatchObject({ level: "warn", reason: "missing_header", domain: null, room: event.room.name })
      await expectNotDelivered(event.id)
    })

    test("garbage in both headers: unroutable malformed_header, the warning shows what arrived", async () => {
      const event = sipParticipantEvent("participant_joined", {
        room: room("badhdr"),
        xToIp: "not a host!!",
        to: '"Unterminated <sip:foo@',
        dialled: "+15550009999"
      })
      await expectMetricDelta(router, "tenant_router_unroutable_total", { reason: "malformed_header" }, 1, () =>
        expectAccepted(router.post(event))
      )
      expect(warningFor(router, event.id)).toMatchObject({
        level: "warn",
        reason: "malformed_header",
        domain: null,
        header: "x-to-ip",
        value: "not a host!!"
      })
      await expectNotDelivered(event.id)
    })

    test("an unknown domain: unroutable unknown_domain, the warning names the domain", async () => {
      // The dialled number is mapped, but number mapping is only for shared domains.
      const event = sipParticipantEvent("participant_joined", { room: room("unknown"), xToIp: "Calls.Unknown-Clinic.com:5060" })
      await expectMetricDelta(router, "tenant_router_unroutable_total", { reason: "unknown_domain" }, 1, () =>
        expectAccepted(router.post(event))
      )
      expect(warningFor(router, event.id)).toMatchObject({
        level: "warn",
        reason: "unknown_domain",
        domain: "calls.unknown-clinic.com"
      })
      await expectNotDelivered(event.id)
    })

    test("the real LiveKit participant_joined example routes to calls.drsmith.com, bytes intact", async () => {
      const raw = EXAMPLE_PARTICIPANT_JOINED
      await expectAccepted(router.post(null, { raw }))
      const got = await deliveredTo(R.drsmith, "EV_9sKd2LmQ7xYz")
      expect(got.json).toEqual({
        type: "participant_joined",
        timestamp: "2026-01-01T00:00:01.000Z",
        tenant: "calls.drsmith.com",
        call: {
          room: "call-_+15550001111_Xk3pQ9rT2wZa",
          sipCallId: "SCL_4fGh7JkL9mNp",
          from: "+15550001111",
          to: "+15557654321",
          domain: "calls.drsmith.com"
        },
        data: JSON.parse(raw)
      })
      // int64 strings and layout reach the tenant as LiveKit sent them.
      expect(got.body).toContain(raw.trim())
    })
  })

  describe("hook matching", () => {
    test.each<[string, keyof typeof R, string]>([
      ["north.citydental.com", "dental", "*.citydental.com"],
      ["a.b.citydental.com", "dental", "*.citydental.com"],
      ["NORTH.CityDental.com", "dental", "*.citydental.com"],
      ["main.citydental.com", "main", "main.citydental.com"],
      ["Main.CityDental.COM.", "main", "main.citydental.com"],
      ["x.main.citydental.com", "dental", "*.citydental.com"],
      ["east.citydental.com", "dental", "*.citydental.com"],
      ["x.east.citydental.com", "east", "*.east.citydental.com"],
      ["y.x.east.citydental.com:5061", "east", "*.east.citydental.com"]
    ])("%s → %s (%s)", async (host, receiver, tenant) => {
      const got = await joinAndExpect({ xToIp: host }, R[receiver], tenant)
      expect(got.path).toBe(`/${receiver}`)
      expect(got.json.call.domain).toBe(host.toLowerCase().replace(/:\d+$/, "").replace(/\.$/, ""))
    })

    test("a wildcard does not match its apex: citydental.com is an unknown domain", async () => {
      const event = sipParticipantEvent("participant_joined", { room: room("apex"), xToIp: "citydental.com" })
      await expectMetricDelta(router, "tenant_router_unroutable_total", { reason: "unknown_domain" }, 1, () =>
        expectAccepted(router.post(event))
      )
      expect(warningFor(router, event.id)).toMatchObject({ reason: "unknown_domain", domain: "citydental.com" })
      await expectNotDelivered(event.id)
    })

    test("every delivery verified with its own tenant's secret", () => {
      for (const receiver of all()) expect(receiver.rejected).toEqual([])
      // Each receiver only ever saw its own tenant(s).
      expect(new Set(R.dental.received.map((x) => x.json.tenant))).toEqual(new Set(["*.citydental.com"]))
      expect(new Set(R.east.received.map((x) => x.json.tenant))).toEqual(new Set(["*.east.citydental.com"]))
      expect(new Set(R.main.received.map((x) => x.json.tenant))).toEqual(new Set(["main.citydental.com"]))
    })
  })

  describe("shared domains: the dialled number picks the tenant", () => {
    test("a mapped number (config written as +1 (555) 765-4321) routes to its hook", async () => {
      const got = await joinAndExpect({ xToIp: "sip.sharedcarrier.net", dialled: "+15557654321" }, R.drsmith, "calls.drsmith.com")
      expect(got.json.call.domain).toBe("sip.sharedcarrier.net")
      expect(got.json.call.to).toBe("+15557654321")
    })

    test("another number on the same shared domain routes to another tenant", async () => {
      const got = await joinAndExpect({ xToIp: "SIP.SharedCarrier.net:5060", dialled: "+442079460958" }, R.dental, "*.citydental.com")
      expect(got.json.call.domain).toBe("sip.sharedcarrier.net")
      expect(got.json.call.to).toBe("+442079460958")
    })

    test("a wildcard shared domain covers its subdomains", async () => {
      const got = await joinAndExpect({ xToIp: "edge7.pool.bigcarrier.net", dialled: "+15557654321" }, R.drsmith, "calls.drsmith.com")
      expect(got.json.call.domain).toBe("edge7.pool.bigcarrier.net")
    })

    test("the shared domain may come from To", async () => {
      await joinAndExpect({ to: TO("sip.sharedcarrier.net"), dialled: "+442079460958" }, R.dental, "*.citydental.com")
    })

    test("with no parsable domain at all, a mapped number still routes", async () => {
      await joinAndExpect({ xToIp: "not a host!!", dialled: "+15557654321" }, R.drsmith, "calls.drsmith.com")
      await joinAndExpect({ dialled: "+15557654321" }, R.drsmith, "calls.drsmith.com")
    })

    test("an unmapped number on a shared domain is unroutable (unknown_domain, with the domain)", async () => {
      const event = sipParticipantEvent("participant_joined", {
        room: room("shared-unmapped"),
        xToIp: "sip.sharedcarrier.net",
        dialled: "+15550009999"
      })
      await expectMetricDelta(router, "tenant_router_unroutable_total", { reason: "unknown_domain" }, 1, () =>
        expectAccepted(router.post(event))
      )
      expect(warningFor(router, event.id)).toMatchObject({ reason: "unknown_domain", domain: "sip.sharedcarrier.net" })
      await expectNotDelivered(event.id)
    })
  })

  describe("room pins", () => {
    test("a mid-call hook change keeps the call's destination; a new call goes to the new URL", async () => {
      const host = "moving.example.org"
      const put = async (url: string, expected: number) => {
        const response = await router.admin("PUT", `/v1/hooks/${host}`, { url, secret: secrets.moving })
        expect(response.status).toBe(expected)
      }
      await put(`${R.oldUrl.url}/old`, 201)

      const callRoom = room("moving")
      const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: host })
      await expectAccepted(router.post(joined))
      const first = await deliveredTo(R.oldUrl, joined.id)
      expect(first.path).toBe("/old")

      await put(`${R.newUrl.url}/new`, 200)

      // Everything else about the call follows the pin, whatever it carries.
      const later = [
        trackEvent(callRoom),
        agentJoined(callRoom),
        egressStarted(callRoom),
        // A second SIP leg whose own headers name another tenant.
        sipParticipantEvent("participant_joined", { room: callRoom, xToIp: "calls.drsmith.com", callId: "SCL_leg2" }),
        sipParticipantEvent("participant_left", { room: callRoom, xToIp: host })
      ]
      for (const event of later) {
        await expectAccepted(router.post(event))
        const got = await deliveredTo(R.oldUrl, event.id)
        expect(got.path).toBe("/old")
        expect(got.json.tenant).toBe(host)
        expect(got.json.type).toBe(event.event)
        // The pinned call info travels with events that carry none of their own.
        expect(got.json.call).toEqual(first.json.call)
      }

      const newCall = sipParticipantEvent("participant_joined", { room: room("moving"), xToIp: host })
      await expectAccepted(router.post(newCall))
      expect((await deliveredTo(R.newUrl, newCall.id)).path).toBe("/new")

      await flush()
      expect(R.newUrl.received.filter((x) => x.json.call.room === callRoom)).toEqual([])
      expect(R.oldUrl.received.filter((x) => x.json.call.room === newCall.room.name)).toEqual([])
      expect(byId(R.drsmith, later[3]!.id)).toHaveLength(0)
    })

    test("room_finished is forwarded to the pin and ends it", async () => {
      const callRoom = room("finish")
      const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: "calls.drsmith.com" })
      await expectAccepted(router.post(joined))
      await deliveredTo(R.drsmith, joined.id)

      const finished = roomEvent("room_finished", callRoom)
      await expectAccepted(router.post(finished))
      expect((await deliveredTo(R.drsmith, finished.id)).json.tenant).toBe("calls.drsmith.com")

      const straggler = trackEvent(callRoom)
      await expectMetricDelta(router, "tenant_router_events_ignored_total", { reason: "no_pin" }, 1, () =>
        expectAccepted(router.post(straggler))
      )
      await expectNotDelivered(straggler.id)
      expect(warningFor(router, straggler.id)).toBeUndefined()

      // The room name is free again: a new call in it is resolved afresh.
      const reused = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: "north.citydental.com" })
      await expectAccepted(router.post(reused))
      expect((await deliveredTo(R.dental, reused.id)).json.tenant).toBe("*.citydental.com")
      const track = trackEvent(callRoom)
      await expectAccepted(router.post(track))
      await deliveredTo(R.dental, track.id)
    })

    test("rooms without a SIP participant are acknowledged and counted no_pin, never forwarded or warned", async () => {
      const webRoom = room("web")
      const events = [
        roomEvent("room_started", webRoom),
        webJoined(webRoom),
        trackEvent(webRoom),
        egressStarted(webRoom),
        roomEvent("room_finished", webRoom)
      ]
      await expectMetricDelta(router, "tenant_router_events_ignored_total", { reason: "no_pin" }, events.length, async () => {
        for (const event of events) await expectAccepted(router.post(event))
      })
      await expectNotDelivered(...events.map((e) => e.id))
      for (const event of events) expect(warningFor(router, event.id)).toBeUndefined()
    })

    test("room_started before the caller is not forwarded; the caller then pins the room", async () => {
      const callRoom = room("early")
      const started = roomEvent("room_started", callRoom)
      await expectMetricDelta(router, "tenant_router_events_ignored_total", { reason: "no_pin" }, 1, () =>
        expectAccepted(router.post(started))
      )
      const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: "main.citydental.com" })
      await expectAccepted(router.post(joined))
      await deliveredTo(R.main, joined.id)
      const track = trackEvent(callRoom)
      await expectAccepted(router.post(track))
      await deliveredTo(R.main, track.id)
      await expectNotDelivered(started.id)
    })

    test("an event filter limits what is forwarded, the room stays pinned, and the filter is pinned too", async () => {
      const host = "filtered.example.org"
      const put = (body: Record<string, unknown>) =>
        router.admin("PUT", `/v1/hooks/${host}`, { url: `${R.drsmith.url}/filtered`, secret: secrets.drsmith, ...body })
      expect((await put({ events: ["participant_joined"] })).status).toBe(201)

      const callRoom = room("filtered")
      const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: host })
      await expectAccepted(router.post(joined))
      expect((await deliveredTo(R.drsmith, joined.id)).path).toBe("/filtered")

      // Now the hook wants everything, but the call keeps the filter it was pinned with.
      expect((await put({})).status).toBe(200)

      const track = trackEvent(callRoom)
      const left = sipParticipantEvent("participant_left", { room: callRoom, xToIp: host })
      const finished = roomEvent("room_finished", callRoom)
      // Counted as filtered, not no_pin: the track event (no attributes) was matched to the pin.
      const noPinBefore = await router.metric("tenant_router_events_ignored_total", { reason: "no_pin" })
      await expectMetricDelta(router, "tenant_router_events_ignored_total", { reason: "filtered" }, 3, async () => {
        for (const event of [track, left, finished]) await expectAccepted(router.post(event))
      })
      expect(await router.metric("tenant_router_events_ignored_total", { reason: "no_pin" })).toBe(noPinBefore)
      await expectNotDelivered(track.id, left.id, finished.id)

      // The filtered room_finished still ended the pin.
      const straggler = trackEvent(callRoom)
      await expectMetricDelta(router, "tenant_router_events_ignored_total", { reason: "no_pin" }, 1, () =>
        expectAccepted(router.post(straggler))
      )

      // A new call gets the hook as it is now: every event.
      const newRoom = room("filtered")
      const newJoined = sipParticipantEvent("participant_joined", { room: newRoom, xToIp: host })
      const newTrack = trackEvent(newRoom)
      for (const event of [newJoined, newTrack]) {
        await expectAccepted(router.post(event))
        expect((await deliveredTo(R.drsmith, event.id)).json.tenant).toBe(host)
      }
    })
  })

  describe("duplicates", () => {
    test("the same LiveKit event id twice: both acknowledged, delivered once, counted as duplicate", async () => {
      const event = sipParticipantEvent("participant_joined", { room: room("dup"), xToIp: "calls.drsmith.com" })
      const accepted = await router.metric("tenant_router_webhooks_received_total", { outcome: "accepted" })
      await expectMetricDelta(router, "tenant_router_webhooks_received_total", { outcome: "duplicate" }, 1, async () => {
        await expectAccepted(router.post(event))
        await expectAccepted(router.post(event))
      })
      expect(await router.metric("tenant_router_webhooks_received_total", { outcome: "accepted" })).toBe(accepted + 1)
      await deliveredTo(R.drsmith, event.id)
      await flush()
      expect(byId(R.drsmith, event.id)).toHaveLength(1)
      expect(router.logs.filter((l) => l.msg === "delivery attempt" && l.eventId === event.id)).toHaveLength(1)
    })

    test("a duplicate of an unroutable event is neither warned nor counted again", async () => {
      const event = sipParticipantEvent("participant_joined", { room: room("dup-unknown"), xToIp: "nobody.example.net" })
      await expectMetricDelta(router, "tenant_router_unroutable_total", { reason: "unknown_domain" }, 1, async () => {
        await expectAccepted(router.post(event))
        await expectAccepted(router.post(event))
      })
      expect(router.logs.filter((l) => l.msg === "no tenant for SIP event" && l.eventId === event.id)).toHaveLength(1)
    })
  })
})

// ---------------------------------------------------------------------------

describe("pins survive a restart", () => {
  const secret = newSecret()
  const host = "restart.example.org"
  const dir = mkdtempSync(join(tmpdir(), "router-routing-"))
  const before = startReceiver(secret)
  const after = startReceiver(secret)
  const configWith = (url: string) => (d: string) =>
    testConfig(d, { security: { allowPrivateTargets: true }, hooks: [{ host, url, secret }] })
  let router: RunningRouter | undefined

  afterAll(async () => {
    await router?.stop()
    before.stop()
    after.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test("a call pinned before the restart keeps its destination after the config file's hook changed", async () => {
    router = await startRouter(configWith(`${before.url}/before`), dir)
    const callRoom = room("restart")
    const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: host })
    await expectAccepted(router.post(joined))
    await deliveredTo(before, joined.id)
    expect(await router.stop()).toBe(0)

    router = await startRouter(configWith(`${after.url}/after`), dir)
    const track = trackEvent(callRoom)
    const left = sipParticipantEvent("participant_left", { room: callRoom, xToIp: host })
    for (const event of [track, left]) {
      await expectAccepted(router.post(event))
      expect((await deliveredTo(before, event.id)).path).toBe("/before")
    }

    const newCall = sipParticipantEvent("participant_joined", { room: room("restart"), xToIp: host })
    await expectAccepted(router.post(newCall))
    expect((await deliveredTo(after, newCall.id)).path).toBe("/after")

    const finished = roomEvent("room_finished", callRoom)
    await expectAccepted(router.post(finished))
    await deliveredTo(before, finished.id)
    const straggler = trackEvent(callRoom)
    await expectAccepted(router.post(straggler))
    // Flush through the new URL, then check the straggler went nowhere.
    const flushEvent = trackEvent(newCall.room.name)
    await expectAccepted(router.post(flushEvent))
    await deliveredTo(after, flushEvent.id)
    expect([...byId(before, straggler.id), ...byId(after, straggler.id)]).toEqual([])
    expect(await router.metric("tenant_router_events_ignored_total", { reason: "no_pin" })).toBe(1)
    expect(after.received.filter((x) => x.json.call.room === callRoom)).toEqual([])
    expect([...before.rejected, ...after.rejected]).toEqual([])
  })
})

/** /work/shared/reference/example-participant-joined.json, inlined so the repo is self-contained. */
const EXAMPLE_PARTICIPANT_JOINED = `{"event":"participant_joined",
 "room":{"sid":"RM_hJ7kQ2vXy9Lm","name":"call-_+15550001111_Xk3pQ9rT2wZa","emptyTimeout":300,
  "departureTimeout":20,"creationTime":"1767225600","creationTimeMs":"1767225600412",
  "enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"}],
  "version":{"unixMicro":"1767225600412345"}},
 "participant":{"sid":"PA_Vq8sLm2NcR4t","identity":"sip_+15550001111","state":"ACTIVE",
  "joinedAt":"1767225600","joinedAtMs":"1767225600530","name":"Phone +15550001111","version":2,
  "permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true,"canUpdateMetadata":true},
  "kind":"SIP",
  "attributes":{"sip.callID":"SCL_4fGh7JkL9mNp","sip.callIDFull":"a84b4c76e66710@carrier.example",
   "sip.callTag":"1928301774","sip.callStatus":"ringing","sip.trunkID":"ST_Hk2sP9qLmX3r",
   "sip.ruleID":"SDR_aB3cD4eF5gH6","sip.phoneNumber":"+15550001111","sip.hostname":"carrier.example",
   "sip.trunkPhoneNumber":"+15557654321","sip.h.x-to-ip":"calls.drsmith.com",
   "sip.h.to":"\\"Dr Smith\\" <sip:+15557654321@calls.drsmith.com>;tag=SCL_4fGh7JkL9mNp"}},
 "id":"EV_9sKd2LmQ7xYz","createdAt":"1767225601"}
`
