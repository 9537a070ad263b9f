import { lookup } from "node:dns/promises"
import { isIP } from "node:net"
import { Clock, Duration, Effect, Either, Option, Redacted } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { TargetRefused, TenantRejected, TenantTimeout, TenantUnreachable, type DeliveryError } from "../domain/Errors.ts"
import { classifyAddress } from "../domain/TargetAddress.ts"
import { parseRetryAfter } from "./Retry.ts"
import { signWebhook } from "../domain/Signing.ts"
import * as Traceparent from "../telemetry/Traceparent.ts"
import { Tracing, type AttemptSpan } from "../telemetry/Tracing.ts"
import { EngineClock } from "./EngineClock.ts"

export interface Outgoing {
  readonly url: string
  /** The LiveKit event id: `webhook-id`, stable across retries so tenants can deduplicate. */
  readonly eventId: string
  readonly body: string
  /** The hook's secret, then the one it replaced while a rotation overlaps. */
  readonly secrets: ReadonlyArray<Redacted.Redacted>
  /** The hook's own headers (validated: none the router sets itself). */
  readonly headers?: Readonly<Record<string, Redacted.Redacted>> | undefined
  /** The hook's `auth`, as the `Authorization` value. */
  readonly authorization?: string | undefined
  /** The hook's host, for the attempt's span. */
  readonly tenant?: string | undefined
}

/** How an attempt's failure is recorded, logged and counted (`result` is the metric label). */
export const describeFailure = (error: DeliveryError) => {
  switch (error._tag) {
    case "TenantRejected":
      return { status: error.status, error: null, result: String(error.status) }
    case "TenantTimeout":
      return { status: null, error: `timeout after ${error.afterMs}ms`, result: "timeout" }
    case "TenantUnreachable":
      return { status: null, error: error.message, result: "network" }
    case "TargetRefused":
      return { status: null, error: error.reason, result: "refused" }
  }
}

/**
 * The `webhook-id` header for an event id. LiveKit's ids (`EV_…`) pass
 * unchanged; any other character is percent-encoded, so an id that is not a
 * valid header value (controls, non-ASCII) is still sent, one-to-one.
 */
export const webhookId = (eventId: string) => encodeURIComponent(eventId)

/** The Standard Webhooks headers of `body` signed at `atMs` with `secrets`: what a tenant verifies. */
export const standardWebhookHeaders = (secrets: ReadonlyArray<Redacted.Redacted>, eventId: string, atMs: number, body: string) => {
  const id = webhookId(eventId)
  const timestamp = Math.floor(atMs / 1000)
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signWebhook(secrets, id, timestamp, body) }
}

const lowerCased = (headers: Readonly<Record<string, Redacted.Redacted>>) => {
  const lower: Record<string, string> = {}
  for (const name in headers) lower[name.toLowerCase()] = Redacted.value(headers[name]!) as string
  return lower
}

const unbracketed = (hostname: string) => hostname.replace(/^\[(.*)\]$/, "$1")

/** Waits for `promise`, or rejects when `signal` aborts first (a DNS lookup cannot be cancelled). */
const abortable = <A>(promise: Promise<A>, signal: AbortSignal) =>
  new Promise<A>((resolve, reject) => {
    const abort = () => reject(signal.reason)
    if (signal.aborted) return abort()
    signal.addEventListener("abort", abort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort))
  })

/**
 * Resolves the URL's host once and checks every address it has. The request
 * then goes to the checked address, so a name that resolves differently a
 * moment later (DNS rebinding) cannot redirect it.
 */
const resolveTarget = async (host: string, allowPrivate: boolean, signal: AbortSignal): Promise<{ address: string; family: number }> => {
  const family = isIP(host)
  const addresses =
    family !== 0
      ? [{ address: host, family }]
      : await abortable(lookup(host, { all: true }), signal).catch((error: Error) => {
          throw error.name === "TimeoutError" ? error : new TenantUnreachable({ message: `cannot resolve ${host}: ${error.message}` })
        })
  if (!allowPrivate) {
    for (const { address } of addresses) {
      const reason = classifyAddress(address)
      if (reason) throw new TargetRefused({ reason: `refused: ${host} resolves to ${address} (${reason})` })
    }
  }
  const [first] = addresses
  if (!first) throw new TenantUnreachable({ message: `${host} resolves to no address` })
  return first
}

const isDeliveryError = (error: unknown): error is DeliveryError =>
  error instanceof TargetRefused || error instanceof TenantUnreachable || error instanceof TenantTimeout || error instanceof TenantRejected

/**
 * One signed POST to a tenant, with the per-attempt timeout. Succeeds with a
 * 2xx status; every other outcome is a typed DeliveryError. Redirects are not
 * followed: a tenant's 3xx is its final answer.
 */
export class WebhookSender extends Effect.Service<WebhookSender>()("WebhookSender", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const tracing = yield* Tracing
    const clock = yield* EngineClock
    const timeoutMs = Duration.toMillis(config.delivery.timeout)

    /**
     * The attempt as one promise: resolve and check the target, then the signed request to the checked address under
     * the URL's own name. One abort signal is both the timeout and the fiber's interruption.
     */
    const post = async (outgoing: Outgoing, traceparent: string, startedAt: number, interrupted: AbortSignal): Promise<Either.Either<number, TenantRejected>> => {
      // Unsigned, the tenant could not trust it: final, like any target the router must not send to.
      if (outgoing.secrets.length === 0) throw new TargetRefused({ reason: "refused: no secret to sign with (the hook has none and signing.secret is not set)" })
      const signal = AbortSignal.any([interrupted, AbortSignal.timeout(timeoutMs)])
      const url = new URL(outgoing.url)
      const name = unbracketed(url.hostname)
      const target = await resolveTarget(name, config.security.allowPrivateTargets, signal)
      const pinned = new URL(url)
      pinned.hostname = target.family === 6 ? `[${target.address}]` : target.address
      const response = await fetch(pinned, {
        method: "POST",
        redirect: "manual",
        signal,
        headers: {
          host: url.host,
          "content-type": "application/json",
          "user-agent": "sip-tenant-router",
          // The hook's own, lower-cased so one of them (User-Agent) replaces the router's rather than joining it.
          ...(outgoing.headers && lowerCased(outgoing.headers)),
          ...(outgoing.authorization === undefined ? {} : { authorization: outgoing.authorization }),
          ...standardWebhookHeaders(outgoing.secrets, outgoing.eventId, startedAt, outgoing.body),
          // The attempt's span, so the tenant's own tracing joins the event's trace.
          traceparent
        },
        body: outgoing.body,
        // TLS checks the certificate against the name, not the address.
        ...(url.protocol === "https:" && isIP(name) === 0 ? { tls: { serverName: name } } : {})
      })
      // Free the connection; the tenant's body is not needed.
      await response.body?.cancel()
      if (response.status >= 200 && response.status < 300) return Either.right(response.status)
      return Either.left(new TenantRejected({ status: response.status, retryAfterMs: parseRetryAfter(response.headers.get("retry-after"), clock.wallMs()) }))
    }

    const classify = (error: unknown): DeliveryError =>
      isDeliveryError(error)
        ? error
        : (error as Error).name === "TimeoutError"
          ? new TenantTimeout({ afterMs: timeoutMs })
          : new TenantUnreachable({ message: (error as Error).message ?? String(error) })

    /** One attempt as a plain promise, for the delivery engine's hot path, ending `span` with its outcome; `signal` aborts it (shutdown). */
    const attempt = (outgoing: Outgoing, span: AttemptSpan, signal: AbortSignal, startedAt = clock.wallMs()): Promise<Either.Either<number, DeliveryError>> =>
      post(outgoing, span.traceparent, startedAt, signal).then(
        (outcome) => {
          span.end(Either.isRight(outcome) ? { status: outcome.right, error: null, result: String(outcome.right) } : describeFailure(outcome.left))
          return outcome
        },
        (error) => {
          const failure = classify(error)
          span.end(describeFailure(failure))
          return Either.left(failure)
        }
      )

    /** The span of the request that asked for a send (the admin API's), as a `traceparent`; none when not traced. */
    const parentTraceparent = tracing.enabled
      ? Effect.map(Effect.option(Effect.currentParentSpan), (span) => Option.getOrNull(Option.map(span, Traceparent.format)))
      : Effect.succeed(null)

    /** One attempt as an Effect (a test send), in its own span under the caller's; interruption aborts it. */
    const send = (outgoing: Outgoing): Effect.Effect<number, DeliveryError> =>
      Effect.flatMap(Effect.zip(parentTraceparent, Clock.currentTimeMillis), ([parent, startedAt]) =>
        Effect.flatten(
          Effect.promise((signal) => {
            const span = tracing.attempt({ eventId: outgoing.eventId, eventType: "router.test", tenant: outgoing.tenant, url: outgoing.url, attempt: 1, parent })
            return attempt(outgoing, span, signal, startedAt)
          })
        )
      )

    return { attempt, send }
  })
}) {}
