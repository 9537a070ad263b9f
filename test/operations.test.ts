/**
 * The operations API (src/http/DeliveriesApi.ts) through the real process:
 * listing and inspecting deliveries, retrying one, recovering a tenant,
 * unroutable events, and the queue metrics that go with them. One router
 * serves the whole file; its tenants are scripted receivers on loopback.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { API_SECRET, roomEvent, sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

// ---------------------------------------------------------------- helpers

const HOOK_SECRET = "whsec_" + Buffer.alloc(32, 99).toString("base64")
const MAX_ATTEMPTS = 3
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
/** The caller's number is in every forwarded body and nowhere in the operator's view. */
const CALLER = "+15550001111"

const T = {
  notFound: "notfound.ops.example.com",
  refused: "refused.ops.example.com",
  ok: "ok.ops.example.com",
  flaky: "flaky.ops.example.com",
  recover: "recover.ops.example.com",
  held: "held.ops.example.com"
} as const

const DELIVERY_KEYS = ["attempts", "createdAt", "eventId", "id", "lastError", "lastStatus", "nextAttemptAt", "room", "status", "tenant", "type", "updatedAt", "url"]
const ATTEMPT_KEYS = ["at", "attempt", "error", "latencyMs", "status"]
const UNROUTABLE_KEYS = ["at", "domain", "eventId", "headers", "reason", "room", "type"]

let rooms = 0
const uniqueRoom = (name: string) => `room-${name}-${Date.now().toString(36)}-${++rooms}`
const callTo = (host: string) => sipParticipantEvent("participant_joined", { room: uniqueRoom(host.split(".")[0]!), xToIp: host })

/** A URL on which nothing listens: a port that was just bound and released. */
const closedPortUrl = () => {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
  const url = `http://127.0.0.1:${server.port}/voice`
  server.stop(true)
  return url
}

/** A tenant that holds each request until `release()` (or at most `maxHoldMs`), then answers 200. */
const startHeld = (maxHoldMs: number) => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  const arrived: Array<{ headers: Record<string, string> }> = []
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 60,
    async fetch(request) {
      await request.text()
      arrived.push({ headers: Object.fromEntries(request.headers.entries()) })
      await Promise.race([released, Bun.sleep(maxHoldMs)])
      return new Response("ok")
    }
  })
  return { url: `http://127.0.0.1:${server.port}/hold`, arrived, release: () => release(), stop: () => server.stop(true) }
}

interface Answer {
  readonly status: number
  readonly body: any
  readonly text: string
}

const isoMs = (iso: string) => new Date(iso).getTime()

// ---------------------------------------------------------------- the router

describe("operations API on a running router (3 attempts, backoff 50–200ms)", () => {
  let router: RunningRouter
  let notFound: Receiver
  let ok: Receiver
  let flaky: Receiver
  let recover: Receiver
  let held: ReturnType<typeof startHeld>
  const refusedUrl = closedPortUrl()
  /** Every operations answer, for the leak check at the end. */
  const answers: string[] = []
  let endToEndAtStart = 0

  /** An admin call whose answer is kept (and parsed when it is JSON). */
  const api = async (method: string, path: string, token?: string): Promise<Answer> => {
    const response = await router.admin(method, path, undefined, token)
    const text = await response.text()
    answers.push(text)
    let body: any
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    return { status: response.status, body, text }
  }
  const get = (path: string) => api("GET", path)

  const expectBadRequest = async (method: string, path: string, field: string) => {
    const answer = await api(method, path)
    expect({ path, status: answer.status }).toEqual({ path, status: 400 })
    expect(Object.keys(answer.body)).toEqual(["error"])
    expect(Object.keys(answer.body.error).sort()).toEqual(["code", "message"])
    expect(answer.body.error.code).toBe("bad_request")
    expect({ path, message: answer.body.error.message }).toEqual({ path, message: expect.stringMatching(new RegExp(`^${field}: .+`)) })
    return answer.body.error.message as string
  }

  /** All of a tenant's deliveries, newest first. */
  const deliveriesOf = async (tenant: string) => {
    const answer = await get(`/v1/deliveries?tenant=${encodeURIComponent(tenant)}&limit=1000`)
    expect(answer.status).toBe(200)
    return answer.body.items as any[]
  }
  const listed = async (tenant: string, eventId: string) => (await deliveriesOf(tenant)).find((d) => d.eventId === eventId)

  /** Waits until the delivery of `eventId` has `status`, and returns its list entry. */
  const settled = async (tenant: string, eventId: string, status: "delivered" | "failed", timeoutMs = 5_000) => {
    let last: any
    await eventually(
      async () => {
        last = await listed(tenant, eventId)
        return last?.status === status
      },
      timeoutMs,
      `${eventId} to be ${status} (last seen: ${JSON.stringify(last)})`
    )
    return last
  }

  const detail = async (id: number) => {
    const answer = await get(`/v1/deliveries/${id}`)
    expect(answer.status).toBe(200)
    return answer.body
  }

  const postOk = async (event: unknown) => {
    const response = await router.post(event)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: "received" })
  }

  // Events posted before the first test: their outcomes are what the listing tests read.
  const fixtures = {
    notFound: callTo(T.notFound),
    refused: [callTo(T.refused), callTo(T.refused)],
    ok: Array.from({ length: 5 }, () => callTo(T.ok)),
    flaky: callTo(T.flaky)
  }

  beforeAll(async () => {
    notFound = startReceiver(HOOK_SECRET, [{ status: 404 }])
    ok = startReceiver(DEFAULT_SECRET, [{ status: 200 }])
    flaky = startReceiver(DEFAULT_SECRET, [{ status: 404 }, { status: 200 }])
    recover = startReceiver(DEFAULT_SECRET, [{ status: 404 }, { status: 404 }, { status: 200 }])
    held = startHeld(3_000)
    router = await startRouter({
      security: { allowPrivateTargets: true },
      // A held request must outlast a metrics refresh (1 s); the refusing tenant's 6 failures must not open its circuit.
      delivery: { timeout: "4s", circuitBreaker: { failureThreshold: 50, cooldown: "1s" } },
      hooks: [
        { host: T.notFound, url: `${notFound.url}/voice`, secret: HOOK_SECRET },
        { host: T.refused, url: refusedUrl },
        { host: T.ok, url: `${ok.url}/voice` },
        { host: T.flaky, url: `${flaky.url}/voice` },
        { host: T.recover, url: `${recover.url}/voice` },
        { host: T.held, url: held.url }
      ]
    })
    endToEndAtStart = await router.metric("tenant_router_end_to_end_seconds_count")
    // Sequential, so ids follow this order.
    for (const event of [fixtures.notFound, ...fixtures.refused, ...fixtures.ok, fixtures.flaky]) await postOk(event)
    await settled(T.notFound, fixtures.notFound.id, "failed")
    for (const event of fixtures.refused) await settled(T.refused, event.id, "failed")
    for (const event of fixtures.ok) await settled(T.ok, event.id, "delivered")
    await settled(T.flaky, fixtures.flaky.id, "failed")
  })

  afterAll(async () => {
    held?.release()
    await router?.stop()
    for (const receiver of [notFound, ok, flaky, recover]) receiver?.stop()
    held?.stop()
  })

  // ---------------------------------------------------------------- GET /v1/deliveries

  describe("GET /v1/deliveries", () => {
    test("a tenant answering 404: failed after one attempt, lastStatus 404, no next attempt", async () => {
      const item = await listed(T.notFound, fixtures.notFound.id)
      expect(item).toMatchObject({
        eventId: fixtures.notFound.id,
        type: "participant_joined",
        tenant: T.notFound,
        url: `${notFound.url}/voice`,
        room: fixtures.notFound.room.name,
        status: "failed",
        attempts: 1,
        lastStatus: 404,
        lastError: null,
        nextAttemptAt: null
      })
      expect(Object.keys(item).sort()).toEqual(DELIVERY_KEYS)
      expect(notFound.hits).toBe(1)
    })

    test("a tenant refusing connections: failed after maxAttempts, with a lastError and no status", async () => {
      for (const event of fixtures.refused) {
        const item = await listed(T.refused, event.id)
        expect(item).toMatchObject({ tenant: T.refused, url: refusedUrl, status: "failed", attempts: MAX_ATTEMPTS, lastStatus: null, nextAttemptAt: null })
        expect(typeof item.lastError).toBe("string")
        expect(item.lastError.length).toBeGreaterThan(0)
      }
    })

    test("a delivered event: status delivered, lastStatus 200, nextAttemptAt null", async () => {
      for (const event of fixtures.ok) {
        const item = await listed(T.ok, event.id)
        expect(item).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200, lastError: null, nextAttemptAt: null, room: event.room.name })
        expect(item.createdAt).toMatch(ISO)
        expect(item.updatedAt).toMatch(ISO)
        expect(isoMs(item.updatedAt)).toBeGreaterThanOrEqual(isoMs(item.createdAt))
      }
      expect(new Set(ok.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set(fixtures.ok.map((e) => e.id)))
    })

    test("status filter: only that status, and every delivery of it", async () => {
      const failed = (await get("/v1/deliveries?status=failed")).body.items as any[]
      expect(failed.every((d) => d.status === "failed")).toBe(true)
      expect(new Set(failed.map((d) => d.eventId))).toEqual(new Set([fixtures.notFound.id, ...fixtures.refused.map((e) => e.id), fixtures.flaky.id]))
      const delivered = (await get("/v1/deliveries?status=delivered")).body.items as any[]
      expect(new Set(delivered.map((d) => d.eventId))).toEqual(new Set(fixtures.ok.map((e) => e.id)))
      expect((await get("/v1/deliveries?status=pending")).body).toEqual({ items: [], nextCursor: null })
    })

    test("tenant filter, in any letter case and with a trailing dot; combined with status", async () => {
      const expected = fixtures.ok.map((e) => e.id).reverse()
      for (const spelling of [T.ok, "OK.Ops.Example.COM", "ok.ops.example.com."]) {
        const answer = await get(`/v1/deliveries?tenant=${encodeURIComponent(spelling)}`)
        expect({ spelling, status: answer.status }).toEqual({ spelling, status: 200 })
        expect(answer.body.items.map((d: any) => d.eventId)).toEqual(expected)
        expect(answer.body.nextCursor).toBeNull()
      }
      expect((await get(`/v1/deliveries?tenant=${T.refused}&status=delivered`)).body.items).toEqual([])
      const refused = (await get(`/v1/deliveries?tenant=REFUSED.ops.example.com&status=failed`)).body.items as any[]
      expect(refused.map((d) => d.eventId)).toEqual(fixtures.refused.map((e) => e.id).reverse())
      expect((await get("/v1/deliveries?tenant=nobody.ops.example.com")).body).toEqual({ items: [], nextCursor: null })
    })

    test("limit + cursor page newest first, without overlap; nextCursor is null on the last page", async () => {
      const all = (await deliveriesOf(T.ok)).map((d) => d.id as number)
      expect(all.length).toBe(5)
      const pages: number[][] = []
      let cursor: string | null = null
      for (let i = 0; i < 10; i++) {
        const answer: Answer = await get(`/v1/deliveries?tenant=${T.ok}&limit=2${cursor === null ? "" : `&cursor=${cursor}`}`)
        expect(answer.status).toBe(200)
        pages.push(answer.body.items.map((d: any) => d.id))
        cursor = answer.body.nextCursor
        if (cursor === null) break
        expect(cursor).toBe(String(pages[pages.length - 1]!.at(-1)))
      }
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1])
      expect(pages.flat()).toEqual(all)
      expect(pages.flat()).toEqual([...all].sort((a, b) => b - a))

      // Unfiltered, the pages cover every delivery exactly once, ids strictly falling.
      const everything = ((await get("/v1/deliveries?limit=1000")).body.items as any[]).map((d) => d.id as number)
      const walked: number[] = []
      cursor = null
      for (let i = 0; i < 20 && (i === 0 || cursor !== null); i++) {
        const answer: Answer = await get(`/v1/deliveries?limit=3${cursor === null ? "" : `&cursor=${cursor}`}`)
        walked.push(...answer.body.items.map((d: any) => d.id))
        cursor = answer.body.nextCursor
      }
      expect(cursor).toBeNull()
      expect(walked).toEqual(everything)
      expect(walked.every((id, i) => i === 0 || id < walked[i - 1]!)).toBe(true)
      expect(everything.length).toBe(9)

      // A page that holds exactly what is left is the last page: no cursor to an empty one.
      const full = await get(`/v1/deliveries?tenant=${T.refused}&limit=2`)
      expect(full.body.items.map((d: any) => d.eventId)).toEqual(fixtures.refused.map((e) => e.id).reverse())
      expect(full.body.nextCursor).toBeNull()
    })

    test("bad input → 400 bad_request naming the field", async () => {
      const cases: Array<[string, string]> = [
        ["status=bogus", "status"],
        ["status=FAILED", "status"],
        ["limit=0", "limit"],
        ["limit=1001", "limit"],
        ["limit=abc", "limit"],
        ["limit=", "limit"],
        ["limit=2.5", "limit"],
        ["cursor=-1", "cursor"],
        ["cursor=0", "cursor"],
        ["cursor=abc", "cursor"],
        ["cursor=0x10", "cursor"],
        ["limit=1e1", "limit"],
        ["limit=%2010", "limit"],
        [`tenant=${encodeURIComponent("not a host")}`, "tenant"],
        ["tenant=", "tenant"],
        ["bogus=1", "bogus"],
        ["status=failed&page=2", "page"]
      ]
      for (const [query, field] of cases) await expectBadRequest("GET", `/v1/deliveries?${query}`, field)
      // An unknown status is answered with the ones there are.
      expect(await expectBadRequest("GET", "/v1/deliveries?status=bogus", "status")).toBe('status: expected one of pending, failed, delivered or expired, got "bogus"')
    })

    test("no token or a wrong one → 401 on every operations endpoint, and nothing changes", async () => {
      const id = (await listed(T.notFound, fixtures.notFound.id)).id
      const since = encodeURIComponent("2000-01-01T00:00:00.000Z")
      const calls: Array<[string, string]> = [
        ["GET", "/v1/deliveries"],
        ["GET", `/v1/deliveries/${id}`],
        ["POST", `/v1/deliveries/${id}/retry`],
        ["POST", `/v1/tenants/${T.notFound}/recover?since=${since}`],
        ["GET", "/v1/unroutable"]
      ]
      for (const [method, path] of calls) {
        for (const headers of [{}, { authorization: `Bearer ${ADMIN_TOKEN}x` }, { authorization: ADMIN_TOKEN }] as Array<Record<string, string>>) {
          const response = await fetch(`${router.url}${path}`, { method, headers })
          const text = await response.text()
          answers.push(text)
          expect({ method, path, status: response.status }).toEqual({ method, path, status: 401 })
          expect(JSON.parse(text).error.code).toBe("unauthorized")
        }
      }
      await Bun.sleep(200)
      expect(notFound.hits).toBe(1)
      expect(await listed(T.notFound, fixtures.notFound.id)).toMatchObject({ status: "failed", attempts: 1 })
    })
  })

  // ---------------------------------------------------------------- GET /v1/deliveries/{id}

  describe("GET /v1/deliveries/{id}", () => {
    const checkHistory = (item: any) => {
      for (const entry of item.history) {
        expect(Object.keys(entry).sort()).toEqual(ATTEMPT_KEYS)
        expect(entry.at).toMatch(ISO)
        expect(Number.isInteger(entry.latencyMs)).toBe(true)
        expect(entry.latencyMs).toBeGreaterThanOrEqual(0)
        expect(isoMs(entry.at)).toBeGreaterThanOrEqual(isoMs(item.createdAt))
        expect(isoMs(entry.at)).toBeLessThanOrEqual(isoMs(item.updatedAt))
      }
      const times = item.history.map((h: any) => isoMs(h.at))
      expect(times).toEqual([...times].sort((a: number, b: number) => a - b))
    }

    test("a refused delivery: its fields and one history entry per attempt, in order, each with an error", async () => {
      const listedItem = await listed(T.refused, fixtures.refused[0]!.id)
      const item = await detail(listedItem.id)
      expect(Object.keys(item).sort()).toEqual([...DELIVERY_KEYS, "history"].sort())
      const { history, ...fields } = item
      expect(fields).toEqual(listedItem)
      expect(fields).toMatchObject({
        id: listedItem.id,
        eventId: fixtures.refused[0]!.id,
        type: "participant_joined",
        tenant: T.refused,
        url: refusedUrl,
        room: fixtures.refused[0]!.room.name,
        status: "failed",
        attempts: MAX_ATTEMPTS,
        lastStatus: null,
        nextAttemptAt: null
      })
      expect(history.map((h: any) => h.attempt)).toEqual([1, 2, 3])
      for (const entry of history) {
        expect(entry.status).toBeNull()
        expect(typeof entry.error).toBe("string")
        expect(entry.error.length).toBeGreaterThan(0)
      }
      expect(history.at(-1).error).toBe(item.lastError)
      checkHistory(item)
      // Retries waited their backoff (50 ms, then 100 ms, each ±20%).
      const times = history.map((h: any) => isoMs(h.at))
      expect(times[1] - times[0]).toBeGreaterThanOrEqual(35)
      expect(times[2] - times[1]).toBeGreaterThanOrEqual(75)
    })

    test("a 404 and a delivered one: one entry each, with the status and no error", async () => {
      const failed = await detail((await listed(T.notFound, fixtures.notFound.id)).id)
      expect(failed.history).toEqual([{ attempt: 1, at: expect.stringMatching(ISO), status: 404, error: null, latencyMs: expect.any(Number) }])
      checkHistory(failed)
      const delivered = await detail((await listed(T.ok, fixtures.ok[0]!.id)).id)
      expect(delivered).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200, lastError: null, nextAttemptAt: null })
      expect(delivered.history).toEqual([{ attempt: 1, at: expect.stringMatching(ISO), status: 200, error: null, latencyMs: expect.any(Number) }])
      checkHistory(delivered)
    })

    test("unknown id → 404 not_found; id abc, 0, -1, 1.5 → 400 naming id", async () => {
      const highest = Math.max(...((await get("/v1/deliveries?limit=1000")).body.items as any[]).map((d) => d.id as number))
      for (const id of [highest + 1, 999_999_999]) {
        const answer = await get(`/v1/deliveries/${id}`)
        expect({ id, status: answer.status }).toEqual({ id, status: 404 })
        expect(answer.body.error.code).toBe("not_found")
      }
      for (const id of ["abc", "0", "-1", "1.5"]) await expectBadRequest("GET", `/v1/deliveries/${id}`, "id")
    })
  })

  // ---------------------------------------------------------------- POST /v1/deliveries/{id}/retry

  describe("POST /v1/deliveries/{id}/retry", () => {
    test("a failed delivery whose tenant now answers 200: 202, redelivered with the same webhook-id, a fresh budget, the history numbered on", async () => {
      const before = await listed(T.flaky, fixtures.flaky.id)
      expect(before).toMatchObject({ status: "failed", attempts: 1, lastStatus: 404 })
      const firstHistory = (await detail(before.id)).history
      expect(firstHistory.map((h: any) => [h.attempt, h.status])).toEqual([[1, 404]])
      expect(flaky.received.length).toBe(1)

      const answer = await api("POST", `/v1/deliveries/${before.id}/retry`)
      expect(answer.status).toBe(202)
      expect(Object.keys(answer.body).sort()).toEqual(DELIVERY_KEYS)
      expect(answer.body).toMatchObject({ id: before.id, eventId: fixtures.flaky.id, status: "pending", attempts: 0 })
      expect(answer.body.nextAttemptAt).toMatch(ISO)

      await flaky.waitFor((r) => r.length === 2, 5_000)
      expect(flaky.rejected).toEqual([])
      expect(flaky.received.map((r) => r.headers["webhook-id"])).toEqual([fixtures.flaky.id, fixtures.flaky.id])
      expect(flaky.received[1]!.body).toBe(flaky.received[0]!.body)

      await settled(T.flaky, fixtures.flaky.id, "delivered")
      const after = await detail(before.id)
      expect(after).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200, lastError: null, nextAttemptAt: null, createdAt: before.createdAt })
      expect(after.history.map((h: any) => [h.attempt, h.status, h.error])).toEqual([
        [1, 404, null],
        [2, 200, null]
      ])
      expect(after.history[0]).toEqual(firstHistory[0])
      expect(isoMs(after.history[1].at)).toBeGreaterThanOrEqual(isoMs(after.history[0].at))
      expect(await router.metric("tenant_router_deliveries_total", { tenant: T.flaky, outcome: "failed" })).toBe(1)
      expect(await router.metric("tenant_router_deliveries_total", { tenant: T.flaky, outcome: "delivered" })).toBe(1)
    })

    test("retrying a delivered delivery → 409, and nothing is sent", async () => {
      const delivered = await listed(T.flaky, fixtures.flaky.id)
      const answer = await api("POST", `/v1/deliveries/${delivered.id}/retry`)
      expect(answer.status).toBe(409)
      expect(answer.body.error.code).toBe("conflict")
      expect(answer.body.error.message).toContain("delivered")
      await Bun.sleep(150)
      expect(flaky.hits).toBe(2)
      expect(await listed(T.flaky, fixtures.flaky.id)).toEqual(delivered)
    })

    test("retrying a pending delivery → 409; meanwhile it shows pending and the queue gauges see it", async () => {
      const event = callTo(T.held)
      await postOk(event)
      try {
        await eventually(() => held.arrived.length === 1, 3_000, "the held tenant to get the request")
        const item = await listed(T.held, event.id)
        expect(item).toMatchObject({ status: "pending", attempts: 0, lastStatus: null, lastError: null })
        expect(item.nextAttemptAt).toMatch(ISO)
        expect((await detail(item.id)).history).toEqual([])
        expect((await get("/v1/deliveries?status=pending")).body.items.map((d: any) => d.id)).toEqual([item.id])

        const answer = await api("POST", `/v1/deliveries/${item.id}/retry`)
        expect(answer.status).toBe(409)
        expect(answer.body.error.code).toBe("conflict")
        expect(answer.body.error.message).toContain("pending")

        // The gauges are refreshed every second, and the request is held for up to 3 s.
        await eventually(
          async () =>
            (await router.metric("tenant_router_queue_depth")) === 1 && (await router.metric("tenant_router_oldest_pending_seconds")) > 0,
          2_500,
          "queue depth 1 and a pending age above 0"
        )
      } finally {
        held.release()
      }
      await settled(T.held, event.id, "delivered")
      expect(held.arrived.length).toBe(1)
      expect(held.arrived[0]!.headers["webhook-id"]).toBe(event.id)
    })

    test("unknown id → 404; bad id → 400 naming id", async () => {
      const answer = await api("POST", "/v1/deliveries/999999999/retry")
      expect(answer.status).toBe(404)
      expect(answer.body.error.code).toBe("not_found")
      for (const id of ["abc", "0"]) await expectBadRequest("POST", `/v1/deliveries/${id}/retry`, "id")
    })
  })

  // ---------------------------------------------------------------- POST /v1/tenants/{host}/recover

  describe("POST /v1/tenants/{host}/recover", () => {
    const recoverPath = (host: string, since: string) => `/v1/tenants/${host}/recover?since=${encodeURIComponent(since)}`
    const first = callTo(T.recover)
    const second = callTo(T.recover)

    test("requeues only that tenant's failed deliveries created at or after `since`", async () => {
      await postOk(first)
      const a = await settled(T.recover, first.id, "failed")
      await Bun.sleep(5)
      await postOk(second)
      const b = await settled(T.recover, second.id, "failed")
      expect(isoMs(b.createdAt)).toBeGreaterThan(isoMs(a.createdAt))
      const othersBefore = ((await get("/v1/deliveries?status=failed&limit=1000")).body.items as any[]).filter((d) => d.tenant !== T.recover)
      expect(othersBefore.length).toBe(3)
      const hitsBefore = { notFound: notFound.hits }

      // A `since` in the future requeues nothing.
      const future = new Date(Date.now() + 3_600_000).toISOString()
      const none = await api("POST", recoverPath(T.recover, future))
      expect(none.status).toBe(202)
      expect(none.body).toEqual({ tenant: T.recover, since: future, requeued: 0 })
      expect(await listed(T.recover, second.id)).toMatchObject({ status: "failed", attempts: 1 })

      // `since` = the second one's creation time: inclusive, so exactly that one; the host in any case.
      const one = await api("POST", recoverPath("Recover.OPS.example.com", b.createdAt))
      expect(one.status).toBe(202)
      expect(one.body).toEqual({ tenant: T.recover, since: b.createdAt, requeued: 1 })
      await settled(T.recover, second.id, "delivered")
      expect(recover.received.map((r) => r.headers["webhook-id"])).toEqual([first.id, second.id, second.id])
      const bAfter = await detail(b.id)
      expect(bAfter).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200 })
      expect(bAfter.history.map((h: any) => [h.attempt, h.status])).toEqual([
        [1, 404],
        [2, 200]
      ])
      expect(await listed(T.recover, first.id)).toMatchObject({ status: "failed", attempts: 1, lastStatus: 404 })

      // Other tenants' failed deliveries were not touched.
      const othersAfter = ((await get("/v1/deliveries?status=failed&limit=1000")).body.items as any[]).filter((d) => d.tenant !== T.recover)
      expect(othersAfter).toEqual(othersBefore)
      expect(notFound.hits).toBe(hitsBefore.notFound)

      // An earlier `since` now finds only the first (the second is delivered, not failed).
      const rest = await api("POST", recoverPath(T.recover, "2000-01-01T00:00:00Z"))
      expect(rest.status).toBe(202)
      expect(rest.body).toEqual({ tenant: T.recover, since: "2000-01-01T00:00:00.000Z", requeued: 1 })
      await settled(T.recover, first.id, "delivered")
      expect(recover.received.map((r) => r.headers["webhook-id"])).toEqual([first.id, second.id, second.id, first.id])
      expect(recover.rejected).toEqual([])

      // Nothing failed is left for it.
      const again = await api("POST", recoverPath(T.recover, "2000-01-01T00:00:00Z"))
      expect(again.body.requeued).toBe(0)
    })

    test("since missing or not an ISO time → 400 naming since; a bad host → 400 naming host", async () => {
      await expectBadRequest("POST", `/v1/tenants/${T.recover}/recover`, "since")
      for (const since of ["yesterday", "", "not-a-date"]) await expectBadRequest("POST", recoverPath(T.recover, since), "since")
      await expectBadRequest("POST", `${recoverPath(T.recover, "2000-01-01T00:00:00Z")}&extra=1`, "extra")
      await expectBadRequest("POST", recoverPath("bad..host", "2000-01-01T00:00:00Z"), "host")
    })

    test("a since that is not an ISO time is refused even where Date.parse would guess a date (7 → 2001-07-01)", async () => {
      // The recover tenant has nothing failed left, so a wrongly accepted since changes nothing here.
      expect((await deliveriesOf(T.recover)).filter((d) => d.status === "failed")).toEqual([])
      const accepted: string[] = []
      for (const since of ["7", "-5", "1.5", "0"]) {
        const answer = await api("POST", recoverPath(T.recover, since))
        if (answer.status !== 400) accepted.push(`since=${since} → ${answer.status} ${answer.text}`)
        else expect(answer.body.error.message).toMatch(/^since: /)
      }
      expect(accepted).toEqual([])
    })
  })

  // ---------------------------------------------------------------- GET /v1/unroutable

  describe("GET /v1/unroutable", () => {
    const unknown = sipParticipantEvent("participant_joined", {
      room: uniqueRoom("unknown"),
      xToIp: "Calls.Nobody-Here.example:5060",
      to: "<sip:+15557654321@calls.nobody-here.example>"
    })
    const missing = sipParticipantEvent("participant_joined", { room: uniqueRoom("missing"), dialled: "+15550009999" })
    const malformed = sipParticipantEvent("participant_joined", {
      room: uniqueRoom("malformed"),
      xToIp: "not a host!!",
      to: '"Unterminated <sip:foo@',
      dialled: "+15550009999"
    })

    test("each reason with the domain, the raw headers, room, type, eventId and time; newest first; limit", async () => {
      const startedAt = Date.now()
      for (const event of [unknown, missing, malformed]) await postOk(event)
      // Events of rooms that never had a SIP participant are not unroutable SIP events.
      const room = uniqueRoom("plain")
      await postOk(roomEvent("room_started", room))
      await postOk(trackEvent(room))

      const answer = await get("/v1/unroutable?limit=3")
      expect(answer.status).toBe(200)
      const items = answer.body.items as any[]
      expect(items.map((u) => u.eventId)).toEqual([malformed.id, missing.id, unknown.id])
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual(UNROUTABLE_KEYS)
        expect(item.at).toMatch(ISO)
        expect(isoMs(item.at)).toBeGreaterThanOrEqual(startedAt - 5)
        expect(isoMs(item.at)).toBeLessThanOrEqual(Date.now())
      }
      expect(items[2]).toEqual({
        at: items[2].at,
        eventId: unknown.id,
        type: "participant_joined",
        room: unknown.room.name,
        headers: { xToIp: "Calls.Nobody-Here.example:5060", to: "<sip:+15557654321@calls.nobody-here.example>", dialled: "+15557654321" },
        domain: "calls.nobody-here.example",
        reason: "unknown_domain"
      })
      expect(items[1]).toEqual({
        at: items[1].at,
        eventId: missing.id,
        type: "participant_joined",
        room: missing.room.name,
        headers: { xToIp: null, to: null, dialled: "+15550009999" },
        domain: null,
        reason: "missing_header"
      })
      expect(items[0]).toEqual({
        at: items[0].at,
        eventId: malformed.id,
        type: "participant_joined",
        room: malformed.room.name,
        headers: { xToIp: "not a host!!", to: '"Unterminated <sip:foo@', dialled: "+15550009999" },
        domain: null,
        reason: "malformed_header"
      })
      const times = items.map((u) => isoMs(u.at))
      expect(times).toEqual([...times].sort((x, y) => y - x))

      expect((await get("/v1/unroutable?limit=1")).body.items.map((u: any) => u.eventId)).toEqual([malformed.id])
      const all = (await get("/v1/unroutable")).body.items as any[]
      expect(all.map((u) => u.eventId)).toEqual([malformed.id, missing.id, unknown.id])
      expect(await router.metric("tenant_router_unroutable_total", { reason: "unknown_domain" })).toBe(1)
      expect(await router.metric("tenant_router_unroutable_total", { reason: "missing_header" })).toBe(1)
      expect(await router.metric("tenant_router_unroutable_total", { reason: "malformed_header" })).toBe(1)
    })

    test("bad limit or an unknown parameter → 400 naming it", async () => {
      for (const query of ["limit=0", "limit=1001", "limit=abc", "limit=-3", "limit=1.5"]) await expectBadRequest("GET", `/v1/unroutable?${query}`, "limit")
      await expectBadRequest("GET", "/v1/unroutable?reason=missing_header", "reason")
    })
  })

  // ---------------------------------------------------------------- metrics, and what never leaks

  describe("metrics once everything has finished", () => {
    test("retries count maxAttempts-1 per refused delivery, and only where retries happened", async () => {
      expect(await router.metric("tenant_router_retries_total", { tenant: T.refused })).toBe(fixtures.refused.length * (MAX_ATTEMPTS - 1))
      for (const tenant of [T.notFound, T.ok, T.flaky, T.recover, T.held]) {
        expect({ tenant, retries: await router.metric("tenant_router_retries_total", { tenant }) }).toEqual({ tenant, retries: 0 })
      }
      expect(await router.metric("tenant_router_delivery_attempts_total", { tenant: T.refused, result: "network" })).toBe(
        fixtures.refused.length * MAX_ATTEMPTS
      )
    })

    test("end-to-end latency was observed once per delivered delivery", async () => {
      const delivered = (await get("/v1/deliveries?status=delivered&limit=1000")).body.items as any[]
      // 5 ok, the retried one, the held one, the two recovered ones.
      expect(delivered.length).toBe(9)
      const count = await router.metric("tenant_router_end_to_end_seconds_count")
      expect(count - endToEndAtStart).toBe(delivered.length)
      expect(await router.metric("tenant_router_end_to_end_seconds_sum")).toBeGreaterThanOrEqual(0)
    })

    test("queue depth and oldest pending age return to 0", async () => {
      expect((await get("/v1/deliveries?status=pending")).body.items).toEqual([])
      await eventually(
        async () =>
          (await router.metric("tenant_router_queue_depth")) === 0 && (await router.metric("tenant_router_oldest_pending_seconds")) === 0,
        3_000,
        "queue depth and oldest pending age back to 0"
      )
      // They are really exported, not merely absent.
      const text = await (await fetch(`${router.url}/metrics`)).text()
      expect(text).toMatch(/^tenant_router_queue_depth 0$/m)
      expect(text).toMatch(/^tenant_router_oldest_pending_seconds 0$/m)
    })

    test("no answer carried a secret, a token or the forwarded body", async () => {
      expect(answers.length).toBeGreaterThan(50)
      const all = answers.join("\n")
      const needles: Record<string, string> = {
        "default secret": DEFAULT_SECRET.slice("whsec_".length),
        "hook secret": HOOK_SECRET.slice("whsec_".length),
        "admin token": ADMIN_TOKEN,
        "LiveKit secret": API_SECRET,
        "caller number (body)": CALLER,
        "SIP call id (body)": "SCL_",
        "envelope (body)": '"call"'
      }
      expect(Object.entries(needles).filter(([, needle]) => all.includes(needle)).map(([label]) => label)).toEqual([])
    })
  })
})
