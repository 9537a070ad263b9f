import { Effect, Metric, MetricBoundaries, MetricLabel, MetricState } from "effect"
import type { MetricPair } from "effect"

// The metric names and labels are part of the operator contract (see README).

export const webhooksReceived = Metric.counter("tenant_router_webhooks_received_total", {
  description: "LiveKit webhooks received, by outcome",
  incremental: true
})
export const deliveries = Metric.counter("tenant_router_deliveries_total", {
  description: "Deliveries that reached a final state, by tenant and outcome",
  incremental: true
})
export const deliveryAttempts = Metric.counter("tenant_router_delivery_attempts_total", {
  description: "Delivery attempts, by tenant and result (HTTP status, timeout or network)",
  incremental: true
})
export const deliveryDuration = Metric.histogram(
  "tenant_router_delivery_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "Duration of one delivery attempt"
)
export const unroutable = Metric.counter("tenant_router_unroutable_total", {
  description: "SIP events that resolved no tenant, by reason",
  incremental: true
})
export const ignored = Metric.counter("tenant_router_events_ignored_total", {
  description: "Accepted events not forwarded: not a SIP call and no room pin, or filtered out by the hook",
  incremental: true
})

export const retries = Metric.counter("tenant_router_retries_total", {
  description: "Retries scheduled after a failed attempt, by tenant",
  incremental: true
})
export const endToEnd = Metric.histogram(
  "tenant_router_end_to_end_seconds",
  MetricBoundaries.exponential({ start: 0.25, factor: 2, count: 16 }),
  "From LiveKit's createdAt to the tenant's 2xx (createdAt has one-second resolution)"
)
export const queueDepth = Metric.gauge("tenant_router_queue_depth", { description: "Deliveries pending, in all tenants' queues" })
export const oldestPending = Metric.gauge("tenant_router_oldest_pending_seconds", {
  description: "Age of the oldest pending delivery (0 when none)"
})
export const circuitOpen = Metric.gauge("tenant_router_circuit_open", {
  description: "1 while a tenant's circuit breaker is open or probing, else 0"
})

// A labelled metric is a new object with hashed labels: build each label set once, not per event.
const labelled = new WeakMap<Metric.Metric<any, any, any>, Map<string, Metric.Metric<any, any, any>>>()

const withLabels = <M extends Metric.Metric<any, any, any>>(metric: M, labels: Record<string, string>): M => {
  let byLabels = labelled.get(metric)
  if (!byLabels) labelled.set(metric, (byLabels = new Map()))
  const key = JSON.stringify(labels)
  let tagged = byLabels.get(key)
  if (!tagged) {
    tagged = Metric.taggedWithLabels(metric, Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v)))
    byLabels.set(key, tagged)
  }
  return tagged as M
}

/** Adds one to a counter under the given labels. */
export const increment = (counter: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
  Metric.increment(withLabels(counter, labels))

/** Sets a gauge under the given labels. */
export const setGauge = (gauge: Metric.Metric.Gauge<number>, value: number, labels: Record<string, string> = {}) =>
  Metric.set(withLabels(gauge, labels), value)

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

const labelText = (labels: ReadonlyArray<readonly [string, string]>) =>
  labels.length === 0 ? "" : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`

const sampleLines = (name: string, labels: ReadonlyArray<readonly [string, string]>, state: unknown): string[] => {
  if (MetricState.isCounterState(state)) return [`${name}${labelText(labels)} ${state.count}`]
  if (MetricState.isGaugeState(state)) return [`${name}${labelText(labels)} ${state.value}`]
  if (MetricState.isHistogramState(state)) {
    return [
      ...state.buckets.map(
        ([bound, count]) => `${name}_bucket${labelText([...labels, ["le", Number.isFinite(bound) ? String(bound) : "+Inf"]])} ${count}`
      ),
      `${name}_sum${labelText(labels)} ${state.sum}`,
      `${name}_count${labelText(labels)} ${state.count}`
    ]
  }
  return []
}

const typeOf = (state: unknown) =>
  MetricState.isCounterState(state) ? "counter" : MetricState.isGaugeState(state) ? "gauge" : "histogram"

/** Renders Effect metric snapshots in the Prometheus text exposition format. */
export const renderPrometheus = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { help: string | undefined; type: string; lines: string[] }>()
  for (const pair of pairs) {
    const { name, description, tags } = pair.metricKey
    // Effect's own runtime metrics are not part of our contract.
    if (!name.startsWith("tenant_router_")) continue
    const state = pair.metricState
    const family = families.get(name) ?? { help: description._tag === "Some" ? description.value : undefined, type: typeOf(state), lines: [] }
    const labels = [...tags].sort((a, b) => a.key.localeCompare(b.key)).map((t) => [t.key, t.value] as const)
    family.lines.push(...sampleLines(name, labels, state))
    families.set(name, family)
  }
  return [...families.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([name, f]) => [...(f.help ? [`# HELP ${name} ${f.help}`] : []), `# TYPE ${name} ${f.type}`, ...f.lines])
    .join("\n")
    .concat("\n")
}

/** The /metrics view over every metric in this process. */
export class Metrics extends Effect.Service<Metrics>()("Metrics", {
  succeed: { render: Effect.map(Metric.snapshot, renderPrometheus) }
}) {}
