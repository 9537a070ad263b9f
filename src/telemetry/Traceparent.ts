/**
 * The W3C `traceparent`, written and read only here. @effect/platform's
 * HttpTraceContext reads it; it writes one only from a whole Effect span, and
 * most of the router's spans are OpenTelemetry's, so the one line that writes
 * it is here.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpTraceContext from "@effect/platform/HttpTraceContext"
import { Option, type Tracer } from "effect"

/** What a traceparent names: the span, its trace, and whether the trace is sampled. */
export type SpanIdentity = Pick<Tracer.ExternalSpan, "traceId" | "spanId" | "sampled">

export const format = ({ traceId, spanId, sampled }: SpanIdentity): string => `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`

/** The span a traceparent names, as a parent or link for another span; none when it is not a valid one. */
export const parse = (traceparent: string | null): Option.Option<Tracer.ExternalSpan> =>
  traceparent === null ? Option.none() : HttpTraceContext.w3c(Headers.unsafeFromRecord({ traceparent }))

const randomBytes = new Uint8Array(24)

/**
 * A fresh trace for a delivery when the router records none, so the tenant's
 * tracing still gets a valid parent. Flagged sampled: a tenant's parent-based
 * sampler would otherwise drop its side of every delivery.
 */
export const random = (): string => {
  const hex = Buffer.from(crypto.getRandomValues(randomBytes)).toString("hex")
  return format({ traceId: hex.slice(0, 32), spanId: hex.slice(32), sampled: true })
}
