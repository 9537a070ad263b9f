import { Effect, Option } from "effect"
import { AppConfig } from "../AppConfig.ts"
import type { CallInfo, Destination, Pin, UnroutableEvent } from "../domain/Delivery.ts"
import { TenantConflict, type StoreUnavailable, type Unroutable } from "../domain/Errors.ts"
import { callKeyOf, type CallChange, type CallIdentity, type EndedBy, type UnroutableReason } from "../domain/Call.ts"
import { normaliseE164, type Country } from "../domain/PhoneNumber.ts"
import { callEnded, callStarted, callStartOf, eventTime, isCallParticipant, type CallEvent } from "../domain/CallEvents.ts"
import { wantsEvent, type ActiveHook } from "../domain/Hook.ts"
import { sipAttributesOf, type LiveKitEvent } from "../domain/LiveKitEvent.ts"
import { HookTable, type Table } from "../hooks/HookTable.ts"
import { EventStore } from "../store/EventStore.ts"
import type { PinChange } from "../store/Store.ts"
import { decideSip, sipRules, type SipDecision } from "./SipDecision.ts"


/** What an event says about its call's record (see CallChange): who the call is, when it started, how it ended. */
export interface CallFacts {
  /** The call (room instance) the event belongs to; none for an event of no room. */
  readonly callKey?: string | undefined
  readonly identity?: CallIdentity | undefined
  readonly startedAt?: number | undefined
  readonly ended?: CallChange["ended"]
}

/** The event belongs to a tenant. `forward` is false when the hook's event filter excludes it. */
export interface Routed extends CallFacts {
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
export interface Unrouted extends CallFacts {
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
const headersSeen = (attributes: Readonly<Record<string, string>>) => ({
  xToIp: seen(attributes, "sip.h.x-to-ip"),
  to: seen(attributes, "sip.h.to"),
  dialled: seen(attributes, "sip.trunkPhoneNumber")
})

/** A number as a call's record and envelope keep it: E.164 when it reads as one, else as sent (cut short). */
const numberOf = (attributes: Readonly<Record<string, string>> | undefined, key: string, country: Country | undefined) => {
  const raw = attr(attributes, key)
  return raw === null ? null : Option.getOrElse(normaliseE164(raw, country), () => raw.slice(0, MAX_SEEN))
}

/** Why an event reached no tenant, as records and metrics name it. */
export const REASONS = {
  MissingHeader: "missing_header",
  MalformedHeader: "malformed_header",
  UnknownDomain: "unknown_domain",
  TenantConflict: "tenant_conflict"
} as const satisfies Record<Unroutable["_tag"], UnroutableReason>

/** Whether the event is about the pinned call's own SIP participant (its later events stay with the call, whatever the table says now). */
const isCallParticipantOf = (pin: Pin, event: LiveKitEvent) => pin.start !== undefined && isCallParticipant(pin.start, event)

/** What the envelope says of the call: its numbers in E.164 when they read as numbers (the event in `data` keeps them as sent). */
const callInfo = (room: string | undefined, attributes: Readonly<Record<string, string>> | undefined, domain: string | null, country: Country | undefined): CallInfo => ({
  room: room ?? null,
  sipCallId: attr(attributes, "sip.callID"),
  from: numberOf(attributes, "sip.phoneNumber", country),
  to: numberOf(attributes, "sip.trunkPhoneNumber", country),
  domain
})

const destinationOf = (hook: ActiveHook): Destination => ({ tenant: hook.host, url: hook.url, events: hook.events, secret: hook.secret })


/** An event the router was sent, and when. */
export interface Incoming {
  readonly event: LiveKitEvent
  readonly receivedAt: number
}


/** How a participant's leaving ends a call, by the event LiveKit sent. */
const LEAVING: Readonly<Record<string, EndedBy>> = {
  participant_left: "participant_left",
  // Sent instead of participant_left when the participant's connection fails.
  participant_connection_aborted: "participant_connection_aborted"
}

/**
 * What a pinned call's event does to the call: the room finishing ends the pin; the call's own
 * SIP participant leaving (or its connection aborting) ends the call but keeps the pin (the room's
 * later events still route). Either ends a call not yet ended (call.ended); a pin from before call
 * events has no start, and no end.
 */
export const onPinnedCall = (
  { event, receivedAt }: Incoming,
  pin: Pin
): { readonly pinChange: PinChange; readonly callEvent: CallEvent | undefined; readonly ended: CallChange["ended"] } => {
  const open = pin.start !== undefined && pin.endedAt === undefined ? pin.start : undefined
  const at = eventTime(event, receivedAt)
  if (event.event === "room_finished") {
    return {
      pinChange: { _tag: "Clear", room: pin.room },
      callEvent: open && callEnded(open, at, "room_finished", undefined),
      ended: { at, by: "room_finished", disconnectReason: null }
    }
  }
  const leaving = LEAVING[event.event]
  if (open && leaving !== undefined && isCallParticipant(open, event)) {
    const reason = event.participant?.disconnectReason
    return {
      pinChange: { _tag: "End", room: pin.room, at },
      callEvent: callEnded(open, at, leaving, reason),
      ended: { at, by: leaving, disconnectReason: reason ?? null }
    }
  }
  return { pinChange: { _tag: "Touch", room: pin.room }, callEvent: undefined, ended: undefined }
}

/** A pin of another instance of the room's name: that room is gone (its room_finished was lost), and this is a new call. */
const isStale = (pin: Pin, event: LiveKitEvent) => pin.roomSid !== undefined && event.roomSid !== undefined && pin.roomSid !== event.roomSid

const SIP_PREFIX = "sip."
const sipOf = (attributes: Readonly<Record<string, string>>) => {
  const sip: Record<string, string> = {}
  for (const key in attributes) if (key.startsWith(SIP_PREFIX)) sip[key] = attributes[key]!
  return sip
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
    const rules = sipRules(config)
    const country = config.defaultCountry

    /** Who a SIP call is, as its record keeps it: the numbers as the envelope has them. */
    const identityOf = (attributes: Readonly<Record<string, string>>, decision: SipDecision, call: CallInfo): CallIdentity => ({
      tenant: decision.hook?.host ?? null,
      domain: decision.domain,
      from: call.from,
      to: call.to,
      sipCallId: attr(attributes, "sip.callID"),
      routing: { rule: decision.rule, pattern: decision.pattern, source: decision.source, reason: decision.reason ? REASONS[decision.reason._tag] : null },
      sip: sipOf(attributes)
    })

    /** The routing of an event of a pinned room. Another tenant's caller in the room goes nowhere: never to the room's tenant. */
    const routePinned = (incoming: Incoming, pin: Pin, table: Table): Routing => {
      const { event } = incoming
      const { destination, call } = pin
      const attributes = sipAttributesOf(event)
      const own = attributes && !isCallParticipantOf(pin, event) ? decideSip(attributes, table, rules) : undefined
      if (own?.hook !== undefined && own.hook.host !== destination.tenant) {
        const reason = new TenantConflict({ domain: own.domain ?? own.pattern ?? "", tenant: own.hook.host, roomTenant: destination.tenant })
        const callKey = callKeyOf(pin.room, event.roomSid ?? pin.roomSid)
        return { _tag: "Unrouted", reason, call: callInfo(event.room, attributes, own.domain, country), headers: headersSeen(attributes!), callKey }
      }
      const { pinChange, callEvent, ended } = onPinnedCall(incoming, pin)
      return {
        _tag: "Routed",
        callKey: callKeyOf(pin.room, event.roomSid ?? pin.roomSid),
        destination,
        call,
        pinChange,
        forward: wantsEvent(destination.events, event.event),
        callEvent: callEvent !== undefined && wantsEvent(destination.events, callEvent.type) ? callEvent : undefined,
        ended
      } satisfies Routed
    }

    /** The routing of an event, given its room's pin and the table in force: a pure decision. */
    const route = (incoming: Incoming, pin: Pin | undefined, table: Table): Routing => {
      const { event } = incoming
      const room = event.room
      if (pin !== undefined && !isStale(pin, event)) return routePinned(incoming, pin, table)
      const callKey = room === undefined ? undefined : callKeyOf(room, event.roomSid)

      // An unpinned room ends when it finishes; its one SIP participant leaving ends an unrouted call too.
      const at = eventTime(event, incoming.receivedAt)
      const leaving = LEAVING[event.event]
      const attributes = sipAttributesOf(event)
      const ended: CallChange["ended"] =
        event.event === "room_finished"
          ? { at, by: "room_finished", disconnectReason: null }
          : leaving !== undefined && attributes !== undefined
            ? { at, by: leaving, disconnectReason: event.participant?.disconnectReason ?? null }
            : undefined
      if (attributes === undefined) {
        return { _tag: "Unrouted", reason: undefined, call: callInfo(room, undefined, null, country), headers: undefined, callKey, ended } satisfies Unrouted
      }

      const decision = decideSip(attributes, table, rules)
      const call = callInfo(room, attributes, decision.domain, country)
      const identity = identityOf(attributes, decision, call)
      const startedAt = event.event === "participant_joined" ? at : undefined
      const hook = decision.hook
      if (!hook) return { _tag: "Unrouted", reason: decision.reason, call, headers: headersSeen(attributes), callKey, identity, startedAt, ended } satisfies Unrouted
      const destination = destinationOf(hook)
      // The first resolved SIP event of a room pins it. A join starts the call; a room first seen at a
      // leave (its join was missed, or it came after room_finished) is pinned without a call to end.
      const start = event.event === "participant_joined" ? callStartOf(event, incoming.receivedAt) : undefined
      return {
        _tag: "Routed",
        destination,
        call,
        pinChange:
          room === undefined || event.event === "room_finished" ? undefined : { _tag: "Set", pin: { room, roomSid: event.roomSid, destination, call, start } },
        forward: wantsEvent(destination.events, event.event),
        // Built only for a hook that lists it: most do not, and the pinning event is on the hot path.
        callEvent: room !== undefined && start !== undefined && wantsEvent(destination.events, "call.started") ? callStarted(start, attributes) : undefined,
        callKey,
        identity,
        startedAt,
        ended
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
          const routing = route(item, room === undefined ? undefined : pins.get(room), table)
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
