/**
 * The live stream (`GET /v1/stream`) through the real router on SQLite:
 * LiveKit-signed events in, Server-Sent Events out, with scopes, resume,
 * bodies signed as a delivery would be, slow clients and shutdown.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { connect } from "node:net"
import { Webhook } from "standardwebhooks"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, eventually, startRouter, type RunningRouter } from "./support/router.ts"
import { openStream, parseFrames, type OpenedStream, type StreamedEvent } from "./support/sse.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const A = "a.stream.example"
const B = "b.stream.example"
const SECRET_A = "whsec_" + Buffer.alloc(32, 11).toString("base64")
const SECRET_B = "whsec_" + Buffer.alloc(32, 12).toString("base64")
const TENANT_TOKEN = "tenant-token-for-stream-0123456789"
const API_KEY_VALUE = "hook-header-value-never-streamed"
const BEARER = "hook-bearer-never-streamed-0123"
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

let rooms = 0
const callTo = (host: string, extra: Record<string, unknown> = {}) => ({
  ...sipParticipantEvent("participant_joined", { room: `stream-${Date.now().toString(36)}-${++rooms}`, xToIp: host }),
  ...extra
})

const post = async (router: RunningRouter, event: { id: string }) => {
  expect((await router.post(event)).status).toBe(200)
  return event.id
}

/** The changes of one LiveKit event, as [status, attempts]. */
const changesOf = (events: ReadonlyArray<StreamedEvent>, eventId: string) =>
  events.filter((e) => e.data.eventType === "participant_joined" && e.data.eventId === eventId).map((e) => [e.data.status, e.data.attempts])

const finished = (eventId: string) => (events: ReadonlyArray<StreamedEvent>) =>
  events.some((e) => e.data.eventId === eventId && e.data.status !== "pending")

const ids = (events: ReadonlyArray<StreamedEvent>) => events.map((e) => e.id)

/** The body of a raw HTTP/1.1 answer in chunked encoding, as far as its chunks are complete. */
const unchunked = (answer: Buffer) => {
  let at = answer.indexOf("\r\n\r\n") + 4
  const parts: Array<Buffer> = []
  for (;;) {
    const line = answer.indexOf("\r\n", at)
    if (line === -1) break
    const size = parseInt(answer.toString("latin1", at, line), 16)
    if (!(size > 0) || line + 2 + size > answer.length) break
    parts.push(answer.subarray(line + 2, line + 2 + size))
    at = line + 2 + size + 2
  }
  return Buffer.concat(parts).toString()
}

describe("GET /v1/stream", () => {
  let router: RunningRouter
  let receiverA: Receiver
  let receiverB: Receiver
  const streams: Array<OpenedStream> = []
  const open = async (path: string, init: Parameters<typeof openStream>[2] = { token: ADMIN_TOKEN }) => {
    const stream = await openStream(router.url, path, init)
    streams.push(stream)
    return stream
  }

  beforeAll(async () => {
    receiverA = startReceiver(SECRET_A)
    // B fails its first request, so its first delivery shows a retry.
    receiverB = startReceiver(SECRET_B, [{ status: 500 }, { status: 200 }])
    router = await startRouter({
      hooks: [
        { host: A, url: `${receiverA.url}/a`, secret: SECRET_A, headers: { "X-Api-Key": API_KEY_VALUE }, auth: { bearer: BEARER } },
        { host: B, url: `${receiverB.url}/b`, secret: SECRET_B }
      ],
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [A] }] }
    })
  })
  afterAll(async () => {
    for (const stream of streams) stream.close()
    await router?.stop()
    receiverA?.stop()
    receiverB?.stop()
  })

  test("a comment at once, then an event with an id when a delivery is queued and after each attempt, in order", async () => {
    const stream = await open("/v1/stream")
    expect(stream.response.status).toBe(200)
    expect(stream.response.headers.get("content-type")).toStartWith("text/event-stream")
    // The comment comes before anything happens, so a client sees the stream is up.
    await eventually(() => stream.comments.length > 0, 5_000, "the comment at connect")
    expect(stream.text()).toStartWith(": stream open\n\n")

    const toB = await post(router, callTo(B))
    const toA = await post(router, callTo(A))
    await stream.waitFor((events) => finished(toA)(events) && finished(toB)(events))
    expect(changesOf(stream.events, toA)).toEqual([["pending", 0], ["delivered", 1]])
    // B's first attempt failed: pending after one attempt, then delivered by the retry.
    expect(changesOf(stream.events, toB)).toEqual([["pending", 0], ["pending", 1], ["delivered", 2]])

    // Ids in the store's order (SQLite's are numbers), each once.
    const numbers = ids(stream.events).map(Number)
    expect(numbers.every((n, i) => Number.isInteger(n) && (i === 0 || n > numbers[i - 1]!))).toBe(true)
    const first = stream.events.find((e) => e.data.eventId === toA)!
    expect(first.data).toEqual({
      deliveryId: expect.any(Number),
      tenant: A,
      eventId: toA,
      eventType: "participant_joined",
      room: expect.stringMatching(/^stream-/),
      status: "pending",
      attempts: 0,
      at: expect.stringMatching(ISO)
    })
    // Without bodies=1, no body and no headers.
    for (const event of stream.events) expect(Object.keys(event.data)).not.toContain("body")
  })

  test("scopes: an operator sees every tenant or ?tenant=; a tenant token its own hosts only (403 outside them, 401 without a token)", async () => {
    const all = await open("/v1/stream")
    const onlyA = await open(`/v1/stream?tenant=${A}`)
    const own = await open("/v1/stream", { token: TENANT_TOKEN })
    const ownA = await open(`/v1/stream?tenant=${A}`, { token: TENANT_TOKEN })
    for (const stream of [all, onlyA, own, ownA]) expect(stream.response.status).toBe(200)

    const forbidden = await open(`/v1/stream?tenant=${B}`, { token: TENANT_TOKEN })
    expect(forbidden.response.status).toBe(403)
    expect(((await forbidden.response.json()) as any).error.code).toBe("forbidden")
    const alerts = await open("/v1/stream?tenant=@alerts", { token: TENANT_TOKEN })
    expect(alerts.response.status).toBe(403)
    for (const token of [null, "not-a-token-0123456789"]) {
      const refused = await open("/v1/stream", { token })
      expect(refused.response.status).toBe(401)
      expect(((await refused.response.json()) as any).error.code).toBe("unauthorized")
    }
    for (const query of ["tenant=http://a.example", "bodies=maybe", "other=1"]) {
      const refused = await open(`/v1/stream?${query}`)
      expect({ query, status: refused.response.status }).toEqual({ query, status: 400 })
      if (query === "bodies=maybe") expect(((await refused.response.json()) as any).error.message).toBe('bodies: expected one of 1, true, 0 or false, got "maybe"')
    }

    const toB = await post(router, callTo(B))
    await all.waitFor(finished(toB))
    // A later event of A: once a stream has it, it has been handed everything before it.
    const toA = await post(router, callTo(A))
    for (const stream of [all, onlyA, own, ownA]) await stream.waitFor(finished(toA))
    expect(changesOf(all.events, toB).length).toBeGreaterThan(0)
    for (const stream of [onlyA, own, ownA]) {
      expect(stream.events.map((e) => e.data.tenant)).toEqual(stream.events.map(() => A))
      expect(changesOf(stream.events, toA)).toEqual([["pending", 0], ["delivered", 1]])
    }
  })

  test("Last-Event-ID resumes with exactly the changes missed; ?lastEventId= too; without it, only newer changes", async () => {
    const witness = await open("/v1/stream")
    const first = await open(`/v1/stream?tenant=${A}`)
    const before = await post(router, callTo(A))
    await first.waitFor(finished(before))
    const last = first.events.at(-1)!.id
    first.close()

    // Missed while disconnected: A's (wanted) and B's (not in scope).
    const missed = [await post(router, callTo(A)), await post(router, callTo(B)), await post(router, callTo(A))]
    await witness.waitFor((events) => missed.every((id) => finished(id)(events)))

    const resumed = await open(`/v1/stream?tenant=${A}`, { token: ADMIN_TOKEN, lastEventId: last })
    const byQuery = await open(`/v1/stream?tenant=${A}&lastEventId=${last}`)
    // The header wins over the URL: it is what a reconnecting EventSource sends.
    const headerWins = await open(`/v1/stream?tenant=${A}&lastEventId=1`, { token: ADMIN_TOKEN, lastEventId: last })
    const fresh = await open(`/v1/stream?tenant=${A}`)
    const sentinel = await post(router, callTo(A))
    await witness.waitFor(finished(sentinel))
    for (const stream of [resumed, byQuery, headerWins, fresh]) await stream.waitFor(finished(sentinel))

    const index = witness.events.findIndex((e) => e.id === last)
    expect(index).toBeGreaterThanOrEqual(0)
    const expected = witness.events.slice(index + 1).filter((e) => e.data.tenant === A)
    expect(expected.length).toBeGreaterThanOrEqual(6)
    for (const stream of [resumed, byQuery, headerWins]) expect(stream.events).toEqual(expected)
    // A stream without Last-Event-ID starts at the latest change: only what came after it.
    expect(fresh.events.map((e) => e.data.eventId)).toEqual(fresh.events.map(() => sentinel))
  })

  test("bodies=1: each event carries the body and headers signed now that standardwebhooks verifies; never the hook's credentials", async () => {
    const bodies = await open(`/v1/stream?tenant=${A}&bodies=1`)
    const tenants = await open("/v1/stream?bodies=true", { token: TENANT_TOKEN })
    const toA = await post(router, callTo(A))
    await bodies.waitFor(finished(toA))
    await tenants.waitFor(finished(toA))
    await receiverA.waitFor((received) => received.some((r) => r.headers["webhook-id"] === toA))
    const delivered = receiverA.received.find((r) => r.headers["webhook-id"] === toA)!

    for (const stream of [bodies, tenants]) {
      const events = stream.events.filter((e) => e.data.eventId === toA)
      expect(events).toHaveLength(2)
      for (const { data } of events) {
        // Exactly the body the tenant was sent, verifiable with the tenant's secret as it stands now.
        expect(data.body).toBe(delivered.body)
        expect(Object.keys(data.headers).sort()).toEqual(["webhook-id", "webhook-signature", "webhook-timestamp"])
        expect(data.headers["webhook-id"]).toBe(toA)
        expect(Math.abs(Number(data.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(30)
        expect(new Webhook(SECRET_A).verify(data.body, data.headers)).toEqual(JSON.parse(delivered.body))
        expect(() => new Webhook(SECRET_B).verify(data.body, data.headers)).toThrow()
      }
      // The hook's own headers and credentials stay between the router and the tenant.
      for (const secret of [API_KEY_VALUE, BEARER, SECRET_A]) expect(stream.text()).not.toContain(secret)
      expect(stream.text().toLowerCase()).not.toContain("authorization")
    }
    // The tenant itself got the hook's headers: the stream left them out, not the delivery.
    expect(delivered.headers["x-api-key"]).toBe(API_KEY_VALUE)
  })

  test("bodies follow a rotation: a resumed event is signed with the hook's current secrets", async () => {
    const host = "rotated.stream.example"
    const oldSecret = "whsec_" + Buffer.alloc(32, 21).toString("base64")
    const receiver = startReceiver(oldSecret)
    try {
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `${receiver.url}/r`, secret: oldSecret })).status).toBe(201)
      const watch = await open(`/v1/stream?tenant=${host}`)
      const id = await post(router, callTo(host))
      await watch.waitFor(finished(id))
      const rotation = (await (await router.admin("POST", `/v1/hooks/${host}/rotate-secret`)).json()) as { secret: string }
      // Replayed from the store after the rotation: signed with the new secret (and the old one while it overlaps).
      const replay = await open(`/v1/stream?tenant=${host}&bodies=1`, { token: ADMIN_TOKEN, lastEventId: "0" })
      await replay.waitFor(finished(id))
      for (const { data } of replay.events.filter((e) => e.data.eventId === id)) {
        expect(data.headers["webhook-signature"].split(" ")).toHaveLength(2)
        expect(new Webhook(rotation.secret).verify(data.body, data.headers)).toMatchObject({ type: "participant_joined" })
        expect(new Webhook(oldSecret).verify(data.body, data.headers)).toMatchObject({ type: "participant_joined" })
      }
    } finally {
      receiver.stop()
    }
  })

  test("a client that does not read is dropped, bounded, while the others keep streaming; it resumes losing nothing", async () => {
    // A raw connection that reads the answer's head and then nothing more.
    const slow = connect(Number(new URL(router.url).port), "127.0.0.1")
    const chunks: Array<Buffer> = []
    let paused = false
    const closed = new Promise<void>((resolve) => slow.on("close", () => resolve()))
    slow.on("error", () => {})
    slow.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      if (!paused) {
        paused = true
        slow.pause()
      }
    })
    slow.write(`GET /v1/stream?tenant=${A}&bodies=1 HTTP/1.1\r\nHost: router\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`)
    await eventually(() => paused, 5_000, "the slow client's answer head")
    const fast = await open(`/v1/stream?tenant=${A}&bodies=1`)

    // 200 KB bodies, a few per poll (2 changes each): ~16 MB for each stream in all, more than the kernel's
    // buffers and the stream's bound hold.
    const big = { room: { sid: "RM_big", name: "big", metadata: "x".repeat(200_000) } }
    const posted: Array<string> = []
    for (let batch = 0; batch < 10; batch++) {
      const ids = await Promise.all([0, 1, 2, 3].map(() => post(router, callTo(A, big))))
      posted.push(...ids)
      await fast.waitFor((events) => ids.every((id) => finished(id)(events)), 15_000)
    }
    await eventually(() => router.logs.some((line) => line.msg === "live stream dropped: its client did not keep up"), 5_000, "the drop")
    const produced = fast.events.filter((e) => posted.includes(e.data.eventId))
    expect(produced).toHaveLength(posted.length * 2)

    // Reading again, it gets what was queued for it and then the end: not all that was produced, which it would
    // have had if the router had kept buffering for it.
    slow.resume()
    await Promise.race([closed, Bun.sleep(10_000)])
    const answer = Buffer.concat(chunks)
    expect(answer.toString("latin1", 0, 15)).toBe("HTTP/1.1 200 OK")
    const got = parseFrames(unchunked(answer))
    expect(got.events.length).toBeGreaterThan(0)
    expect(got.events.length).toBeLessThan(produced.length)
    // What it got is the stream as the others saw it, up to where it was dropped.
    const last = got.events.at(-1)!.id
    const index = fast.events.findIndex((e) => e.id === last)
    expect(ids(got.events)).toEqual(ids(fast.events.slice(index + 1 - got.events.length, index + 1)))

    // Resuming after the last event it got: nothing missing, nothing twice.
    const resumed = await open(`/v1/stream?tenant=${A}`, { token: ADMIN_TOKEN, lastEventId: last })
    const sentinel = await post(router, callTo(A))
    await fast.waitFor(finished(sentinel))
    await resumed.waitFor(finished(sentinel))
    expect(ids(resumed.events)).toEqual(ids(fast.events.slice(index + 1)))
    slow.destroy()
  })
})

test("SIGTERM ends open streams at once, while attempts in flight drain", async () => {
  // The tenant holds its answer, so the router drains for a while after SIGTERM.
  const receiver = startReceiver(SECRET_A, [{ status: 200, delayMs: 2_500 }])
  const router = await startRouter({ hooks: [{ host: A, url: `${receiver.url}/a`, secret: SECRET_A }] })
  try {
    const stream = await openStream(router.url, "/v1/stream", { token: ADMIN_TOKEN })
    const id = await post(router, callTo(A))
    await stream.waitFor((events) => events.some((e) => e.data.eventId === id))
    await eventually(() => receiver.hits > 0, 5_000, "the attempt in flight")
    const signalled = Date.now()
    const exited = router.stop().then((code) => ({ code, at: Date.now() }))
    expect(await stream.ended).toBe("ended")
    const endedAt = Date.now()
    expect(endedAt - signalled).toBeLessThan(1_500)
    expect(stream.comments).toContain("shutting down")
    const { code, at } = await exited
    expect(code).toBe(0)
    // The stream ended before the drain let the process go.
    expect(at).toBeGreaterThan(endedAt)
  } finally {
    receiver.stop()
  }
})
