import { Effect, Layer } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import * as Traceparent from "./Traceparent.ts"
import { Tracing, type Spans, type WebhookSpan } from "./Tracing.ts"

const NO_WEBHOOK_SPAN: WebhookSpan = {
  traceparent: null,
  ids: undefined,
  phase: () => {},
  passed: () => {},
  event: () => {},
  routed: () => {},
  end: () => {}
}

const noEnd = () => {}

const OFF: Spans = {
  enabled: false,
  webhook: () => NO_WEBHOOK_SPAN,
  attempt: () => ({ traceparent: Traceparent.random(), ids: undefined, end: noEnd }),
  batch: () => (effect) => effect
}

/** No spans: nothing is recorded, and every attempt still carries a fresh traceparent. */
const off = Layer.succeed(Tracing, OFF)

/**
 * Without `telemetry.otlp.endpoint`, no-op spans, and the tracing SDK is never
 * loaded; with one, the SDK is imported then (Otel.ts), and every span and
 * metric is exported by OTLP.
 */
export const TracingLive = (config: RouterConfig): Layer.Layer<Tracing> =>
  config.telemetry.otlp.endpoint === undefined
    ? off
    : Layer.unwrapEffect(Effect.promise(() => import("./Otel.ts")).pipe(Effect.map((otel) => otel.OtelLive(config.telemetry, config.telemetry.otlp.endpoint!))))
