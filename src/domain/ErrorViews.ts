import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { BadRequest, Conflict, Forbidden, Internal, NotFound, NotImplemented, PayloadTooLarge, ShuttingDown, StoreUnavailable, Unauthorized, type Answered } from "./Errors.ts"

/**
 * The admin API's errors on the wire: `{"error":{"code","message"}}` with the
 * status and code their class carries. The router encodes its typed errors
 * with these, and the CLI's client decodes them back into the same classes.
 */

interface AnsweredClass<E extends Answered, Code extends string> {
  readonly code: Code
  readonly status: number
  new (...args: ReadonlyArray<any>): E
}

type ErrorView<E, Code extends string> = Schema.Schema<E, { readonly error: { readonly code: Code; readonly message: string } }>

/** An error whose answer is its message decodes from it; the others say how they are rebuilt. */
function errorView<E extends Answered, Code extends string>(Class: AnsweredClass<E, Code> & (new (fields: { readonly message: string }) => E)): ErrorView<E, Code>
function errorView<E extends Answered, Code extends string>(Class: AnsweredClass<E, Code>, fromMessage: (message: string) => E): ErrorView<E, Code>
function errorView<E extends Answered, Code extends string>(Class: AnsweredClass<E, Code>, fromMessage = (message: string) => new Class({ message })): ErrorView<E, Code> {
  return Schema.transform(
    Schema.Struct({ error: Schema.Struct({ code: Schema.Literal(Class.code), message: Schema.String }) }).annotations({ identifier: `Error_${Class.code}` }),
    Schema.declare((u): u is E => u instanceof Class),
    { strict: true, decode: ({ error }) => fromMessage(error.message), encode: (error) => ({ error: { code: Class.code, message: error.message } }) }
  ).annotations(HttpApiSchema.annotations({ status: Class.status }))
}

export const BadRequestView = errorView(BadRequest)
export const UnauthorizedView = errorView(Unauthorized, (message) => new Unauthorized({ reason: message }))
export const ForbiddenView = errorView(Forbidden)
export const NotFoundView = errorView(NotFound)
export const ConflictView = errorView(Conflict)
export const PayloadTooLargeView = errorView(PayloadTooLarge)
/** The router's answer stands for the cause a client never sees. */
export const StoreUnavailableView = errorView(StoreUnavailable, (message) => new StoreUnavailable({ cause: message }))
export const InternalView = errorView(Internal)
export const NotImplementedView = errorView(NotImplemented)
export const ShuttingDownView = errorView(ShuttingDown, () => new ShuttingDown())
