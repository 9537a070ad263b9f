import { HttpApiSchema } from "@effect/platform"
import { Data, Schema } from "effect"
import { BadRequest as BadRequestError, Conflict as ConflictError, NotFound as NotFoundError, PayloadTooLarge as PayloadTooLargeError, StoreUnavailable as StoreUnavailableError } from "./Errors.ts"

/**
 * The admin API's errors as schemas. Every one is `{"error":{"code","message"}}`
 * on the wire, whatever the error class behind it, so the router encodes its
 * own typed errors with them and the CLI's client decodes them back.
 */

/** 401: no bearer token, or one the router does not know. */
export class AdminUnauthorized extends Data.TaggedError("AdminUnauthorized")<{}> {}

/** 403: a tenant token asked for a host that is not its own, or for an operator's endpoint. */
export class Forbidden extends Data.TaggedError("Forbidden")<{ readonly message: string }> {}

/** 500: what the router answers for a failure it did not expect (decoded by clients; never raised by a handler). */
export class Internal extends Data.TaggedError("Internal")<{ readonly message: string }> {}

/** What an error answer carries, for a client to print. */
export interface ErrorAnswer {
  readonly status: number
  readonly code: string
  readonly message: string
}

const describers: Array<(error: unknown) => ErrorAnswer | undefined> = []

/** The answer a typed error stands for, if it is one of the admin API's. */
export const errorAnswer = (error: unknown): ErrorAnswer | undefined => {
  for (const describe of describers) {
    const answer = describe(error)
    if (answer) return answer
  }
  return undefined
}

const errorShape = <E, const Code extends string>(
  Class: abstract new (...args: ReadonlyArray<any>) => E,
  code: Code,
  status: number,
  toMessage: (error: E) => string,
  fromMessage: (message: string) => E
) => {
  const is = (u: unknown): u is E => u instanceof Class
  describers.push((error) => (is(error) ? { status, code, message: toMessage(error) } : undefined))
  return Schema.transform(
    Schema.Struct({ error: Schema.Struct({ code: Schema.Literal(code), message: Schema.String }) }).annotations({ identifier: `Error_${code}` }),
    Schema.declare(is),
    {
      strict: true,
      decode: ({ error }) => fromMessage(error.message),
      encode: (error) => ({ error: { code, message: toMessage(error) } })
    }
  ).annotations(HttpApiSchema.annotations({ status }))
}

/** `field: problem`: the field at fault first, so the message says what to fix. */
export const BadRequest = errorShape(
  BadRequestError,
  "bad_request",
  400,
  (error) => `${error.field}: ${error.message}`,
  (message) => {
    const colon = message.indexOf(": ")
    return colon === -1 ? new BadRequestError({ field: "request", message }) : new BadRequestError({ field: message.slice(0, colon), message: message.slice(colon + 2) })
  }
)

const UNAUTHORIZED = "a valid admin bearer token is required"
export const Unauthorized = errorShape(AdminUnauthorized, "unauthorized", 401, () => UNAUTHORIZED, () => new AdminUnauthorized())

export const ForbiddenError = errorShape(Forbidden, "forbidden", 403, (error) => error.message, (message) => new Forbidden({ message }))

export const NotFound = errorShape(NotFoundError, "not_found", 404, (error) => error.message, (message) => new NotFoundError({ message }))

export const Conflict = errorShape(ConflictError, "conflict", 409, (error) => error.message, (message) => new ConflictError({ message }))

export const PayloadTooLarge = errorShape(
  PayloadTooLargeError,
  "payload_too_large",
  413,
  (error) => `body exceeds ${error.limit} bytes`,
  (message) => new PayloadTooLargeError({ limit: Number(/\d+/.exec(message)?.[0] ?? 0) })
)

/** The cause stays in the router's log; the answer only says to retry. */
export const StoreUnavailable = errorShape(
  StoreUnavailableError,
  "store_unavailable",
  503,
  () => "the store is unavailable; retry",
  (message) => new StoreUnavailableError({ cause: message })
)

export const InternalError = errorShape(Internal, "internal", 500, (error) => error.message, (message) => new Internal({ message }))
