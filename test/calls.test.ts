/**
 * Call records through the real router process (SQLite): `GET /v1/calls` and
 * `GET /v1/calls/{room}` with their timeline, the listing's filters and
 * tamper-evident cursor, tenant confinement; the deliveries' new filters and
 * `GET /v1/unroutable/domains`. Events are signed as LiveKit signs them;
 * tenants are verifying endpoints on loopback.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import fc from "fast-check"
import { roomEvent, sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startReceiver, startScriptedEndpoint, type Receiver, type ScriptedEndpoint } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

// ---------------------------------------------------------------- helpers

const FLAKY = "flaky.calls.example"
const OTHER = "other.calls.example"
const WILD = "*.wild.calls.example"
const EXACT_UNDER_WILD = "x.wild.calls.example"
const TOKEN_A = "tenant-a-token-for-call-tests-0123"
const TOKEN_B = "tenant-b-token-for-call-tests-0123"

const CALL_KEYS = [
  "room", "roomSid", "tenant", "status", "domain", "from", "to", "sipCallId", "startedAt", "endedAt",
  "durationSeconds", "endedBy", "disconnectReason", "routing", "deliveries"
].sort()

let rooms = 0
const uniqueRoom = (label: string) => `call-${label}-${Date.now().toString(36)}-${++rooms}`

/** LiveKit's createdAt: whole seconds, as a string. */
const secondsOf = (ms: number) => Math.floor(ms / 1000)
const iso = (ms: number) => new Date(ms).toISOString()
const isoMs = (text: string) => new Date(text).getTime()

interface CallSpec {
  readonly room: string
  readonly xToIp: string
  readonly dialled?: string
  readonly caller?: string
  readonly sid?: string
  /** LiveKit's createdAt of the join, in ms (whole seconds are kept). */
  readonly at?: number
}

/** A SIP participant's event of the call, with the call's own caller, room sid and createdAt. */
const sipEvent = (event: string, call: CallSpec, at = Date.now(), extra: Record<string, unknown> = {}) => {
  const base = sipParticipantEvent("participant_joined", { room: call.room, xToIp: call.xToIp, dialled: call.dialled })
  return {
    ...base,
    event,
    room: { ...base.room, sid: call.sid ?? base.room.sid },
    participant: { ...base.participant, ...extra, attributes: { ...base.participant.attributes, ...(call.caller ? { "sip.phoneNumber": call.caller } : {}) } },
    createdAt: String(secondsOf(at))
  }
}
const withTime = <E extends { createdAt: string }>(event: E, at: number): E => ({ ...event, createdAt: String(secondsOf(at)) })

const json = async (response: Response): Promise<any> => response.json()

describe("call records on a running router", () => {
  let dir: string
  let router: RunningRouter
  let flaky: ScriptedEndpoint
  let other: Receiver
  let wild: Receiver
  const overrides = () => ({
    admin: {
      tenantTokens: [
        { token: TOKEN_A, hosts: [FLAKY, WILD] },
        { token: TOKEN_B, hosts: [OTHER] }
      ]
    },
    hooks: [
      // Every LiveKit event and both call events.
      { host: FLAKY, url: `${flaky.url}/voice`, events: ["*", "call.started", "call.ended"] },
      { host: OTHER, url: `${other.url}/voice` },
      { host: WILD, url: `${wild.url}/wild` },
      { host: EXACT_UNDER_WILD, url: `${wild.url}/x` }
    ]
  })

  const get = async (path: string, token?: string) => {
    const response = await router.admin("GET", path, undefined, token)
    return { status: response.status, body: await json(response) }
  }
  const ok = async (path: string, token?: string) => {
    const answer = await get(path, token)
    expect({ path, status: answer.status }).toEqual({ path, status: 200 })
    return answer.body
  }
  const expectBadRequest = async (path: string, field: string) => {
    const { status, body } = await get(path)
    expect({ path, status, code: body.error?.code }).toEqual({ path, status: 400, code: "bad_request" })
    expect({ path, message: body.error.message }).toEqual({ path, message: expect.stringMatching(new RegExp(`^${field}: .+`)) })
  }
  const postOk = async (event: unknown) => expect((await router.post(event)).status).toBe(200)
  const listed = async (query: string, token?: string) => (await ok(`/v1/calls?${query}`, token)).items as any[]
  const roomsOf = (items: ReadonlyArray<any>) => items.map((c) => c.room)

  // The calls every test reads: posted once, before the first test.
  const now = Date.now()
  const fixtures = {
    flaky: { room: uniqueRoom("flaky"), xToIp: FLAKY, at: now - 200_000 } as CallSpec,
    unrouted: { room: uniqueRoom("nobody"), xToIp: "nobody.calls.example", at: now - 150_000 } as CallSpec,
    aborted: { room: uniqueRoom("aborted"), xToIp: OTHER, at: now - 50_000 } as CallSpec,
    active: { room: uniqueRoom("active"), xToIp: OTHER, at: now - 40_000, dialled: "+1 555 765 0042", caller: "+15550004242" } as CallSpec,
    underWild: { room: uniqueRoom("a-wild"), xToIp: "a.wild.calls.example", at: now - 30_000 } as CallSpec,
    siblingWild: { room: uniqueRoom("b-wild"), xToIp: "b.wild.calls.example", at: now - 29_000 } as CallSpec,
    exactWild: { room: uniqueRoom("x-wild"), xToIp: EXACT_UNDER_WILD, at: now - 28_000 } as CallSpec
  }
  const flakyEvents = {
    join: sipEvent("participant_joined", fixtures.flaky, fixtures.flaky.at),
    track: withTime(trackEvent(fixtures.flaky.room), fixtures.flaky.at! + 5_000),
    left: sipEvent("participant_left", fixtures.flaky, fixtures.flaky.at! + 95_000, { disconnectReason: "CLIENT_INITIATED" }),
    finished: withTime(roomEvent("room_finished", fixtures.flaky.room), fixtures.flaky.at! + 100_000)
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "router-calls-"))
    // Fails the first request it gets, then answers every one.
    flaky = startScriptedEndpoint(DEFAULT_SECRET, ({ n }) => (n === 0 ? 503 : 200))
    other = startReceiver(DEFAULT_SECRET)
    wild = startReceiver(DEFAULT_SECRET)
    router = await startRouter(overrides(), dir)

    for (const event of Object.values(flakyEvents)) await postOk(event)
    await postOk(sipEvent("participant_joined", fixtures.unrouted, fixtures.unrouted.at))
    await postOk(sipEvent("participant_joined", fixtures.aborted, fixtures.aborted.at))
    await postOk(sipEvent("participant_connection_aborted", fixtures.aborted, fixtures.aborted.at! + 30_000, { disconnectReason: "CONNECTION_TIMEOUT" }))
    for (const call of [fixtures.active, fixtures.underWild, fixtures.siblingWild, fixtures.exactWild]) await postOk(sipEvent("participant_joined", call, call.at))
  })

  afterAll(async () => {
    await router?.stop()
    for (const endpoint of [flaky, other, wild]) endpoint?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  // ---------------------------------------------------------------- one call, end to end

  test("a routed call: join → track → left → room_finished, its tenant failing once: the record, counts, duration and timeline", async () => {
    const { room, at } = fixtures.flaky
    let call: any
    await eventually(async () => (call = await ok(`/v1/calls/${room}`)).deliveries.delivered === 6, 10_000, "the call's six deliveries")
    const started = secondsOf(at!) * 1000
    expect(Object.keys(call).sort()).toEqual([...CALL_KEYS, "sip", "timeline"].sort())
    expect({ ...call, timeline: undefined }).toEqual({
      room,
      roomSid: `RM_${room}`,
      tenant: FLAKY,
      status: "ended",
      domain: FLAKY,
      from: "+15550001111",
      to: "+15557654321",
      sipCallId: `SCL_${room}`,
      startedAt: iso(started),
      endedAt: iso(started + 95_000),
      durationSeconds: 95,
      endedBy: "participant_left",
      disconnectReason: "CLIENT_INITIATED",
      routing: { rule: "exact", pattern: FLAKY, source: "sip.h.x-to-ip", reason: null },
      deliveries: { pending: 0, delivered: 6, failed: 0, expired: 0 },
      sip: flakyEvents.join.participant.attributes,
      timeline: undefined
    })

    const timeline = call.timeline as any[]
    const times = timeline.map((entry) => isoMs(entry.at))
    expect(times).toEqual([...times].sort((a, b) => a - b))

    const events = timeline.filter((entry) => entry.kind === "event")
    expect(events.map((e) => [e.eventId, e.eventType])).toEqual([
      [flakyEvents.join.id, "participant_joined"],
      [flakyEvents.track.id, "track_published"],
      [flakyEvents.left.id, "participant_left"],
      [flakyEvents.finished.id, "room_finished"]
    ])
    for (const event of events) {
      expect(Object.keys(event).sort()).toEqual(["at", "createdAt", "eventId", "eventType", "kind", "lagMs"])
      // Receipt minus LiveKit's createdAt: the join was "sent" 200 s before it arrived.
      expect(event.lagMs).toBe(isoMs(event.at) - isoMs(event.createdAt))
    }
    expect(events[0].createdAt).toBe(iso(started))
    expect(events[0].lagMs).toBeGreaterThanOrEqual(199_000)
    expect(events[0].lagMs).toBeLessThan(260_000)

    // Six deliveries (four events, call.started, call.ended), the first one refused once and retried.
    const attempts = timeline.filter((entry) => entry.kind === "attempt")
    expect(timeline.length).toBe(events.length + attempts.length)
    expect(attempts).toHaveLength(7)
    expect(new Set(attempts.map((a) => a.eventType))).toEqual(
      new Set(["participant_joined", "call.started", "track_published", "participant_left", "call.ended", "room_finished"])
    )
    const joined = attempts.filter((a) => a.eventId === flakyEvents.join.id)
    expect(joined.map((a) => [a.attempt, a.status, a.error])).toEqual([
      [1, 503, null],
      [2, 200, null]
    ])
    expect(new Set(joined.map((a) => a.deliveryId)).size).toBe(1)
    for (const attempt of attempts) {
      expect(Object.keys(attempt).sort()).toEqual(["at", "attempt", "deliveryId", "error", "eventId", "eventType", "kind", "latencyMs", "status"])
      expect(attempt.latencyMs).toBeGreaterThanOrEqual(0)
    }
    // The tenant saw the join twice, then each of the others once.
    expect(flaky.hits.map((h) => h.status)).toEqual([503, 200, 200, 200, 200, 200, 200])
  })

  test("a call to a domain no hook claims is listed unrouted, with its reason; it has no deliveries", async () => {
    const { room, at } = fixtures.unrouted
    const [call] = await listed(`domain=nobody.calls.example`)
    expect(call).toEqual({
      room,
      roomSid: `RM_${room}`,
      tenant: null,
      status: "unrouted",
      domain: "nobody.calls.example",
      from: "+15550001111",
      to: "+15557654321",
      sipCallId: `SCL_${room}`,
      startedAt: iso(secondsOf(at!) * 1000),
      endedAt: null,
      durationSeconds: null,
      endedBy: null,
      disconnectReason: null,
      routing: { rule: null, pattern: null, source: null, reason: "unknown_domain" },
      deliveries: { pending: 0, delivered: 0, failed: 0, expired: 0 }
    })
    const detail = await ok(`/v1/calls/${encodeURIComponent(`RM_${room}`)}`)
    expect(detail.timeline.map((e: any) => e.kind)).toEqual(["event"])
  })

  test("a call whose SIP participant's connection aborted ends by participant_connection_aborted", async () => {
    const call = await ok(`/v1/calls/${fixtures.aborted.room}`)
    expect(call).toMatchObject({
      tenant: OTHER,
      status: "ended",
      endedBy: "participant_connection_aborted",
      disconnectReason: "CONNECTION_TIMEOUT",
      durationSeconds: 30,
      routing: { rule: "exact", pattern: OTHER, source: "sip.h.x-to-ip", reason: null }
    })
    expect(call.timeline.filter((e: any) => e.kind === "event").map((e: any) => e.eventType)).toEqual(["participant_joined", "participant_connection_aborted"])
  })

  test("a room name used again is a new call: the name finds the newest, each sid its own; an unknown one is 404", async () => {
    const room = uniqueRoom("reused")
    const first = { room, xToIp: OTHER, sid: "RM_first", at: Date.now() - 20_000 }
    const second = { room, xToIp: OTHER, sid: "RM_second", at: Date.now() - 10_000 }
    await postOk(sipEvent("participant_joined", first, first.at))
    await postOk(sipEvent("participant_joined", second, second.at))
    expect((await ok(`/v1/calls/${room}`)).roomSid).toBe("RM_second")
    expect((await ok("/v1/calls/RM_first")).startedAt).toBe(iso(secondsOf(first.at) * 1000))
    expect(roomsOf(await listed(`tenant=${OTHER}&limit=1000`)).filter((r) => r === room)).toHaveLength(2)
    const missing = await get(`/v1/calls/${uniqueRoom("never")}`)
    expect(missing.status).toBe(404)
    expect(missing.body.error.code).toBe("not_found")
  })

  // ---------------------------------------------------------------- filters

  test("filters: tenant, status, domain (any case, a trailing dot)", async () => {
    expect(roomsOf(await listed(`tenant=${FLAKY}`))).toEqual([fixtures.flaky.room])
    expect(roomsOf(await listed(`tenant=${encodeURIComponent(WILD)}`))).toEqual([fixtures.siblingWild.room, fixtures.underWild.room])
    expect(roomsOf(await listed(`tenant=${OTHER}&status=active&number=%2B15557650042`))).toEqual([fixtures.active.room])
    const ended = await listed(`tenant=${OTHER}&status=ended`)
    expect(roomsOf(ended)).toContain(fixtures.aborted.room)
    expect(ended.every((c) => c.status === "ended")).toBe(true)
    expect(roomsOf(await listed("status=unrouted&domain=nobody.calls.example"))).toEqual([fixtures.unrouted.room])
    expect(roomsOf(await listed("status=ended&domain=nobody.calls.example"))).toEqual([])
    expect(roomsOf(await listed(`domain=${encodeURIComponent("A.Wild.Calls.Example.")}`))).toEqual([fixtures.underWild.room])
  })

  test("number matches the caller or the dialled number, in any international spelling; a national one needs defaultCountry", async () => {
    // The dialled number arrived as "+1 555 765 0042" and is kept in E.164.
    const spellings = ["+15557650042", "+1 (555) 765-0042", "tel:+1-555-765-0042", "+1.555.765.0042", "(+1) 555-000-4242", "+15550004242"]
    for (const spelling of spellings) {
      const items = await listed(`number=${encodeURIComponent(spelling)}`)
      expect({ spelling, rooms: roomsOf(items) }).toEqual({ spelling, rooms: [fixtures.active.room] })
    }
    expect((await listed(`number=${encodeURIComponent("+15557650042")}`))[0]).toMatchObject({ from: "+15550004242", to: "+15557650042" })
    expect(await listed("number=%2B15559999999")).toEqual([])
    expect(await get(`/v1/calls?number=${encodeURIComponent("1.555.765.0042")}`)).toEqual({
      status: 400,
      body: { error: { code: "bad_request", message: 'number: "1.555.765.0042" is a national number: write it with + and its country code, or set defaultCountry' } }
    })
  })

  test("since is inclusive and until exclusive, by start", async () => {
    const base = Date.now() - 3_000_000
    const calls = [0, 1, 2].map((i) => ({ room: uniqueRoom(`times-${i}`), xToIp: "times.calls.example", at: base + i * 1_000_000 }))
    for (const call of calls) await postOk(sipEvent("participant_joined", call, call.at))
    const startOf = (i: number) => iso(secondsOf(calls[i]!.at) * 1000)
    const during = async (query: string) => roomsOf(await listed(`domain=times.calls.example&${query}`))
    const [oldest, middle, newest] = calls.map((c) => c.room)
    expect(await during("")).toEqual([newest, middle, oldest])
    expect(await during(`since=${startOf(1)}`)).toEqual([newest, middle])
    expect(await during(`until=${startOf(2)}`)).toEqual([middle, oldest])
    expect(await during(`since=${startOf(1)}&until=${startOf(2)}`)).toEqual([middle])
    // A time with its zone, and a date (UTC midnight).
    expect(await during(`since=${encodeURIComponent(iso(base + 500_000).replace("Z", "+00:00"))}`)).toEqual([newest, middle])
    expect(await during("until=2000-01-01")).toEqual([])
  })

  test("bad filters, and cursors the router did not issue, are 400s naming the field", async () => {
    const cases: Array<[string, string]> = [
      ["status=lost", "status"],
      ["tenant=bad..host", "tenant"],
      ["tenant=%40alerts", "tenant"],
      ["number=12", "number"],
      ["domain=not%20a%20domain!", "domain"],
      ["since=2026-02-30", "since"],
      ["since=7", "since"],
      ["until=yesterday", "until"],
      ["since=2026-01-02&until=2026-01-01", "until"],
      ["limit=0", "limit"],
      ["limit=1001", "limit"],
      ["limit=1e3", "limit"],
      ["cursor=", "cursor"],
      ["cursor=!!!", "cursor"],
      ["cursor=abc.def", "cursor"],
      ["frob=1", "frob"]
    ]
    for (const [query, field] of cases) await expectBadRequest(`/v1/calls?${query}`, field)
    // An unknown status is answered with the ones there are.
    expect((await get("/v1/calls?status=lost")).body.error.message).toBe('status: expected one of active, ended or unrouted, got "lost"')
  })

  // ---------------------------------------------------------------- pages

  describe("pages", () => {
    const DOMAIN = "pages.calls.example"
    const COUNT = 23
    const pageRooms: string[] = []

    beforeAll(async () => {
      // Three distinct starts: most calls share theirs with others, so ties are broken by the call's key.
      const base = Date.now() - 5_000_000
      for (let i = 0; i < COUNT; i++) {
        const call = { room: uniqueRoom(`page-${i}`), xToIp: DOMAIN, at: base + (i % 3) * 1_000 }
        pageRooms.push(call.room)
        await postOk(sipEvent("participant_joined", call, call.at))
      }
    })

    /** Every page of the listing with this page size; fails on a page larger than asked. */
    const walk = async (limit: number) => {
      const pages: any[][] = []
      let cursor: string | null = null
      do {
        const query: string = `domain=${DOMAIN}&limit=${limit}${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`
        const page: any = await ok(`/v1/calls?${query}`)
        expect(page.items.length).toBeLessThanOrEqual(limit)
        pages.push(page.items)
        cursor = page.nextCursor
      } while (cursor !== null && pages.length <= COUNT)
      return pages
    }

    test("without a limit: 50, newest first, nextCursor null on the last page", async () => {
      const page = await ok(`/v1/calls?domain=${DOMAIN}`)
      expect(page.items).toHaveLength(COUNT)
      expect(page.nextCursor).toBeNull()
      const starts = page.items.map((c: any) => isoMs(c.startedAt))
      expect(starts).toEqual([...starts].sort((a, b) => b - a))
    })

    test("any page size walks every call once, newest first, in ceil(n/size) pages (property)", async () => {
      const whole = roomsOf((await ok(`/v1/calls?domain=${DOMAIN}`)).items)
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: COUNT + 2 }), async (limit) => {
          const pages = await walk(limit)
          const seen = pages.flat().map((c) => c.room)
          expect(seen).toEqual(whole)
          expect(new Set(seen).size).toBe(COUNT)
          expect(pages).toHaveLength(Math.ceil(COUNT / limit))
        }),
        { numRuns: 12, examples: [[1], [3], [COUNT], [COUNT - 1]] }
      )
      expect(new Set(whole)).toEqual(new Set(pageRooms))
    })

    test("a forged, altered or foreign cursor is a 400 naming cursor", async () => {
      const { nextCursor } = await ok(`/v1/calls?domain=${DOMAIN}&limit=5`)
      const [body, mac] = (nextCursor as string).split(".") as [string, string]
      const [sortAt, key] = JSON.parse(Buffer.from(body, "base64url").toString()) as [number, string]
      const flip = (text: string) => text.slice(0, -1) + (text.endsWith("A") ? "B" : "A")
      const forged = [
        `${body}.${flip(mac)}`,
        `${Buffer.from(JSON.stringify([sortAt + 1, key])).toString("base64url")}.${mac}`,
        `${Buffer.from(JSON.stringify([sortAt, "RM_other"])).toString("base64url")}.${mac}`,
        `${body}.${mac}.${mac}`,
        body,
        `${flip(body)}.${mac}`
      ]
      for (const cursor of forged) await expectBadRequest(`/v1/calls?domain=${DOMAIN}&cursor=${encodeURIComponent(cursor)}`, "cursor")
    })

    test("a cursor survives a restart", async () => {
      const first = await ok(`/v1/calls?domain=${DOMAIN}&limit=10`)
      const second = await ok(`/v1/calls?domain=${DOMAIN}&limit=10&cursor=${encodeURIComponent(first.nextCursor)}`)
      await router.stop()
      router = await startRouter(overrides(), dir)
      const again = await ok(`/v1/calls?domain=${DOMAIN}&limit=10&cursor=${encodeURIComponent(first.nextCursor)}`)
      expect(again).toEqual(second)
    })
  })

  // ---------------------------------------------------------------- who sees what

  describe("tenant tokens", () => {
    test("list the calls of their own hosts only (a wildcard covers the hosts under it); tenant= must be one of them (403)", async () => {
      const a = roomsOf(await listed("limit=1000", TOKEN_A))
      expect(new Set(a)).toEqual(new Set([fixtures.flaky.room, fixtures.underWild.room, fixtures.siblingWild.room, fixtures.exactWild.room]))
      expect(roomsOf(await listed(`tenant=${EXACT_UNDER_WILD}`, TOKEN_A))).toEqual([fixtures.exactWild.room])
      expect(roomsOf(await listed(`tenant=${encodeURIComponent(WILD)}`, TOKEN_A))).toEqual([fixtures.siblingWild.room, fixtures.underWild.room])
      const b = await listed("limit=1000", TOKEN_B)
      expect(b.length).toBeGreaterThanOrEqual(3)
      expect(b.every((c) => c.tenant === OTHER)).toBe(true)
      for (const [tenant, token] of [[OTHER, TOKEN_A], [FLAKY, TOKEN_B], ["nobody.calls.example", TOKEN_A]] as const) {
        const { status, body } = await get(`/v1/calls?tenant=${tenant}`, token)
        expect({ tenant, status, code: body.error.code }).toEqual({ tenant, status: 403, code: "forbidden" })
      }
      // An unrouted call is no tenant's, whatever the filter.
      expect(await listed("status=unrouted", TOKEN_A)).toEqual([])
    })

    test("another tenant's call and an unrouted call are 404s, exactly like a call that never was", async () => {
      expect((await ok(`/v1/calls/${fixtures.flaky.room}`, TOKEN_A)).timeline.length).toBeGreaterThan(0)
      expect((await ok(`/v1/calls/${fixtures.exactWild.room}`, TOKEN_A)).tenant).toBe(EXACT_UNDER_WILD)
      const absent = [
        [fixtures.flaky.room, TOKEN_B],
        [`RM_${fixtures.flaky.room}`, TOKEN_B],
        [fixtures.aborted.room, TOKEN_A],
        [fixtures.unrouted.room, TOKEN_A],
        [fixtures.unrouted.room, TOKEN_B],
        ["call-never-was", TOKEN_A]
      ] as const
      for (const [room, token] of absent) {
        const { status, body } = await get(`/v1/calls/${room}`, token)
        expect({ room, status, body }).toEqual({ room, status: 404, body: { error: { code: "not_found", message: `no call "${room}"` } } })
      }
    })

    test("without a token: 401", async () => {
      for (const path of ["/v1/calls", `/v1/calls/${fixtures.flaky.room}`, "/v1/unroutable/domains"]) {
        const response = await fetch(`${router.url}${path}`)
        expect({ path, status: response.status }).toEqual({ path, status: 401 })
      }
    })
  })

  // ---------------------------------------------------------------- deliveries by call

  describe("deliveries filters", () => {
    const deliveries = async (query: string, token?: string) => (await ok(`/v1/deliveries?${query}`, token)).items as any[]

    test("room, eventId, eventType and the call's domain select deliveries", async () => {
      const { room } = fixtures.flaky
      const ofRoom = await deliveries(`room=${room}`)
      expect(ofRoom).toHaveLength(6)
      expect(ofRoom.every((d) => d.room === room)).toBe(true)
      expect((await deliveries(`room=${room}&eventType=participant_joined`)).map((d) => d.eventId)).toEqual([flakyEvents.join.id])
      expect((await deliveries(`eventType=call.ended&tenant=${FLAKY}`)).map((d) => d.room)).toEqual([room])
      expect((await deliveries(`eventId=${flakyEvents.left.id}`)).map((d) => [d.type, d.tenant])).toEqual([["participant_left", FLAKY]])
      expect(await deliveries(`eventId=${flakyEvents.left.id}&eventType=room_finished`)).toEqual([])
      expect(new Set((await deliveries(`domain=${FLAKY.toUpperCase()}`)).map((d) => d.room))).toEqual(new Set([room]))
      // A host under a wildcard finds its own deliveries, not its siblings'.
      const underWild = await deliveries(`tenant=${encodeURIComponent(WILD)}&domain=a.wild.calls.example`, TOKEN_A)
      expect(underWild.map((d) => d.room)).toEqual([fixtures.underWild.room])
      expect((await get(`/v1/deliveries?domain=a.wild.calls.example`, TOKEN_A)).status).toBe(403)
    })

    test("bad filters are 400s naming the field", async () => {
      const cases: Array<[string, string]> = [
        ["room=", "room"],
        [`room=${"r".repeat(513)}`, "room"],
        ["room=a%0Ab", "room"],
        ["eventId=", "eventId"],
        [`eventId=${"e".repeat(257)}`, "eventId"],
        ["eventType=nope", "eventType"],
        ["eventType=", "eventType"],
        ["domain=not%20a%20domain", "domain"],
        ["domain=", "domain"]
      ]
      for (const [query, field] of cases) await expectBadRequest(`/v1/deliveries?${query}`, field)
    })
  })

  // ---------------------------------------------------------------- unroutable, by domain

  describe("unroutable domains", () => {
    test("grouped by domain and reason, counted, most recently seen first; a tenant conflict is its own reason", async () => {
      // A second SIP participant in a room pinned to OTHER, whose own domain is another tenant's.
      const pinned = { room: uniqueRoom("conflict"), xToIp: OTHER }
      await postOk(sipEvent("participant_joined", pinned))
      const intruder = sipEvent("participant_joined", { ...pinned, xToIp: EXACT_UNDER_WILD }, Date.now(), { sid: "PA_intruder", identity: "sip_+15550009999" })
      await postOk(intruder)
      const lost = [0, 1, 2].map(() => sipEvent("participant_joined", { room: uniqueRoom("lost"), xToIp: "lost.calls.example" }))
      for (const event of lost) await postOk(event)

      const { items } = await ok("/v1/unroutable/domains")
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual(["count", "domain", "firstSeen", "hints", "lastSeen", "reason", "sampleEventId"])
        expect(isoMs(item.firstSeen)).toBeLessThanOrEqual(isoMs(item.lastSeen))
        expect(item.hints.every((hint: unknown) => typeof hint === "string")).toBe(true)
        // A domain that matches a hook is no near miss of it.
        expect(item.hints.join(" ")).not.toContain(" 0 edits")
      }
      const seen = items.map((g: any) => isoMs(g.lastSeen))
      expect(seen).toEqual([...seen].sort((a, b) => b - a))
      expect(items[0]).toMatchObject({ domain: "lost.calls.example", reason: "unknown_domain", count: 3, sampleEventId: lost[2]!.id })
      expect(items[1]).toMatchObject({ domain: EXACT_UNDER_WILD, reason: "tenant_conflict", count: 1, sampleEventId: intruder.id })
      expect(items[1].hints).toEqual([expect.stringContaining("give each call its own room")])
      expect(items.find((g: any) => g.domain === "pages.calls.example")).toMatchObject({ reason: "unknown_domain", count: 23 })
      expect(items.find((g: any) => g.domain === "nobody.calls.example")).toMatchObject({ reason: "unknown_domain", count: 1 })

      // The event itself is listed with its reason; the room's call stays its tenant's.
      const recent = (await ok("/v1/unroutable?limit=5")).items as any[]
      expect(recent.find((u) => u.eventId === intruder.id)).toMatchObject({ reason: "tenant_conflict", domain: EXACT_UNDER_WILD, room: pinned.room })
      expect((await ok(`/v1/calls/${pinned.room}`)).tenant).toBe(OTHER)
    })

    test("operators only: a tenant token is 403", async () => {
      for (const token of [TOKEN_A, TOKEN_B]) {
        const { status, body } = await get("/v1/unroutable/domains", token)
        expect({ status, code: body.error.code }).toEqual({ status: 403, code: "forbidden" })
      }
    })
  })
})

// ---------------------------------------------------------------- deliveries that ended unsent

describe("timeline entries of deliveries that ended unsent", () => {
  let router: RunningRouter
  let down: ScriptedEndpoint
  let fresh: Receiver

  beforeAll(async () => {
    down = startScriptedEndpoint(DEFAULT_SECRET, () => 503)
    fresh = startReceiver(DEFAULT_SECRET)
    router = await startRouter({
      delivery: { timeout: "1s", maxAttempts: 100, initialBackoff: "50ms", maxBackoff: "200ms", concurrencyPerTenant: 4, circuitBreaker: { failureThreshold: 1000 }, disableAfter: "1s" },
      hooks: [
        { host: "down.calls.example", url: `${down.url}/voice` },
        { host: "fresh.calls.example", url: `${fresh.url}/voice`, maxAge: "30s" }
      ]
    })
  })
  afterAll(async () => {
    await router?.stop()
    down?.stop()
    fresh?.stop()
  })

  const callOf = async (room: string) => json(await router.admin("GET", `/v1/calls/${room}`))

  test("an event older than the hook's maxAge: an expired entry", async () => {
    const call = { room: uniqueRoom("stale"), xToIp: "fresh.calls.example" }
    const stale = sipEvent("participant_joined", call, Date.now() - 120_000)
    expect((await router.post(stale)).status).toBe(200)
    let found: any
    await eventually(async () => (found = await callOf(call.room)).deliveries.expired === 1, 10_000, "the delivery to expire")
    expect(found.timeline.map((e: any) => e.kind)).toEqual(["event", "expired"])
    expect(found.timeline[1]).toEqual({ kind: "expired", at: found.timeline[1].at, deliveryId: expect.any(Number), eventId: stale.id, eventType: "participant_joined" })
    expect(fresh.received).toHaveLength(0)
  })

  test("a tenant disabled for failing: its attempts, then a disabled entry (no status, error disabled)", async () => {
    const call = { room: uniqueRoom("down"), xToIp: "down.calls.example" }
    const join = sipEvent("participant_joined", call)
    expect((await router.post(join)).status).toBe(200)
    let found: any
    await eventually(async () => (found = await callOf(call.room)).deliveries.failed === 1, 15_000, "the delivery to end with the disable")
    const kinds = found.timeline.map((e: any) => e.kind) as string[]
    expect(kinds[0]).toBe("event")
    expect(kinds.at(-1)).toBe("disabled")
    expect(kinds.filter((k) => k === "disabled")).toHaveLength(1)
    const attempts = found.timeline.filter((e: any) => e.kind === "attempt")
    expect(attempts.length).toBeGreaterThanOrEqual(2)
    expect(attempts.every((a: any) => a.status === 503)).toBe(true)
    expect(found.timeline.at(-1)).toEqual({ kind: "disabled", at: expect.any(String), deliveryId: attempts[0].deliveryId, eventId: join.id, eventType: "participant_joined" })
  })
})
