import { Duration, Schema } from "effect"
import type { NewDelivery, UnroutableEvent } from "./Delivery.ts"
import { DurationString } from "./Duration.ts"
import { TargetUrl, WebhookSecret } from "./Hook.ts"
import { excerpt } from "./Untrusted.ts"

/**
 * Operational alerts: events about the router's own health, sent to one
 * operator endpoint. They are deliveries like any other, to this pseudo-tenant:
 * not a valid host, so no hook can ever have its name.
 */
export const ALERTS_TENANT = "@alerts"

export const AlertType = Schema.Literal("tenant.failing", "tenant.recovered", "tenant.disabled", "delivery.failed", "domain.unroutable").annotations({
  message: (issue) => ({
    message: `expected an alert type (tenant.failing, tenant.recovered, tenant.disabled, delivery.failed, domain.unroutable), got ${typeof issue.actual === "string" ? excerpt(issue.actual) : `a ${typeof issue.actual}`}`,
    override: true
  })
})
export type AlertType = typeof AlertType.Type

// Each key's `description` is its line in the configuration reference (scripts/config-reference.ts).
export const AlertsConfig = Schema.Struct({
  url: Schema.propertySignature(TargetUrl).annotations({
    description: "where the router sends its operational alerts; checked like a hook URL (see [Safe targets](operations.md#safe-targets))"
  }),
  secret: Schema.optional(WebhookSecret).annotations({
    description: "`whsec_…` secret the alerts are signed with; without it `signing.secret` signs them, and is then required"
  }),
  events: Schema.optional(Schema.Array(AlertType)).annotations({
    description:
      "the alert types sent (`tenant.failing`, `tenant.recovered`, `tenant.disabled`, `delivery.failed`, `domain.unroutable`); without it, all of them"
  }),
  unroutableWindow: Schema.optionalWith(DurationString, { default: () => Duration.hours(1), exact: true }).annotations({
    description:
      "at most one `domain.unroutable` per domain and reason in each window of this length (above zero, and no longer than `retention.dedupe`, for which alert ids are remembered)"
  })
})
export type AlertsConfig = typeof AlertsConfig.Type

export interface Alert {
  readonly type: AlertType
  /** Deterministic (see the id builders), so the store's dedupe makes each alert once, across restarts and instances. */
  readonly id: string
  readonly at: number
  readonly data: Readonly<Record<string, unknown>>
}

/**
 * An id part in characters `encodeURIComponent` leaves alone, so the
 * `webhook-id` reads as the id. Anything else (an IPv6 domain's colons) is
 * written `~` and its hex code, and `~` itself too, so distinct parts stay distinct.
 */
const idPart = (text: string) => text.replace(/[^A-Za-z0-9\-_.!*'()]/g, (c) => `~${c.charCodeAt(0).toString(16)}~`)

/** `tenant.failing.<tenant>.<ms>` and its kin: one per failing streak, which `since` (its start) names. */
export const tenantAlertId = (type: "tenant.failing" | "tenant.recovered" | "tenant.disabled", tenant: string, since: number) =>
  `${type}.${idPart(tenant)}.${since}`

/** Per time a delivery was queued: a requeued delivery that fails again alerts again. */
const deliveryFailedId = (deliveryId: number, queuedAt: number) => `delivery.failed.${deliveryId}.${queuedAt}`

const iso = (ms: number) => new Date(ms).toISOString()

/** What the attempt that decided an alert saw: an HTTP status, or an error. */
export interface LastSeen {
  readonly status: number | null
  readonly error: string | null
}

// The alerts and their `data`, as the table in docs/alerts.md lists them.

/** A tenant's circuit opened; `since` is its failing streak's start. */
export const tenantFailing = (tenant: string, since: number, at: number, last: LastSeen): Alert => ({
  type: "tenant.failing",
  id: tenantAlertId("tenant.failing", tenant, since),
  at,
  data: { tenant, since: iso(since), lastStatus: last.status, lastError: last.error }
})

/** The circuit closed again, ending the streak that began at `since`. */
export const tenantRecovered = (tenant: string, since: number, at: number): Alert => ({
  type: "tenant.recovered",
  id: tenantAlertId("tenant.recovered", tenant, since),
  at,
  data: { tenant, downSeconds: (at - since) / 1000 }
})

export const tenantDisabled = (tenant: string, failingSince: number, at: number): Alert => ({
  type: "tenant.disabled",
  id: tenantAlertId("tenant.disabled", tenant, failingSince),
  at,
  data: { tenant, failingSince: iso(failingSince) }
})

export const deliveryFailed = (
  delivery: { readonly id: number; readonly queuedAt: number; readonly tenant: string; readonly eventId: string; readonly eventType: string },
  attempts: number,
  last: LastSeen,
  at: number
): Alert => ({
  type: "delivery.failed",
  id: deliveryFailedId(delivery.id, delivery.queuedAt),
  at,
  data: {
    tenant: delivery.tenant,
    deliveryId: delivery.id,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    attempts,
    lastStatus: last.status,
    lastError: last.error
  }
})

/** The tumbling window `at` falls in: windows start at multiples of their length since the epoch. */
export const windowStart = (at: number, windowMs: number) => Math.floor(at / windowMs) * windowMs

export const unroutableId = (reason: string, domain: string | null, start: number) =>
  `domain.unroutable.${idPart(reason)}.${domain === null ? "~none~" : idPart(domain)}.${start}`

/** The alert as a delivery to the alerts endpoint, or undefined when alerts are off or its type is filtered out. */
export const alertDelivery = (alerts: AlertsConfig | undefined, alert: Alert): NewDelivery | undefined =>
  alerts === undefined || (alerts.events !== undefined && !alerts.events.includes(alert.type))
    ? undefined
    : {
        eventId: alert.id,
        eventType: alert.type,
        tenant: ALERTS_TENANT,
        url: alerts.url,
        // Each alert is its own lane: one that is retried holds back no other.
        room: null,
        domain: null,
        body: JSON.stringify({ type: alert.type, timestamp: new Date(alert.at).toISOString(), data: alert.data }),
        // Not a LiveKit event: kept out of the end-to-end latency.
        eventCreatedAt: null,
        secret: alerts.secret ?? null,
        trace: null,
        call: null
      }

/** A `domain.unroutable` alert that is due, with what marks its window as alerted once it is stored. */
export interface DueAlert {
  readonly at: number
  readonly delivery: NewDelivery
  readonly key: string
  readonly start: number
}

// Beyond this many (domain, reason) keys the memory starts over: the store's dedupe still holds.
const MAX_REMEMBERED = 10_000

/**
 * Which unroutable events raise a `domain.unroutable`: the first per domain
 * and reason in each window. The store's dedupe (by alert id) is what makes
 * it once; this memory of the windows already alerted only keeps a flood
 * from adding a dedupe row per event.
 */
export const unroutableAlerts = (alerts: AlertsConfig | undefined) => {
  const windowMs = alerts === undefined ? 0 : Duration.toMillis(alerts.unroutableWindow)
  const alerted = new Map<string, number>()
  return {
    /** The alerts these events raise, at most one per domain and reason. */
    due: (events: ReadonlyArray<UnroutableEvent>): Array<DueAlert> => {
      if (alerts === undefined || events.length === 0) return []
      const due = new Map<string, DueAlert>()
      for (const event of events) {
        const key = `${event.reason} ${event.domain ?? ""}`
        const start = windowStart(event.at, windowMs)
        if (alerted.get(key) === start || due.has(`${key} ${start}`)) continue
        const delivery = alertDelivery(alerts, {
          type: "domain.unroutable",
          id: unroutableId(event.reason, event.domain, start),
          at: event.at,
          data: { domain: event.domain, reason: event.reason, headers: event.headers, eventId: event.eventId }
        })
        if (delivery === undefined) return []
        due.set(`${key} ${start}`, { at: event.at, delivery, key, start })
      }
      return [...due.values()]
    },
    /** Once stored (or found stored already), their windows are not offered again. */
    stored: (done: ReadonlyArray<DueAlert>) => {
      if (alerted.size + done.length > MAX_REMEMBERED) alerted.clear()
      for (const { key, start } of done) alerted.set(key, start)
    }
  }
}
