import { Context, type Effect } from "effect"

/** How a log line names the span it was written in. */
export interface SpanIds {
  readonly trace_id: string
  readonly span_id: string
}

/** The parts of a webhook's request, each a child span of the webhook's. */
export type Phase = "verify" | "resolve" | "store"

/** One LiveKit webhook's span, from its arrival to its answer. */
export interface WebhookSpan {
  /** The span's W3C `traceparent`, stored with the event's delivery so every attempt joins it, even after a restart; null when off. */
  readonly traceparent: string | null
  readonly ids: SpanIds | undefined
  /** Ends the phase in progress, if any, and starts `phase`. */
  readonly phase: (phase: Phase) => void
  /** Ends the phase in progress: it succeeded. */
  readonly passed: () => void
  /** The event as read from the body. */
  readonly event: (id: string, type: string) => void
  readonly routed: (tenant: string) => void
  /** Ends the phase in progress and the span, with the answer's status; `error` marks the phase failed. */
  readonly end: (status: number, error?: string) => void
}

/** What a delivery attempt span is about. */
export interface AttemptTarget {
  readonly eventId: string
  readonly eventType: string
  readonly tenant: string | undefined
  readonly url: string
  readonly attempt: number
  /** The `traceparent` of the span the attempt belongs to: its webhook's, or the admin request's for a test send. */
  readonly parent: string | null
}

/** How an attempt ended: the tenant's status, or the error; `result` is the metric label (status, `timeout`, `network`, `refused`). */
export interface AttemptOutcome {
  readonly status: number | null
  readonly error: string | null
  readonly result: string
}

/** One delivery attempt's span; its `traceparent` goes to the tenant, so the tenant's tracing joins the event's trace. */
export interface AttemptSpan {
  readonly traceparent: string
  readonly ids: SpanIds | undefined
  readonly end: (outcome: AttemptOutcome) => void
}

export interface Spans {
  /** False without an endpoint: then spans cost nothing but these no-op calls. */
  readonly enabled: boolean
  readonly webhook: () => WebhookSpan
  readonly attempt: (target: AttemptTarget) => AttemptSpan
  /** An Effect span over a batch, linked to the spans of its items (given by their `traceparent`s); the effect itself when off. */
  readonly batch: <T>(
    name: string,
    items: ReadonlyArray<T>,
    traceparentOf: (item: T) => string | null
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/**
 * Spans for the hot path (see docs/architecture.md, the hot-path rule), from the same
 * OpenTelemetry tracer provider as the Effect spans; no-ops when tracing is
 * off. TracingLive.ts chooses which.
 */
export class Tracing extends Context.Tag("Tracing")<Tracing, Spans>() {}
