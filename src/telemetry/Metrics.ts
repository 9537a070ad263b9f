import { Effect, Metric, MetricBoundaries, MetricKey, MetricKeyType, MetricLabel } from "effect"

// The metric names and labels are part of the operator contract (see docs/metrics-and-logs.md).

const counter = (name: string, description: string) => MetricKey.counter(name, { description, incremental: true })

export const webhooksReceived = counter("tenant_router_webhooks_received_total", "LiveKit webhooks received, by outcome")
export const deliveries = counter("tenant_router_deliveries_total", "Deliveries that reached a final state, by tenant and outcome")
export const deliveryAttempts = counter(
  "tenant_router_delivery_attempts_total",
  "Delivery attempts, by tenant and result (HTTP status, timeout or network)"
)
export const deliveryDuration = MetricKey.histogram(
  "tenant_router_delivery_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "Duration of one delivery attempt"
)
export const unroutable = counter("tenant_router_unroutable_total", "SIP events that resolved no tenant, by reason")
export const ignored = counter(
  "tenant_router_events_ignored_total",
  "Accepted events not forwarded: not a SIP call and no room pin, or filtered out by the hook"
)
export const fieldsIgnored = counter(
  "tenant_router_webhook_fields_ignored_total",
  "Fields of accepted webhooks that had an unexpected shape and were read as absent, by field"
)
export const retries = counter("tenant_router_retries_total", "Retries scheduled after a failed attempt, by tenant")
export const endToEnd = MetricKey.histogram(
  "tenant_router_end_to_end_seconds",
  MetricBoundaries.exponential({ start: 0.25, factor: 2, count: 16 }),
  "From LiveKit's createdAt to the tenant's 2xx (createdAt has one-second resolution)"
)
export const queueDepth = MetricKey.gauge("tenant_router_queue_depth", { description: "Deliveries pending, in all tenants' queues" })
export const oldestPending = MetricKey.gauge("tenant_router_oldest_pending_seconds", {
  description: "Age of the oldest pending delivery (0 when none)"
})
export const alerts = counter("tenant_router_alerts_total", "Operational alerts queued for the alerts endpoint, by type")
export const circuitOpen = MetricKey.gauge("tenant_router_circuit_open", {
  description: "1 while a tenant's circuit breaker is open or probing, else 0"
})

type Key<In> = MetricKey.MetricKey<MetricKeyType.MetricKeyType<In, any>>

/**
 * One metric per key and label set, built once: Effect's labelled metrics
 * would rebuild and re-hash the label set on every update.
 */
const metrics = new Map<Key<any>, Map<string, Metric.Metric<any, any, any>>>()
const metricOf = <In>(key: Key<In>, labels: Record<string, string>): Metric.Metric<any, In, any> => {
  let byLabels = metrics.get(key)
  if (!byLabels) metrics.set(key, (byLabels = new Map()))
  const id = JSON.stringify(labels)
  let metric = byLabels.get(id)
  if (!metric) {
    const tags = Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v))
    byLabels.set(id, (metric = Metric.fromMetricKey(MetricKey.taggedWithLabels(key, tags))))
  }
  return metric
}

const NO_EXTRA_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []
const apply = <In>(key: Key<In>, value: In, labels: Record<string, string> = {}) => metricOf(key, labels).unsafeUpdate(value, NO_EXTRA_TAGS)
/** Adds one to a counter under the given labels. */
export const count = (key: Key<number>, labels: Record<string, string>) => apply(key, 1, labels)

/** Sets a gauge under the given labels. */
export const set = (key: Key<number>, value: number, labels: Record<string, string> = {}) => apply(key, value, labels)

/** Everything one delivery attempt counts. */
export const countAttempt = (attempt: {
  readonly tenant: string
  /** HTTP status, `timeout`, `network` or `refused`. */
  readonly result: string
  readonly seconds: number
  readonly final: "delivered" | "failed" | undefined
  readonly retried: boolean
  readonly endToEndSeconds: number | undefined
}) => {
  const { tenant } = attempt
  apply(deliveryAttempts, 1, { tenant, result: attempt.result })
  apply(deliveryDuration, attempt.seconds)
  if (attempt.final) apply(deliveries, 1, { tenant, outcome: attempt.final })
  if (attempt.retried) apply(retries, 1, { tenant })
  if (attempt.endToEndSeconds !== undefined) apply(endToEnd, attempt.endToEndSeconds)
}

/** A delivery that expired unsent (older than its hook's maxAge): a final outcome without an attempt. */
export const countExpired = (tenant: string) => apply(deliveries, 1, { tenant, outcome: "expired" })

/** A delivery ended unsent because its tenant is disabled: it is failed (recover replays it). */
export const countDisabled = (tenant: string) => apply(deliveries, 1, { tenant, outcome: "failed" })

/**
 * The /metrics view: the router's metrics in Prometheus text, by
 * OpenTelemetry's Prometheus exporter. Loaded at the first scrape, so a
 * router nobody scrapes never loads it.
 */
export class Metrics extends Effect.Service<Metrics>()("Metrics", {
  effect: Effect.map(
    Effect.cached(Effect.flatMap(Effect.promise(() => import("./OtelMetrics.ts")), (prometheus) => prometheus.makePrometheusText)),
    (text) => ({ render: Effect.flatten(text) })
  )
}) {}
