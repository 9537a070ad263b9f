import { Data, ParseResult, Predicate, type Cause, type Types } from "effect"
import { boundedMessage } from "./Untrusted.ts"

const AnsweredTypeId: unique symbol = Symbol.for("sip-tenant-router/Answered")

/**
 * An error the router answers over HTTP: `{"error":{"code","message"}}` with
 * `status`. Its message is the answer's, written when the error is made, so a
 * client decodes the same error back from the wire.
 */
export interface Answered {
  readonly [AnsweredTypeId]: typeof AnsweredTypeId
  readonly status: number
  readonly code: string
  readonly message: string
}

export const isAnswered = (u: unknown): u is Answered => Predicate.hasProperty(u, AnsweredTypeId)

/** Data.TaggedError's constructor, whose class and instances also carry the status and wire code. */
interface AnsweredBase<Tag extends string, Code extends string> {
  readonly code: Code
  readonly status: number
  new <A extends Record<string, any> = {}>(
    args: Types.Equals<A, {}> extends true ? void : { readonly [P in keyof A as P extends "_tag" ? never : P]: A[P] }
  ): Cause.YieldableError & { readonly _tag: Tag; readonly code: Code } & Answered & Readonly<A>
}

/** The base of an answered error's class. TypeScript cannot type a class expression generic in its fields, hence the cast to what it is. */
const answered = <const Tag extends string, const Code extends string>(tag: Tag, code: Code, status: number) =>
  class extends Data.TaggedError(tag) {
    static readonly code = code
    static readonly status = status
    get [AnsweredTypeId]() {
      return AnsweredTypeId
    }
    get code() {
      return code
    }
    get status() {
      return status
    }
  } as unknown as AnsweredBase<Tag, Code>

// ---------------------------------------------------------------------------
// Inbound errors: these decide LiveKit's HTTP answer.
// ---------------------------------------------------------------------------

/** 401: the Authorization JWT is missing, forged, expired, or does not cover these bytes. */
export class InvalidSignature extends answered("InvalidSignature", "unauthorized", 401)<{ readonly message: string }> {}

/** 400: the body is not a JSON object with `event` and `id`. LiveKit treats 4xx as final. */
export class InvalidEvent extends answered("InvalidEvent", "invalid_event", 400)<{ readonly message: string }> {}

/** 413: the body exceeds `server.maxBodyBytes` (the admin API's bodies too). */
export class PayloadTooLarge extends answered("PayloadTooLarge", "payload_too_large", 413)<{ readonly message: string }> {
  static over(limit: number) {
    return new PayloadTooLarge({ message: `body exceeds ${limit} bytes` })
  }
}

/** 503: the router is shutting down; LiveKit retries, and the next instance or start takes the event. */
export class ShuttingDown extends answered("ShuttingDown", "shutting_down", 503)<{}> {
  override get message() {
    return "router is shutting down; retry"
  }
}

/** `server.maxWebhooksWaiting` webhooks already wait for the store: this one is refused before it is read. */
export class Overloaded extends answered("Overloaded", "overloaded", 503)<{}> {
  override get message() {
    return "too many webhooks waiting to be stored; retry"
  }
}

/**
 * 503: the event could not be written, so it must not be acknowledged (LiveKit
 * retries 5xx); the admin API answers it too. The cause stays in the router's
 * log; the answer only says to retry.
 */
export class StoreUnavailable extends answered("StoreUnavailable", "store_unavailable", 503)<{
  readonly cause: unknown
  /** Why, in words /readyz may show anyone: no address, no secret. */
  readonly reason?: string
}> {
  override get message() {
    return "the store is unavailable; retry"
  }
}

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

/**
 * A SIP participant whose own domain resolves to another tenant than the one its room is
 * pinned to: its events (with its caller's number) must not reach the room's tenant.
 */
export class TenantConflict extends Data.TaggedError("TenantConflict")<{ readonly domain: string; readonly tenant: string; readonly roomTenant: string }> {}

export type Unroutable = MissingHeader | MalformedHeader | UnknownDomain | TenantConflict

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

/** 400: `field: problem`, the field at fault first, so the message says what to fix. */
export class BadRequest extends answered("BadRequest", "bad_request", 400)<{ readonly message: string }> {
  static at(field: string, problem: string) {
    return new BadRequest({ message: `${field}: ${problem}` })
  }
}

/** 401: no admin bearer token or console session, or one the router does not know (`reason` says which, when it helps). */
export class Unauthorized extends answered("Unauthorized", "unauthorized", 401)<{ readonly reason?: string }> {
  override get message() {
    return this.reason ?? "a valid admin bearer token is required"
  }
}

/** 403: a tenant token asked for a host that is not its own, or for an operator's endpoint. */
export class Forbidden extends answered("Forbidden", "forbidden", 403)<{ readonly message: string }> {}

/** 404. */
export class NotFound extends answered("NotFound", "not_found", 404)<{ readonly message: string }> {}

/** 409: e.g. a host that the config file owns. */
export class Conflict extends answered("Conflict", "conflict", 409)<{ readonly message: string }> {}

/** 501: the store in use cannot do what was asked (a backup of Redis is taken on the Redis side); the message says what to do instead. */
export class NotImplemented extends answered("NotImplemented", "not_implemented", 501)<{ readonly message: string }> {}

/** 500: what the router answers for a failure it did not expect (decoded by clients; never raised by a handler). */
export class Internal extends answered("Internal", "internal", 500)<{ readonly message: string }> {}

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
