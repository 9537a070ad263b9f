/**
 * `POST /v1/unroutable/replay` through the real router: calls that rang before
 * their domain had a hook reach the hook, added later, in their original order,
 * started and ended, once; a domain with no hook is a 409; operators only.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { eventId, roomEvent, sipParticipantEvent, trackEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const TENANT_TOKEN = "tenant-token-for-replay-0123456789"
const LATE = "late.example"

let router: RunningRouter
let late: Receiver
beforeAll(async () => {
  late = startReceiver(DEFAULT_SECRET)
  router = await startRouter({ admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: [LATE] }] } })
})
afterAll(async () => {
  await router?.stop()
  late?.stop()
})

const post = async (...events: ReadonlyArray<unknown>) => {
  for (const event of events) expect((await router.post(event)).status).toBe(200)
}
const replay = (body: unknown, token?: string) => router.admin("POST", "/v1/unroutable/replay", body, token)

/** A call to `domain`: join, track, left, each LiveKit-signed. */
const callTo = (room: string, domain: string) => [
  sipParticipantEvent("participant_joined", { room, xToIp: domain }),
  trackEvent(room),
  sipParticipantEvent("participant_left", { room, xToIp: domain })
]

describe("replaying a domain's unroutable calls", () => {
  test("reaches the hook added since, in order, started and ended, once; another domain's calls stay", async () => {
    const [first, second] = [callTo("late-1", LATE), callTo("late-2", LATE)]
    const other = callTo("other-1", "other.example")
    await post(...first, ...second, ...other)
    expect(late.received).toEqual([])

    const refused = await replay({ domain: LATE })
    expect(refused.status).toBe(409)
    expect(((await refused.json()) as any).error.code).toBe("conflict")

    const put = await router.admin("PUT", `/v1/hooks/${LATE}`, { url: `${late.url}/voice`, secret: DEFAULT_SECRET, events: ["*", "call.started", "call.ended"] })
    expect(put.status).toBe(201)
    const answer = await replay({ domain: LATE })
    expect(answer.status).toBe(200)
    expect(await answer.json()).toEqual({ replayed: 6, tenant: LATE })

    await late.waitFor((got) => got.length === 10)
    for (const [join, track, left] of [first, second]) {
      const room = join!.room.name
      const got = late.received.filter((x) => x.json.call.room === room)
      expect(got.map((x) => x.json.type)).toEqual(["participant_joined", "call.started", "track_published", "participant_left", "call.ended"])
      expect(got.filter((x) => !x.json.type.startsWith("call.")).map((x) => x.headers["webhook-id"])).toEqual([join!.id, track!.id, left!.id])
    }
    expect(late.received.some((x) => x.json.call.room === "other-1")).toBe(false)

    // Each event is replayed once.
    expect(await (await replay({ domain: LATE })).json()).toEqual({ replayed: 0, tenant: LATE })
  })

  test("a call of the domain after its hook exists routes as usual; only what was kept is replayed", async () => {
    const before = late.received.length
    await post(...callTo("late-3", LATE))
    // Its three events and, as the hook asks, call.started and call.ended.
    await late.waitFor((got) => got.length === before + 5)
    expect(await (await replay({ domain: LATE })).json()).toEqual({ replayed: 0, tenant: LATE })
  })

  test("operators only; a bad body names the field", async () => {
    expect((await replay({ domain: LATE }, TENANT_TOKEN)).status).toBe(403)
    expect((await replay({ domain: LATE }, "not-a-token-0123456789")).status).toBe(401)
    const bad = await replay({ domain: "not a domain" })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as any).error.message).toStartWith("domain")
    const since = await replay({ domain: LATE, since: "yesterday" })
    expect(since.status).toBe(400)
    expect(((await since.json()) as any).error.message).toStartWith("since")
    expect((await replay({ domain: LATE, extra: 1 })).status).toBe(400)
    // Unused event ids leave nothing behind for the next cases.
    expect((await router.post(roomEvent("room_finished", `done-${eventId()}`))).status).toBe(200)
  })
})
