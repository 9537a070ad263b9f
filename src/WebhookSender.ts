import { lookup } from "node:dns/promises"
import { isIP } from "node:net"
import { Clock, Duration, Effect } from "effect"
import { AppConfig } from "./AppConfig.ts"
import { TargetRefused, TenantRejected, TenantTimeout, TenantUnreachable, type DeliveryError } from "./Domain/Errors.ts"
import { classifyAddress } from "./Domain/TargetAddress.ts"
import { parseRetryAfter } from "./Retry.ts"
import { signWebhook } from "./Signing.ts"

export interface Outgoing {
  readonly url: string
  /** The LiveKit event id: `webhook-id`, stable across retries so tenants can deduplicate. */
  readonly eventId: string
  readonly body: string
  /** The hook's secret, then the one it replaced while a rotation overlaps. */
  readonly secrets: ReadonlyArray<string>
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

const unbracketed = (hostname: string) => hostname.replace(/^\[(.*)\]$/, "$1")

/**
 * Resolves the URL's host once and checks every address it has. The request
 * then goes to the checked address, so a name that resolves differently a
 * moment later (DNS rebinding) cannot redirect it.
 */
const resolveTarget = (
  url: URL,
  allowPrivate: boolean,
  timeoutMs: number
): Effect.Effect<{ address: string; family: number }, TargetRefused | TenantUnreachable | TenantTimeout> =>
  Effect.gen(function* () {
    const host = unbracketed(url.hostname)
    const addresses = isIP(host)
      ? [{ address: host, family: isIP(host) }]
      : yield* Effect.tryPromise({
          try: () => lookup(host, { all: true }),
          catch: (error) => new TenantUnreachable({ message: `cannot resolve ${host}: ${(error as Error).message}` })
        }).pipe(Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new TenantTimeout({ afterMs: timeoutMs }) }))
    if (!allowPrivate) {
      for (const { address } of addresses) {
        const reason = classifyAddress(address)
        if (reason) return yield* new TargetRefused({ reason: `refused: ${host} resolves to ${address} (${reason})` })
      }
    }
    const [first] = addresses
    if (!first) return yield* new TenantUnreachable({ message: `${host} resolves to no address` })
    return first
  })

/**
 * One signed POST to a tenant, with the per-attempt timeout. Succeeds with a
 * 2xx status; every other outcome is a typed DeliveryError. Redirects are not
 * followed: a tenant's 3xx is its final answer.
 */
export class WebhookSender extends Effect.Service<WebhookSender>()("WebhookSender", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const timeoutMs = Duration.toMillis(config.delivery.timeout)

    /** The signed request itself, to the checked address under the URL's own name. */
    /** The timeout is the fetch's own abort signal: no timer fiber per attempt. */
    const post = (url: URL, target: { address: string; family: number }, outgoing: Outgoing, timestamp: number, remainingMs: number) => {
      const pinned = new URL(url)
      pinned.hostname = target.family === 6 ? `[${target.address}]` : target.address
      const name = unbracketed(url.hostname)
      return Effect.tryPromise({
        try: (signal) =>
          fetch(pinned, {
            method: "POST",
            redirect: "manual",
            signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, remainingMs))]),
            headers: {
              host: url.host,
              "content-type": "application/json",
              "user-agent": "sip-tenant-router",
              "webhook-id": outgoing.eventId,
              "webhook-timestamp": String(timestamp),
              "webhook-signature": signWebhook(outgoing.secrets, outgoing.eventId, timestamp, outgoing.body)
            },
            body: outgoing.body,
            // TLS checks the certificate against the name, not the address.
            ...(url.protocol === "https:" && isIP(name) === 0 ? { tls: { serverName: name } } : {})
          }),
        catch: (error) =>
          (error as Error).name === "TimeoutError"
            ? new TenantTimeout({ afterMs: timeoutMs })
            : new TenantUnreachable({ message: (error as Error).message ?? String(error) })
      })
    }

    const send = (outgoing: Outgoing): Effect.Effect<number, DeliveryError> =>
      Effect.gen(function* () {
        const url = new URL(outgoing.url)
        const startedAt = yield* Clock.currentTimeMillis
        const target = yield* resolveTarget(url, config.security.allowPrivateTargets, timeoutMs)
        const remainingMs = timeoutMs - ((yield* Clock.currentTimeMillis) - startedAt)
        const response = yield* post(url, target, outgoing, Math.floor(startedAt / 1000), remainingMs)
        // Free the connection; the tenant's body is not needed.
        yield* Effect.promise(() => response.body?.cancel() ?? Promise.resolve())
        if (response.status >= 200 && response.status < 300) return response.status
        return yield* new TenantRejected({
          status: response.status,
          retryAfterMs: parseRetryAfter(response.headers.get("retry-after"), Date.now())
        })
      })

    return { send }
  })
}) {}
