import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { callEnded, callStarted, isCallParticipant } from "../src/domain/CallEvents.ts"
import { CALL_EVENTS, LIVEKIT_EVENTS, wantsEvent, type EventName } from "../src/domain/Hook.ts"
import type { Pin } from "../src/domain/Delivery.ts"
import type { LiveKitEvent } from "../src/domain/LiveKitEvent.ts"
import { onPinnedCall } from "../src/ingest/Router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const filterName = fc.constantFrom<EventName>(...LIVEKIT_EVENTS, ...CALL_EVENTS, "*")
const anyEvent = fc.constantFrom<string>(...LIVEKIT_EVENTS, ...CALL_EVENTS)
const isCall = (event: string) => (CALL_EVENTS as ReadonlyArray<string>).includes(event)

describe("wantsEvent: what a hook's events filter takes", () => {
  test("no filter: every LiveKit event, no call event (tenants from before call events see nothing new)", () =>
    fc.assert(fc.property(anyEvent, (event) => wantsEvent(undefined, event) === !isCall(event))))

  test("a filter takes what it lists; * adds every LiveKit event, never a call event", () =>
    fc.assert(
      fc.property(fc.array(filterName, { maxLength: 6 }), anyEvent, (events, event) => {
        const expected = events.includes(event as EventName) || (events.includes("*") && !isCall(event))
        expect(wantsEvent(events, event)).toBe(expected)
      })
    ))

  test("an empty filter takes nothing", () => {
    for (const event of [...LIVEKIT_EVENTS, ...CALL_EVENTS]) expect(wantsEvent([], event)).toBe(false)
  })
})

const participantEvent = (participant: Partial<NonNullable<LiveKitEvent["participant"]>>): LiveKitEvent => ({
  event: "participant_left",
  id: "EV_1",
  roomSid: undefined,
  createdAtMs: 2_000,
  room: "r",
  participant: { kind: "SIP", identity: undefined, sid: undefined, disconnectReason: undefined, attributes: {}, ...participant },
  ignored: []
})

describe("the call events' data", () => {
  const start = { at: Date.UTC(2026, 0, 1, 12, 0, 0), identity: "sip_+15550001111", sid: "PA_1" }

  test("call.started lists every sip.h.* attribute without its prefix, and nothing else", () =>
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 })), (headers) => {
        const attributes: Record<string, string> = { "sip.trunkID": "ST_1", "sip.callID": "SCL_1", "lk.other": "x" }
        for (const [name, value] of Object.entries(headers)) attributes[`sip.h.${name}`] = value
        const { data } = callStarted(start, attributes)
        expect(data).toEqual({ startedAt: "2026-01-01T12:00:00.000Z", trunkId: "ST_1", participant: { identity: start.identity, sid: start.sid }, headers })
      })
    ))

  test("call.started without a trunk: trunkId null", () => {
    expect(callStarted(start, {}).data).toMatchObject({ trunkId: null, headers: {} })
  })

  test("call.ended: duration in seconds from the LiveKit timestamps, never negative; the reason or null", () => {
    expect(callEnded(start, start.at + 95_000, "participant_left", "CLIENT_INITIATED").data).toEqual({
      startedAt: "2026-01-01T12:00:00.000Z",
      endedAt: "2026-01-01T12:01:35.000Z",
      durationSeconds: 95,
      endedBy: "participant_left",
      disconnectReason: "CLIENT_INITIATED"
    })
    expect(callEnded(start, start.at - 1_000, "room_finished", undefined).data).toMatchObject({ durationSeconds: 0, disconnectReason: null })
  })

  test("the call's participant is matched by identity, else by sid; anyone else leaving is not the call ending", () => {
    expect(isCallParticipant(start, participantEvent({ identity: "sip_+15550001111", sid: "PA_other" }))).toBe(true)
    expect(isCallParticipant(start, participantEvent({ identity: "agent-1", sid: "PA_1" }))).toBe(false)
    expect(isCallParticipant({ ...start, identity: null }, participantEvent({ sid: "PA_1" }))).toBe(true)
    expect(isCallParticipant({ ...start, identity: null }, participantEvent({ sid: "PA_2" }))).toBe(false)
    expect(isCallParticipant({ ...start, identity: null, sid: null }, participantEvent({ identity: "x", sid: "y" }))).toBe(false)
    expect(isCallParticipant(start, { ...participantEvent({}), participant: undefined })).toBe(false)
  })
})

describe("onPinnedCall: what a pinned call's event does to it", () => {
  const start = { at: 1_000, identity: "sip_+15550001111", sid: "PA_1" }
  const pinned: Pin = { room: "r", destination: { tenant: "t.example", url: "https://t.example/h" }, call: { room: "r", sipCallId: null, from: null, to: null, domain: null }, start }
  const incoming = (event: string, participant?: Partial<NonNullable<LiveKitEvent["participant"]>>) => ({
    event: { ...participantEvent(participant ?? {}), event, participant: participant === undefined ? undefined : participantEvent(participant).participant, createdAtMs: 61_000 },
    receivedAt: 99_000
  })

  test("the call's participant leaving ends the call and keeps the pin; the room finishing ends it and the pin", () => {
    expect(onPinnedCall(incoming("participant_left", { identity: start.identity }), pinned)).toEqual({
      pinChange: { _tag: "End", room: "r", at: 61_000 },
      callEvent: callEnded(start, 61_000, "participant_left", undefined),
      ended: { at: 61_000, by: "participant_left", disconnectReason: null }
    })
    expect(onPinnedCall(incoming("room_finished"), pinned)).toEqual({
      pinChange: { _tag: "Clear", room: "r" },
      callEvent: callEnded(start, 61_000, "room_finished", undefined),
      ended: { at: 61_000, by: "room_finished", disconnectReason: null }
    })
  })

  test("an ended call, or a pin from before call events (no start), ends nothing again; other events only touch the pin", () => {
    // The room finishing still ends the call's record (first wins there, as call.ended does).
    const finished = { at: 61_000, by: "room_finished" as const, disconnectReason: null }
    const untouched = { pinChange: { _tag: "Touch" as const, room: "r" }, callEvent: undefined, ended: undefined }
    expect(onPinnedCall(incoming("room_finished"), { ...pinned, endedAt: 5_000 })).toEqual({ pinChange: { _tag: "Clear", room: "r" }, callEvent: undefined, ended: finished })
    expect(onPinnedCall(incoming("participant_left", { identity: start.identity }), { ...pinned, endedAt: 5_000 })).toEqual(untouched)
    expect(onPinnedCall(incoming("room_finished"), { ...pinned, start: undefined })).toEqual({ pinChange: { _tag: "Clear", room: "r" }, callEvent: undefined, ended: finished })
    expect(onPinnedCall(incoming("participant_left", { identity: "agent-1" }), pinned)).toEqual(untouched)
    expect(onPinnedCall(incoming("track_published", { identity: start.identity }), pinned)).toEqual(untouched)
  })
})
