import { Data, ParseResult } from "effect"
import { boundedMessage } from "./Untrusted.ts"

// ---------------------------------------------------------------------------
// Inbound errors: these decide LiveKit's HTTP answer.
// ---------------------------------------------------------------------------

/** 401: the Authorization JWT is missing, forged, expired, or does not cover these bytes. */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly reason: string }> {}

/** 400: the body is not a JSON object with `event` and `id`. LiveKit treats 4xx as final. */
export class InvalidEvent extends Data.TaggedError("InvalidEvent")<{ readonly message: string }> {}

/** 413: the body exceeds `server.maxBodyBytes`. */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{ readonly limit: number }> {}

/** 503: the router is shutting down; LiveKit retries, and the next instance or start takes the event. */
export class ShuttingDown extends Data.TaggedError("ShuttingDown")<{}> {}

/** 503: the event could not be written, so it must not be acknowledged (LiveKit retries 5xx). */
export class StoreUnavailable extends Data.TaggedError("StoreUnavailable")<{ readonly cause: unknown }> {}

// ---------------------------------------------------------------------------
// Fail-open outcomes: a call must never suffer from these. They are values in
// the routing result, not failures, so the webhook handler cannot fail on them.
// ---------------------------------------------------------------------------

/** Neither `sip.h.x-to-ip` nor `sip.h.to` was present. */
export class MissingHeader extends Data.TaggedError("MissingHeader")<{}> {}

/** A header was present but held no host we could parse. */
export class MalformedHeader extends Data.TaggedError("MalformedHeader")<{
  readonly header: string
  readonly value: string
}> {}

/** A domain was parsed but no hook (and no number mapping) claims it. */
export class UnknownDomain extends Data.TaggedError("UnknownDomain")<{ readonly domain: string }> {}

export type Unroutable = MissingHeader | MalformedHeader | UnknownDomain

// ---------------------------------------------------------------------------
// Delivery errors: decide whether an attempt is retried. Never reach LiveKit.
// ---------------------------------------------------------------------------

/** The tenant did not answer within `delivery.timeout`. */
export class TenantTimeout extends Data.TaggedError("TenantTimeout")<{ readonly afterMs: number }> {}

/** Connection refused, reset, DNS failure and friends. */
export class TenantUnreachable extends Data.TaggedError("TenantUnreachable")<{ readonly message: string }> {}

/** The tenant answered with a non-2xx status. */
export class TenantRejected extends Data.TaggedError("TenantRejected")<{
  readonly status: number
  /** Delay the tenant asked for via Retry-After, in milliseconds. */
  readonly retryAfterMs: number | undefined
}> {}

/** The URL's host is or resolves to an address the router must not reach (SSRF). Final: retrying cannot help. */
export class TargetRefused extends Data.TaggedError("TargetRefused")<{ readonly reason: string }> {}

export type DeliveryError = TenantTimeout | TenantUnreachable | TenantRejected | TargetRefused

// ---------------------------------------------------------------------------
// Admin API and configuration errors.
// ---------------------------------------------------------------------------

/** 400 with the offending field named. */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly field: string; readonly message: string }> {}

/** 404. */
export class NotFound extends Data.TaggedError("NotFound")<{ readonly message: string }> {}

/** 409: e.g. a host that the config file owns. */
export class Conflict extends Data.TaggedError("Conflict")<{ readonly message: string }> {}

/** The config file could not be read or decoded; `key` is the dotted path at fault. */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly key: string; readonly problem: string }> {
  override get message() {
    return `config: ${this.key}: ${this.problem}`
  }
}

/** The first problem of a failed decode, with the dotted key at fault (`fallback` when the whole value is), in a message of bounded size. */
export const firstProblem = (error: ParseResult.ParseError, fallback: string) => firstIssue(ParseResult.ArrayFormatter.formatErrorSync(error), fallback)

/** The same, from the issues of a decode already formatted (HttpApi's decode errors carry them). */
export const firstIssue = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>, fallback: string): { readonly key: string; readonly problem: string } => {
  const [first] = issues
  return {
    key: first && first.path.length > 0 ? boundedMessage(first.path.join(".")) : fallback,
    problem: boundedMessage(first?.message ?? "invalid")
  }
}
