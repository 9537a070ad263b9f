import { Effect, Option } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { CallInfo, Destination, Pin, UnroutableEvent } from "../domain/Delivery.ts"
import type { StoreUnavailable, Unroutable } from "../domain/Errors.ts"
import { callEnded, callStarted, callStartOf, eventTime, isCallParticipant, type CallEvent } from "../domain/CallEvents.ts"
import { wantsEvent, type ActiveHook } from "../domain/Hook.ts"
import { sipAttributesOf, type LiveKitEvent } from "../domain/LiveKitEvent.ts"
import { HookTable, type Table } from "../hooks/HookTable.ts"
import { EventStore } from "../store/EventStore.ts"
import type { PinChange } from "../store/Store.ts"
import { decideSip, sharedDomainMatcher, type Rule, type Source } from "./SipDecision.ts"

/** How a call found its tenant, for its record: the rule, the hook host or number that matched, and the attribute it came from. */
export interface RoutingRule {
  readonly rule: Rule
  readonly pattern: string
  readonly source: Source
}

/** The event belongs to a tenant. `forward` is false when the hook's event filter excludes it. */
export interface Routed {
  readonly _tag: "Routed"
  readonly destination: Destination
  readonly call: CallInfo
  readonly pinChange: PinChange | undefined
  readonly forward: boolean
  /** The call event this one starts or ends the call with, when the hook wants it (the store has the last word). */
  readonly callEvent: CallEvent | undefined
}

/**
 * No tenant. `reason` is set for SIP events (operators need to see why) and
 * undefined for events of rooms that never had a SIP participant.
 */
export interface Unrouted {
  readonly _tag: "Unrouted"
  readonly reason: Unroutable | undefined
  readonly call: CallInfo
  /** What the SIP edge sent, so operators can see why nothing matched. */
  readonly headers: UnroutableEvent["headers"] | undefined
}

/** Resolution never fails for routing reasons: those are values (fail open). Only the store can fail. */
export type Routing = Routed | Unrouted

const attr = (attributes: Readonly<Record<string, string>> | undefined, key: string) => attributes?.[key] || null

// Header values are caller-controlled: keep what an operator needs, not whatever size was sent.
const MAX_SEEN = 256
const seen = (attributes: Readonly<Record<string, string>>, key: string) => attr(attributes, key)?.slice(0, MAX_SEEN) ?? null

const callInfo = (room: string | undefined, attributes: Readonly<Record<string, string>> | undefined, domain: string | null): CallInfo => ({
  room: room ?? null,
  sipCallId: attr(attributes, "sip.callID"),
  from: attr(attributes, "sip.phoneNumber"),
  to: attr(attributes, "sip.trunkPhoneNumber"),
  domain
})

const destinationOf = (hook: ActiveHook): Destination => ({ tenant: hook.host, url: hook.url, events: hook.events, secret: hook.secret })


/** An event the router was sent, and when. */
export interface Incoming {
  readonly event: LiveKitEvent
  readonly receivedAt: number
}


/**
 * What a pinned call's event does to the call: the room finishing ends the pin; the call's own
 * SIP participant leaving ends the call but keeps the pin (the room's later events still route).
 * Either ends a call not yet ended (call.ended); a pin from before call events has no start, and no end.
 */
export const onPinnedCall = ({ event, receivedAt }: Incoming, pin: Pin): { readonly pinChange: PinChange; readonly callEvent: CallEvent | undefined } => {
  const open = pin.start !== undefined && pin.endedAt === undefined ? pin.start : undefined
  const at = eventTime(event, receivedAt)
  if (event.event === "room_finished") {
    return { pinChange: { _tag: "Clear", room: pin.room }, callEvent: open && callEnded(open, at, "room_finished", undefined) }
  }
  if (open && event.event === "participant_left" && isCallParticipant(open, event)) {
    return { pinChange: { _tag: "End", room: pin.room, at }, callEvent: callEnded(open, at, "participant_left", event.participant?.disconnectReason) }
  }
  return { pinChange: { _tag: "Touch", room: pin.room }, callEvent: undefined }
}

/**
 * Finds the tenant for an event: by the room's pin if the call is already
 * pinned, else by the domain the SIP edge preserved, else (shared domains) by
 * the dialled number. The first resolved SIP event pins the room and starts the
 * call; the call ends when its SIP participant leaves or the room finishes
 * (which also ends the pin). A hook that lists call.started / call.ended gets
 * them, in the call's lane right after the event that caused them.
 */
export class Router extends Effect.Service<Router>()("Router", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const hooks = yield* HookTable
    const store = yield* EventStore
    const isShared = sharedDomainMatcher(config.sharedDomains)

    /** The routing of an event, given its room's pin and the table in force: a pure decision. */
    const route = (incoming: Incoming, pin: Option.Option<Pin>, table: Table): Routing => {
      const { event } = incoming
      const room = event.room
      if (Option.isSome(pin)) {
        const { destination, call } = pin.value
        const { pinChange, callEvent } = onPinnedCall(incoming, pin.value)
        return {
          _tag: "Routed",
          destination,
          call,
          pinChange,
          forward: wantsEvent(destination.events, event.event),
          callEvent: callEvent !== undefined && wantsEvent(destination.events, callEvent.type) ? callEvent : undefined
        } satisfies Routed
      }

      const attributes = sipAttributesOf(event)
      if (attributes === undefined) {
        return { _tag: "Unrouted", reason: undefined, call: callInfo(room, undefined, null), headers: undefined } satisfies Unrouted
      }

      const { domain, hook, reason } = decideSip(attributes, table, isShared)
      const call = callInfo(room, attributes, domain)
      if (!hook) {
        const headers = { xToIp: seen(attributes, "sip.h.x-to-ip"), to: seen(attributes, "sip.h.to"), dialled: seen(attributes, "sip.trunkPhoneNumber") }
        return { _tag: "Unrouted", reason, call, headers } satisfies Unrouted
      }
      const destination = destinationOf(hook)
      // The first resolved SIP event of a room pins it. A join starts the call; a room first seen at a
      // leave (its join was missed, or it came after room_finished) is pinned without a call to end.
      const start = event.event === "participant_joined" ? callStartOf(event, incoming.receivedAt) : undefined
      return {
        _tag: "Routed",
        destination,
        call,
        pinChange: room === undefined || event.event === "room_finished" ? undefined : { _tag: "Set", pin: { room, destination, call, start } },
        forward: wantsEvent(destination.events, event.event),
        // Built only for a hook that lists it: most do not, and the pinning event is on the hot path.
        callEvent: room !== undefined && start !== undefined && wantsEvent(destination.events, "call.started") ? callStarted(start, attributes) : undefined
      } satisfies Routed
    }

    /**
     * The routing of a batch of events: the pins of all their rooms in one
     * read, the rest decided in memory, in order, each event seeing the pins the
     * ones before it set, ended or cleared.
     */
    const resolveAll = (incoming: ReadonlyArray<Incoming>): Effect.Effect<ReadonlyArray<Routing>, StoreUnavailable> => {
      const rooms = [...new Set(incoming.flatMap(({ event }) => (event.room === undefined ? [] : [event.room])))]
      return Effect.map(store.pinsOf(rooms), (stored) => {
        const pins = new Map<string, Pin | undefined>(stored)
        const table = hooks.inForce()
        return incoming.map((item) => {
          const room = item.event.room
          const routing = route(item, Option.fromNullable(room === undefined ? undefined : pins.get(room)), table)
          const change = routing._tag === "Routed" ? routing.pinChange : undefined
          if (change?._tag === "Set") pins.set(change.pin.room, change.pin)
          else if (change?._tag === "End") pins.set(change.room, { ...pins.get(change.room)!, endedAt: change.at })
          else if (change?._tag === "Clear") pins.set(change.room, undefined)
          return routing
        })
      })
    }

    return { resolveAll }
  })
}) {}
