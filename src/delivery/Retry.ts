import { Duration, Schedule } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import type { DeliveryError } from "../domain/Errors.ts"

/** Retry-After as seconds or an HTTP date, in milliseconds from now; undefined if absent or unreadable. */
export const parseRetryAfter = (value: string | null, nowMs: number): number | undefined => {
  if (!value) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  // Every HTTP-date form carries hh:mm:ss; Date.parse alone would read "1.5" or "-5" as dates in 2001 (retry at once).
  const date = /\d\d:\d\d:\d\d/.test(text) ? Date.parse(text) : Number.NaN
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs)
}

/** Network errors, timeouts, 408, 429 and 5xx may pass; any other status, or a refused target, is final. */
export const isRetryable = (error: DeliveryError): boolean =>
  error._tag === "TenantTimeout" ||
  error._tag === "TenantUnreachable" ||
  (error._tag === "TenantRejected" && (error.status === 408 || error.status === 429 || error.status >= 500))

/** Whether an outcome says the tenant is struggling (for its circuit breaker): a 4xx or 429 means it is up. */
export const isTenantFailure = (error: DeliveryError): boolean =>
  error._tag === "TenantTimeout" ||
  error._tag === "TenantUnreachable" ||
  (error._tag === "TenantRejected" && (error.status === 408 || error.status >= 500))

/**
 * Exponential backoff with jitter, capped by maxBackoff, honouring Retry-After,
 * for the attempts a delivery has left. A resumed delivery continues its curve.
 */
export const retrySchedule = (delivery: RouterConfig["delivery"], attemptsDone: number) =>
  Schedule.exponential(Duration.times(delivery.initialBackoff, 2 ** attemptsDone), 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(Math.max(0, delivery.maxAttempts - attemptsDone - 1))),
    Schedule.intersect(Schedule.identity<DeliveryError>()),
    Schedule.modifyDelay(([, error], delay) => {
      const asked = error._tag === "TenantRejected" ? error.retryAfterMs : undefined
      return Duration.min(asked === undefined ? delay : Duration.millis(asked), delivery.maxBackoff)
    }),
    Schedule.whileInput(isRetryable)
  )
