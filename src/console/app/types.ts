/**
 * The admin API's answers as the console reads them, written by hand after
 * docs/admin-api.md (the server's schemas live in src/domain; importing them
 * would pull Effect's types into the browser build's type check).
 */

export interface ApiError {
  readonly code: string
  readonly message: string
}

export interface Session {
  readonly role: "operator" | "tenant"
  /** The tenant's hosts (and wildcards); empty for an operator. */
  readonly hosts: ReadonlyArray<string>
  readonly expiresAt: string
}

export interface Hook {
  readonly host: string
  readonly url: string
  readonly events: ReadonlyArray<string> | null
  readonly rateLimit: string | null
  readonly maxAge: string | null
  readonly source: "file" | "http" | "api"
  readonly hasOwnSecret: boolean
  readonly headers: ReadonlyArray<string>
  readonly hasAuth: boolean
  readonly disabled: boolean
  readonly disabledAt: string | null
}

export interface SavedHook extends Hook {
  readonly secret?: string
  readonly cleared?: ReadonlyArray<string>
}

export type HookAuth = { readonly bearer: string } | { readonly basic: { readonly username: string; readonly password: string } }

/** A PUT body (every field) or a PATCH body (null clears a field). */
export interface HookChanges {
  readonly url?: string
  readonly events?: ReadonlyArray<string> | null
  readonly rateLimit?: string | null
  readonly maxAge?: string | null
  readonly headers?: Record<string, string> | null
  readonly auth?: HookAuth | null
}

export interface Rotation {
  readonly host: string
  readonly secret: string
  readonly previousSecretExpiresAt: string
}

export interface TestResult {
  readonly eventId: string
  readonly delivered: boolean
  readonly status: number | null
  readonly error: string | null
  readonly latencyMs: number
}

export interface NumberRoute {
  readonly number: string
  readonly host: string
  readonly source: "file" | "http" | "api"
}

export const DELIVERY_STATUSES = ["pending", "failed", "delivered", "expired"] as const
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number]

export interface Delivery {
  readonly id: number
  readonly eventId: string
  readonly type: string
  readonly tenant: string
  readonly url: string
  readonly room: string | null
  readonly status: DeliveryStatus
  readonly attempts: number
  readonly lastStatus: number | null
  readonly lastError: string | null
  readonly nextAttemptAt: string | null
  readonly createdAt: string
  readonly updatedAt: string
}

export interface Attempt {
  readonly attempt: number
  readonly at: string
  readonly status: number | null
  readonly error: string | null
  readonly latencyMs: number
}

export interface DeliveryDetail extends Delivery {
  readonly history: ReadonlyArray<Attempt>
}

export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}

export const CALL_STATUSES = ["active", "ended", "unrouted"] as const
export type CallStatus = (typeof CALL_STATUSES)[number]

export interface Call {
  readonly room: string
  readonly roomSid: string | null
  readonly tenant: string | null
  readonly status: CallStatus
  readonly domain: string | null
  readonly from: string | null
  readonly to: string | null
  readonly sipCallId: string | null
  readonly startedAt: string | null
  readonly endedAt: string | null
  readonly durationSeconds: number | null
  readonly endedBy: string | null
  readonly disconnectReason: string | null
  readonly routing: { readonly rule: string | null; readonly pattern: string | null; readonly source: string | null; readonly reason: string | null }
  readonly deliveries: Readonly<Record<DeliveryStatus, number>>
}

interface OfDelivery {
  readonly at: string
  readonly deliveryId: number
  readonly eventId: string
  readonly eventType: string
}

export type TimelineEntry =
  | { readonly kind: "event"; readonly at: string; readonly eventId: string; readonly eventType: string; readonly createdAt: string | null; readonly lagMs: number | null }
  | (OfDelivery & { readonly kind: "attempt"; readonly attempt: number; readonly status: number | null; readonly error: string | null; readonly latencyMs: number })
  | (OfDelivery & { readonly kind: "expired" | "disabled" })

export interface CallDetail extends Call {
  readonly sip: Readonly<Record<string, string>> | null
  readonly timeline: ReadonlyArray<TimelineEntry>
}

export interface UnroutableDomain {
  readonly domain: string | null
  readonly reason: string
  readonly count: number
  readonly firstSeen: string
  readonly lastSeen: string
  readonly sampleEventId: string
  readonly hints: ReadonlyArray<string>
}

export interface Overview {
  readonly from: string
  readonly to: string
  readonly minutes: ReadonlyArray<{ readonly at: string; readonly succeeded: number; readonly failed: number }>
  readonly successRate: number | null
  readonly p99Ms: number | null
  readonly queue: { readonly pending: number; readonly oldestPendingAt: string | null }
  readonly tenants: { readonly failing: ReadonlyArray<string>; readonly disabled: ReadonlyArray<string> }
  readonly unroutable: ReadonlyArray<{ readonly domain: string; readonly count: number }>
}

/** One change of a delivery, as `GET /v1/stream` sends it. */
export interface StreamChange {
  readonly deliveryId: number
  readonly tenant: string
  readonly eventId: string
  readonly eventType: string
  readonly room: string | null
  readonly status: DeliveryStatus
  readonly attempts: number
  readonly at: string
}
