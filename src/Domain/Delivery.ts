import type { EventName } from "./Hook.ts"

/** Where a call's events go: fixed when the room is pinned, so mid-call hook edits do not move a call. */
export interface Destination {
  /** The hook's host pattern, which is also the tenant's name in logs and metrics. */
  readonly tenant: string
  readonly url: string
  /** Event filter in force when the room was pinned; undefined means all events. */
  readonly events?: ReadonlyArray<EventName> | undefined
}

/** What the tenant is told about the call, in every forwarded event. */
export interface CallInfo {
  readonly room: string | null
  readonly sipCallId: string | null
  readonly from: string | null
  readonly to: string | null
  readonly domain: string | null
}

export interface Pin {
  readonly room: string
  readonly destination: Destination
  readonly call: CallInfo
}

export type DeliveryStatus = "pending" | "delivered" | "failed"

/** A forwarded event as written at acceptance time; the body is final, the signature is made per attempt. */
export interface NewDelivery {
  readonly eventId: string
  readonly eventType: string
  readonly tenant: string
  readonly url: string
  readonly domain: string | null
  readonly body: string
}

export interface Delivery extends NewDelivery {
  readonly id: number
  readonly status: DeliveryStatus
  readonly attempts: number
  readonly lastStatus: number | null
  readonly lastError: string | null
  readonly nextAttemptAt: number
}

/** The outcome of one attempt, as recorded. */
export interface AttemptRecord {
  readonly status: number | null
  readonly error: string | null
  /** Set when the delivery is finished; otherwise the delivery stays pending. */
  readonly final: "delivered" | "failed" | undefined
  readonly nextAttemptAt: number
}
