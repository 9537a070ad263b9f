import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either } from "effect"
import fc from "fast-check"
import { parseLiveKitEvent, sipAttributesOf } from "../src/domain/LiveKitEvent.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const anyJson = fc.jsonValue({ maxDepth: 3 })
/** Whatever a sender might put where the router reads: the right shape, or anything else. */
const maybe = <A>(right: fc.Arbitrary<A>) => fc.option(fc.oneof(right, anyJson), { nil: undefined })

const oddEvent = fc.record(
  {
    event: fc.string({ minLength: 1 }),
    id: fc.string({ minLength: 1 }),
    createdAt: maybe(fc.oneof(fc.integer({ min: 1, max: 2_000_000_000 }).map(String), fc.constant("9999999999999"), fc.constant(1e20))),
    room: maybe(fc.record({ name: maybe(fc.string()) })),
    egressInfo: maybe(fc.record({ roomName: maybe(fc.string()) })),
    participant: maybe(
      fc.record({ kind: maybe(fc.constant("SIP")), attributes: maybe(fc.dictionary(fc.string(), fc.oneof(fc.string(), anyJson))) })
    )
  },
  { requiredKeys: ["event", "id"] }
)

describe("parseLiveKitEvent", () => {
  test("any object with string event and id is read, every field it reads with the type it claims (fail open)", () => {
    fc.assert(
      fc.property(oddEvent, (raw) => {
        const parsed = parseLiveKitEvent(JSON.stringify(raw))
        if (Either.isLeft(parsed)) return false
        const event = parsed.right
        const createdAtOk = event.createdAtMs === undefined || !Number.isNaN(new Date(event.createdAtMs).getTime())
        const participantOk =
          event.participant === undefined ||
          ((event.participant.kind === undefined || typeof event.participant.kind === "string") &&
            Object.values(event.participant.attributes).every((v) => typeof v === "string"))
        return event.id === raw.id && event.event === raw.event && createdAtOk && participantOk && (event.room === undefined || typeof event.room === "string")
      })
    )
  })

  test("a field of the wrong shape is named in `ignored`, and the rest of the event still routes", () => {
    const parsed = parseLiveKitEvent(
      JSON.stringify({
        event: "participant_joined",
        id: "EV_odd",
        createdAt: "9999999999999",
        room: { name: "call-1" },
        participant: { kind: "SIP", attributes: { "sip.h.x-to-ip": "calls.drsmith.com", "sip.callID": 7, "sip.h.to": { host: "x" } } }
      })
    )
    const event = Either.getOrThrow(parsed)
    expect(event.ignored).toEqual(["createdAt", "participant.attributes"])
    expect(event.createdAtMs).toBeUndefined()
    expect(event.room).toBe("call-1")
    expect(sipAttributesOf(event)).toEqual({ "sip.h.x-to-ip": "calls.drsmith.com" })
  })

  test.each<[Record<string, unknown>, Array<string>]>([
    [{ participant: "sip" }, ["participant"]],
    [{ participant: [1] }, ["participant"]],
    [{ room: "call-1" }, ["room"]],
    [{ room: ["call-1"], egressInfo: { roomName: "call-2" } }, ["room"]],
    [{ createdAt: 1e20 }, ["createdAt"]],
    [{ createdAt: "-5" }, ["createdAt"]],
    [{ createdAt: "0x10" }, ["createdAt"]],
    [{ participant: { kind: 3, attributes: [] } }, ["participant.attributes", "participant.kind"]],
    [{ participant: { identity: 5, sid: ["PA_1"], disconnectReason: { code: 1 } } }, ["participant.disconnectReason", "participant.identity", "participant.sid"]]
  ])("%j is read with %j ignored", (fields, ignored) => {
    const event = Either.getOrThrow(parseLiveKitEvent(JSON.stringify({ event: "participant_joined", id: "EV_1", ...fields })))
    expect([...event.ignored].sort() as Array<string>).toEqual(ignored)
  })

  test("the participant's identity, sid and disconnectReason are read, for the call events", () => {
    const text = JSON.stringify({ event: "participant_left", id: "EV_1", participant: { identity: "sip_+1555", sid: "PA_1", disconnectReason: "CLIENT_INITIATED", kind: "SIP" } })
    expect(Either.getOrThrow(parseLiveKitEvent(text)).participant).toEqual({
      kind: "SIP",
      identity: "sip_+1555",
      sid: "PA_1",
      disconnectReason: "CLIENT_INITIATED",
      attributes: {}
    })
  })

  test("createdAt in protojson's int64 string, or as a number, is read in milliseconds", () => {
    expect(Either.getOrThrow(parseLiveKitEvent('{"event":"room_started","id":"EV_1","createdAt":"1767225601"}')).createdAtMs).toBe(1_767_225_601_000)
    expect(Either.getOrThrow(parseLiveKitEvent('{"event":"room_started","id":"EV_1","createdAt":1767225601}')).createdAtMs).toBe(1_767_225_601_000)
  })

  test.each(["", "nope", "[]", '"text"', "null", "{}", '{"event":"x"}', '{"event":"","id":"EV_1"}', '{"event":"x","id":5}'])(
    "%p is not an event",
    (text) => expect(Either.isLeft(parseLiveKitEvent(text))).toBe(true)
  )
})
