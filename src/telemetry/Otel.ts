/**
 * The OpenTelemetry side of `Tracing`, imported only when an OTLP endpoint is
 * configured: one tracer provider serves the hot path's plain-code spans and,
 * through @effect/opentelemetry, every Effect span; Effect's metrics are read
 * by a periodic OTLP reader. Both export over OTLP/HTTP.
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import * as EffectOtel from "@effect/opentelemetry/Tracer"
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context as OtelContext, type Span, type SpanContext, type Tracer } from "@opentelemetry/api"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Duration, Effect, Layer, Option, type Tracer as EffectTracer } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import { routerMetrics } from "./OtelMetrics.ts"
import * as Traceparent from "./Traceparent.ts"
import { Tracing, type AttemptSpan, type AttemptTarget, type Phase, type SpanIds, type Spans, type WebhookSpan } from "./Tracing.ts"

type TelemetryConfig = RouterConfig["telemetry"]

/** An OpenTelemetry span's traceparent; only the sampled flag is ever set. */
const traceparentOf = ({ traceId, spanId, traceFlags }: SpanContext) =>
  Traceparent.format({ traceId, spanId, sampled: (traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED })

/** The span a stored or given traceparent names, as OpenTelemetry's parent. */
const remoteContext = ({ traceId, spanId, sampled }: EffectTracer.ExternalSpan): SpanContext => ({
  traceId,
  spanId,
  traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
  isRemote: true
})

const idsOf = ({ traceId, spanId }: SpanContext): SpanIds => ({ trace_id: traceId, span_id: spanId })

class OtelWebhookSpan implements WebhookSpan {
  readonly traceparent: string
  readonly ids: SpanIds
  private readonly span: Span
  private readonly context: OtelContext
  private open: Span | undefined

  constructor(private readonly tracer: Tracer) {
    this.span = tracer.startSpan(
      "POST /livekit/webhook",
      { kind: SpanKind.SERVER, attributes: { "http.request.method": "POST", "http.route": "/livekit/webhook" } },
      ROOT_CONTEXT
    )
    const context = this.span.spanContext()
    this.traceparent = traceparentOf(context)
    this.ids = idsOf(context)
    this.context = trace.setSpan(ROOT_CONTEXT, this.span)
  }

  phase(phase: Phase) {
    this.open?.end()
    this.open = this.tracer.startSpan(phase, undefined, this.context)
  }

  passed() {
    this.open?.end()
    this.open = undefined
  }

  event(id: string, type: string) {
    this.span.setAttributes({ "livekit.event_id": id, "livekit.event": type })
    this.open?.setAttributes({ "livekit.event_id": id, "livekit.event": type })
  }

  routed(tenant: string) {
    this.span.setAttribute("tenant", tenant)
    this.open?.setAttribute("tenant", tenant)
  }

  end(status: number, error?: string) {
    if (this.open) {
      if (error !== undefined) this.open.setStatus({ code: SpanStatusCode.ERROR, message: error })
      this.open.end()
      this.open = undefined
    }
    this.span.setAttribute("http.response.status_code", status)
    // A 4xx is the sender's fault, not the server's (OpenTelemetry's HTTP conventions); the failed phase says why.
    if (status >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR, ...(error === undefined ? {} : { message: error }) })
    this.span.end()
  }
}

const attemptSpan = (tracer: Tracer, target: AttemptTarget): AttemptSpan => {
  const parent = Option.getOrUndefined(Option.map(Traceparent.parse(target.parent), remoteContext))
  // A child of the webhook's span, so one event is one trace from LiveKit to the tenant and is sampled as a whole; the
  // link names the webhook's span for backends that follow links, since the attempt may come hours later.
  const span = tracer.startSpan(
    "delivery attempt",
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "livekit.event_id": target.eventId,
        "livekit.event": target.eventType,
        ...(target.tenant === undefined ? {} : { tenant: target.tenant }),
        "url.full": target.url,
        "http.request.method": "POST",
        "delivery.attempt": target.attempt
      },
      links: parent ? [{ context: parent }] : []
    },
    parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT
  )
  const context = span.spanContext()
  return {
    traceparent: traceparentOf(context),
    ids: idsOf(context),
    end: ({ status, error, result }) => {
      if (status !== null) span.setAttribute("http.response.status_code", status)
      if (status === null || status >= 300) {
        span.setAttribute("error.type", result)
        span.setStatus({ code: SpanStatusCode.ERROR, message: error ?? `HTTP ${status}` })
      }
      span.end()
    }
  }
}

const spansOf = (tracer: Tracer): Spans => ({
  enabled: true,
  webhook: () => new OtelWebhookSpan(tracer),
  attempt: (target) => attemptSpan(tracer, target),
  batch: (name, items, traceparentOfItem) => (effect) => {
    const links: Array<EffectTracer.SpanLink> = []
    for (const item of items) {
      const linked = Traceparent.parse(traceparentOfItem(item))
      if (Option.isSome(linked)) links.push({ _tag: "SpanLink", span: linked.value, attributes: {} })
    }
    return Effect.withSpan(effect, name, { links, attributes: { "batch.size": items.length } })
  }
})

// OpenTelemetry's unit for seconds; the others are counts, which need none.
const otlpUnit = (name: string) => (name.endsWith("_seconds") ? "s" : "")

const trimmed = (endpoint: string) => endpoint.replace(/\/+$/, "")

const exporters = async (config: TelemetryConfig, endpoint: string) => {
  const base = trimmed(endpoint)
  if (config.otlp.protocol === "http/json") {
    const [traces, metrics] = await Promise.all([import("@opentelemetry/exporter-trace-otlp-http"), import("@opentelemetry/exporter-metrics-otlp-http")])
    return { spans: new traces.OTLPTraceExporter({ url: `${base}/v1/traces` }), metrics: new metrics.OTLPMetricExporter({ url: `${base}/v1/metrics` }) }
  }
  const [traces, metrics] = await Promise.all([import("@opentelemetry/exporter-trace-otlp-proto"), import("@opentelemetry/exporter-metrics-otlp-proto")])
  return { spans: new traces.OTLPTraceExporter({ url: `${base}/v1/traces` }), metrics: new metrics.OTLPMetricExporter({ url: `${base}/v1/metrics` }) }
}

/**
 * Spans wait at most a second to be exported, in batches; the queue is deep
 * enough for a burst of several thousand webhooks a second, and what overflows
 * it is dropped, never waited for. The provider is flushed when the router stops.
 */
const providerLayer = (config: TelemetryConfig, exporter: SpanExporter) =>
  Layer.scoped(
    EffectOtel.OtelTracerProvider,
    Effect.flatMap(Resource.Resource, (resource) =>
      Effect.acquireRelease(
        Effect.sync(
          () =>
            new BasicTracerProvider({
              resource,
              sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
              spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1_000, maxQueueSize: 65_536, maxExportBatchSize: 2_048 })]
            })
        ),
        // Interruptible, or the timeout could not end a flush to a collector that stopped answering.
        (provider) => Effect.promise(() => provider.forceFlush().then(() => provider.shutdown())).pipe(Effect.interruptible, Effect.timeoutOption("3 seconds"))
      )
    )
  )

export const OtelLive = (config: TelemetryConfig, endpoint: string): Layer.Layer<Tracing> =>
  Layer.unwrapEffect(
    Effect.map(
      Effect.promise(() => exporters(config, endpoint)),
      (exported) => {
        const spans = Layer.effect(Tracing, Effect.map(EffectOtel.OtelTracer, spansOf))
        const reader = () => new PeriodicExportingMetricReader({ exporter: exported.metrics, exportIntervalMillis: Duration.toMillis(config.otlp.interval) })
        const metrics = Layer.scopedDiscard(Effect.flatMap(Metrics.makeProducer, (producer) => Metrics.registerProducer(routerMetrics(producer, otlpUnit), reader)))
        // EffectOtel.layer makes Effect's spans with the same provider as the hot path's.
        return Layer.mergeAll(spans.pipe(Layer.provide(EffectOtel.layer), Layer.provide(providerLayer(config, exported.spans))), metrics).pipe(
          Layer.provide(Resource.layer({ serviceName: config.serviceName }))
        )
      }
    )
  )
