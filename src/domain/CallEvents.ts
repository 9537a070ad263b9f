import type { EndedBy } from "./Call.ts"
import type { CallStart } from "./Delivery.ts"
import type { CallEventType } from "./Hook.ts"
import type { LiveKitEvent } from "./LiveKitEvent.ts"

/**
 * The call events the router derives from LiveKit's: `call.started` from the
 * event that pins the room (its first SIP participant), `call.ended` from the
 * first of that participant leaving and the room finishing. Whether one is
 * sent is the store's decision (see Acceptance.callEvent); these are its fields.
 */

export type { EndedBy } from "./Call.ts"

/** A derived event as the router decides it: its type and the JSON of its `data`. */
export interface CallEvent {
  readonly type: CallEventType
  readonly data: CallStartedData | CallEndedData
}

export interface CallStartedData {
  readonly startedAt: string
  readonly trunkId: string | null
  readonly participant: { readonly identity: string | null; readonly sid: string | null }
  /** Every `sip.h.*` attribute, without the prefix: the SIP headers LiveKit kept. */
  readonly headers: Readonly<Record<string, string>>
}

export interface CallEndedData {
  readonly startedAt: string
  readonly endedAt: string
  readonly durationSeconds: number
  readonly endedBy: EndedBy
  readonly disconnectReason: string | null
}

const HEADER_PREFIX = "sip.h."

const iso = (ms: number) => new Date(ms).toISOString()

/** When LiveKit says the event happened, else when the router received it. */
export const eventTime = (event: LiveKitEvent, receivedAt: number) => event.createdAtMs ?? receivedAt

/** The call's start as the pinning event shows it. */
export const callStartOf = (event: LiveKitEvent, receivedAt: number): CallStart => ({
  at: eventTime(event, receivedAt),
  identity: event.participant?.identity ?? null,
  sid: event.participant?.sid ?? null
})

export const callStarted = (start: CallStart, attributes: Readonly<Record<string, string>>): CallEvent => {
  const headers: Record<string, string> = {}
  for (const [key, value] of Object.entries(attributes)) if (key.startsWith(HEADER_PREFIX)) headers[key.slice(HEADER_PREFIX.length)] = value
  return {
    type: "call.started",
    data: {
      startedAt: iso(start.at),
      trunkId: attributes["sip.trunkID"] || null,
      participant: { identity: start.identity, sid: start.sid },
      headers
    }
  }
}

export const callEnded = (start: CallStart, endedAt: number, endedBy: EndedBy, disconnectReason: string | undefined): CallEvent => ({
  type: "call.ended",
  data: {
    startedAt: iso(start.at),
    endedAt: iso(endedAt),
    // LiveKit's timestamps are whole seconds; a clock step must not make a call last less than nothing.
    durationSeconds: Math.max(0, (endedAt - start.at) / 1000),
    endedBy,
    disconnectReason: disconnectReason ?? null
  }
})

/**
 * Whether a participant_left is the call's own SIP participant leaving, not an
 * agent or a second SIP leg: by identity, else by sid, when the start knew them.
 */
export const isCallParticipant = (start: CallStart, event: LiveKitEvent): boolean => {
  const participant = event.participant
  if (!participant) return false
  if (start.identity !== null) return participant.identity === start.identity
  if (start.sid !== null) return participant.sid === start.sid
  return false
}

/** The webhook-id of a derived event: the triggering LiveKit event's id and the type, stable across retries and instances. */
export const callEventId = (triggerId: string, type: CallEventType) => `${triggerId}.${type}`
