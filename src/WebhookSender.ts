import { Clock, Duration, Effect } from "effect"
import { AppConfig } from "./AppConfig.ts"
import { TenantRejected, TenantTimeout, TenantUnreachable, type DeliveryError } from "./Domain/Errors.ts"
import { parseRetryAfter } from "./Retry.ts"
import { signWebhook } from "./Signing.ts"

export interface Outgoing {
  readonly url: string
  /** The LiveKit event id: `webhook-id`, stable across retries so tenants can deduplicate. */
  readonly eventId: string
  readonly body: string
  readonly secret: string
}

/**
 * One signed POST to a tenant, with the per-attempt timeout. Succeeds with a
 * 2xx status; every other outcome is a typed DeliveryError. Redirects are not
 * followed: a tenant's 3xx is its final answer.
 */
export class WebhookSender extends Effect.Service<WebhookSender>()("WebhookSender", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const timeoutMs = Duration.toMillis(config.delivery.timeout)

    const send = (outgoing: Outgoing): Effect.Effect<number, DeliveryError> =>
      Effect.gen(function* () {
        const timestamp = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const response = yield* Effect.tryPromise({
          try: (signal) =>
            fetch(outgoing.url, {
              method: "POST",
              redirect: "manual",
              signal,
              headers: {
                "content-type": "application/json",
                "user-agent": "sip-tenant-router",
                "webhook-id": outgoing.eventId,
                "webhook-timestamp": String(timestamp),
                "webhook-signature": signWebhook(outgoing.secret, outgoing.eventId, timestamp, outgoing.body)
              },
              body: outgoing.body
            }),
          catch: (error) => new TenantUnreachable({ message: (error as Error).message ?? String(error) })
        }).pipe(Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new TenantTimeout({ afterMs: timeoutMs }) }))
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
