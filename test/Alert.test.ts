import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Duration, Redacted } from "effect"
import { alertDelivery, unroutableAlerts, unroutableId, tenantAlertId, windowStart, type AlertsConfig } from "../src/domain/Alert.ts"
import type { UnroutableEvent } from "../src/domain/Delivery.ts"
import { webhookId } from "../src/delivery/WebhookSender.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const config: AlertsConfig = { url: "https://ops.example.com/alerts", unroutableWindow: Duration.minutes(10) }
const TEN_MINUTES = 600_000

const unroutable = (at: number, domain: string | null, eventId = `EV_${at}`): UnroutableEvent => ({
  at,
  eventId,
  eventType: "participant_joined",
  room: "room-1",
  headers: { xToIp: domain, to: null, dialled: "+15557654321" },
  domain,
  reason: domain === null ? "missing_header" : "unknown_domain",
  call: "RM_1"
})

describe("alert ids", () => {
  test("are what encodeURIComponent leaves alone, so the webhook-id is the id", () => {
    expect(tenantAlertId("tenant.failing", "*.citydental.com", 1_767_225_600_000)).toBe("tenant.failing.*.citydental.com.1767225600000")
    const v6 = unroutableId("unknown_domain", "2001:db8::1", 0)
    expect(v6).toBe("domain.unroutable.unknown_domain.2001~3a~db8~3a~~3a~1.0")
    expect(webhookId(v6)).toBe(v6)
    // `~` is escaped too, so an escaped name never equals another name as written.
    expect(unroutableId("unknown_domain", "a~3a~b", 0)).not.toBe(unroutableId("unknown_domain", "a:b", 0))
    expect(unroutableId("missing_header", null, 0)).toBe("domain.unroutable.missing_header.~none~.0")
    // A domain that happens to be called "none" is not the missing one.
    expect(unroutableId("missing_header", "none", 0)).not.toBe(unroutableId("missing_header", null, 0))
  })

  test("windows tumble from the epoch", () => {
    expect(windowStart(TEN_MINUTES * 3 + 1, TEN_MINUTES)).toBe(TEN_MINUTES * 3)
    expect(windowStart(TEN_MINUTES * 4 - 1, TEN_MINUTES)).toBe(TEN_MINUTES * 3)
    expect(windowStart(TEN_MINUTES * 4, TEN_MINUTES)).toBe(TEN_MINUTES * 4)
  })
})

describe("alertDelivery", () => {
  const alert = { type: "tenant.recovered" as const, id: "tenant.recovered.a.example.com.5", at: Date.UTC(2026, 0, 1), data: { tenant: "a.example.com", downSeconds: 1.5 } }

  test("is a delivery to @alerts, in its own lane, with the envelope as its body", () => {
    expect(alertDelivery(config, alert)).toEqual({
      eventId: "tenant.recovered.a.example.com.5",
      eventType: "tenant.recovered",
      tenant: "@alerts",
      url: "https://ops.example.com/alerts",
      room: null,
      domain: null,
      body: '{"type":"tenant.recovered","timestamp":"2026-01-01T00:00:00.000Z","data":{"tenant":"a.example.com","downSeconds":1.5}}',
      eventCreatedAt: null,
      secret: null,
      trace: null,
      call: null
    })
  })

  test("none without alerts, or for a type the filter leaves out; alerts.secret is kept with it", () => {
    expect(alertDelivery(undefined, alert)).toBeUndefined()
    expect(alertDelivery({ ...config, events: ["delivery.failed"] }, alert)).toBeUndefined()
    expect(alertDelivery({ ...config, events: ["tenant.recovered"], secret: Redacted.make("whsec_x") as never }, alert)?.secret?.pipe(Redacted.value)).toBe("whsec_x")
  })
})

describe("unroutableAlerts", () => {
  const start = TEN_MINUTES * 1000

  test("one per domain and reason per window, in a batch and across batches once stored", () => {
    const alerts = unroutableAlerts(config)
    const due = alerts.due([unroutable(start + 1, "x.example.net", "EV_first"), unroutable(start + 2, "x.example.net"), unroutable(start + 3, "y.example.net"), unroutable(start + 4, null)])
    expect(due.map((d) => d.delivery.eventId)).toEqual([
      `domain.unroutable.unknown_domain.x.example.net.${start}`,
      `domain.unroutable.unknown_domain.y.example.net.${start}`,
      `domain.unroutable.missing_header.~none~.${start}`
    ])
    expect(JSON.parse(due[0]!.delivery.body).data.eventId).toBe("EV_first")
    // Not stored yet (the write may fail): offered again.
    expect(alerts.due([unroutable(start + 5, "x.example.net")])).toHaveLength(1)
    alerts.stored(due)
    expect(alerts.due([unroutable(start + TEN_MINUTES - 1, "x.example.net")])).toEqual([])
    // The next window alerts again.
    expect(alerts.due([unroutable(start + TEN_MINUTES, "x.example.net")]).map((d) => d.delivery.eventId)).toEqual([
      `domain.unroutable.unknown_domain.x.example.net.${start + TEN_MINUTES}`
    ])
  })

  test("nothing without alerts or with domain.unroutable filtered out", () => {
    expect(unroutableAlerts(undefined).due([unroutable(start, "x.example.net")])).toEqual([])
    expect(unroutableAlerts({ ...config, events: ["tenant.failing"] }).due([unroutable(start, "x.example.net")])).toEqual([])
  })
})
