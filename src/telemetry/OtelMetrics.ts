/**
 * Effect's metrics as OpenTelemetry reads them, for the OTLP export and for
 * /metrics: the router's own families only (Effect's runtime metrics are not
 * part of the contract), each with the unit it is measured in.
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type { MetricData, MetricProducer } from "@opentelemetry/sdk-metrics"
import { Effect } from "effect"

/** `producer`'s metrics of the router, with `unitOf(name)` as each one's unit (Effect's keys carry none). */
export const routerMetrics = (producer: MetricProducer, unitOf: (name: string) => string): MetricProducer => ({
  collect: async (options) => {
    const { resourceMetrics, errors } = await producer.collect(options)
    const scopeMetrics = resourceMetrics.scopeMetrics.map((scope) => ({
      ...scope,
      metrics: scope.metrics
        .filter((metric) => metric.descriptor.name.startsWith("tenant_router_"))
        .map((metric) => ({ ...metric, descriptor: { ...metric.descriptor, unit: unitOf(metric.descriptor.name) } }) as MetricData)
    }))
    return { errors, resourceMetrics: { ...resourceMetrics, scopeMetrics } }
  }
})

/**
 * Renders the router's metrics as Prometheus text through OpenTelemetry's
 * Prometheus exporter, without scope labels, `target_info` or `# UNIT` lines
 * (the names end in their unit already), so the families are exactly the
 * documented ones.
 */
export const makePrometheusText = Effect.map(Effect.provide(Metrics.makeProducer, Resource.layerEmpty), (producer) => {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, withoutTargetInfo: true })
  exporter.setMetricProducer(routerMetrics(producer, () => ""))
  const serializer = new PrometheusSerializer("", false, undefined, true, true)
  return Effect.promise(async () => serializer.serialize((await exporter.collect()).resourceMetrics))
})
