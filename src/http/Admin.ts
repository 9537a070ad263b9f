import { HttpLayerRouter, HttpServerRequest, type HttpServerResponse } from "@effect/platform"
import { Data, Effect, Either, ParseResult, Schema } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { BadRequest, firstProblem, type Conflict, type NotFound, type PayloadTooLarge, type StoreUnavailable } from "../domain/Errors.ts"
import { isUnderWildcard } from "../domain/Hook.ts"
import { parseJsonWithin } from "../domain/Untrusted.ts"
import { constantTimeEqual } from "../domain/Signing.ts"
import { errorResponse, readBody } from "./Responses.ts"

class AdminUnauthorized extends Data.TaggedError("AdminUnauthorized")<{}> {}

/** 403: a tenant token asked for a host that is not its own. */
export class Forbidden extends Data.TaggedError("Forbidden")<{ readonly message: string }> {}

/** Who is calling: an operator sees every host; a tenant token only its own. */
export type Principal = { readonly _tag: "Operator" } | { readonly _tag: "Tenant"; readonly hosts: ReadonlyArray<string> }

/** A tenant's pattern covers itself and, for a wildcard, every host and narrower wildcard under it. */
const covers = (own: string, pattern: string) => own === pattern || isUnderWildcard(pattern, own)

export const mayAccess = (principal: Principal, pattern: string): boolean =>
  principal._tag === "Operator" || principal.hosts.some((own) => covers(own, pattern))

/** Fails with 403 unless the caller may act on `pattern`. */
export const requireAccess = (principal: Principal, pattern: string) =>
  mayAccess(principal, pattern) ? Effect.void : Effect.fail(new Forbidden({ message: `this token may not act on ${pattern}` }))

export const requireOperator = (principal: Principal) =>
  principal._tag === "Operator" ? Effect.void : Effect.fail(new Forbidden({ message: "this endpoint needs an operator token" }))

/** Every configured token is compared (in constant time), so timing reveals neither which nor how close. */
const authorize = Effect.gen(function* () {
  const config = yield* AppConfig
  const request = yield* HttpServerRequest.HttpServerRequest
  const presented = /^Bearer\s+(.+)$/i.exec(request.headers["authorization"] ?? "")?.[1]?.trim() ?? ""
  const operator = config.admin.tokens.reduce((found, token) => constantTimeEqual(token, presented) || found, false)
  const tenant = config.admin.tenantTokens.reduce<ReadonlyArray<string> | undefined>(
    (found, entry) => (constantTimeEqual(entry.token, presented) ? entry.hosts : found),
    undefined
  )
  if (presented && operator) return { _tag: "Operator" } satisfies Principal
  if (presented && tenant) return { _tag: "Tenant", hosts: tenant } satisfies Principal
  return yield* new AdminUnauthorized()
})

export type AdminError = AdminUnauthorized | Forbidden | BadRequest | NotFound | Conflict | PayloadTooLarge | StoreUnavailable

const answerError = (error: AdminError) => {
  switch (error._tag) {
    case "AdminUnauthorized":
      return errorResponse(401, "unauthorized", "a valid admin bearer token is required")
    case "Forbidden":
      return errorResponse(403, "forbidden", error.message)
    case "BadRequest":
      return errorResponse(400, "bad_request", `${error.field}: ${error.message}`)
    case "NotFound":
      return errorResponse(404, "not_found", error.message)
    case "Conflict":
      return errorResponse(409, "conflict", error.message)
    case "PayloadTooLarge":
      return errorResponse(413, "payload_too_large", `body exceeds ${error.limit} bytes`)
    case "StoreUnavailable":
      return errorResponse(503, "store_unavailable", "the store is unavailable; retry")
  }
}

/** An admin endpoint: the caller is authorised first, every typed error answered as `{"error":{"code","message"}}`. */
export const admin = <R>(handler: (principal: Principal) => Effect.Effect<HttpServerResponse.HttpServerResponse, AdminError, R>) =>
  Effect.flatMap(authorize, handler).pipe(Effect.catchAll((error) => Effect.succeed(answerError(error))))

/** The first problem of a failed decode, as a 400 naming the field (`fallback` when the root is at fault). */
const badRequest = (error: ParseResult.ParseError, fallback: string) => {
  const { key, problem } = firstProblem(error, fallback)
  return new BadRequest({ field: key, message: problem })
}

/** A JSON body decoded strictly: unknown fields are refused, so typos are not silently ignored. */
export const decodeBody = <A, I>(schema: Schema.Schema<A, I>, request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const bytes = yield* readBody(request, config.server.maxBodyBytes)
    const json = yield* Either.mapLeft(parseJsonWithin(new TextDecoder().decode(bytes)), (problem) => new BadRequest({ field: "body", message: `body is ${problem}` }))
    return yield* Either.mapLeft(Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })(json), (e) => badRequest(e, "body"))
  })

/** Query parameters decoded strictly, each named in its error. */
export const decodeQuery = <A, I>(schema: Schema.Schema<A, I>, request: HttpServerRequest.HttpServerRequest) => {
  const params = Object.fromEntries(new URL(request.url, "http://router").searchParams)
  return Either.mapLeft(Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })(params), (e) => badRequest(e, "query"))
}

/** A path parameter, already percent-decoded by the router (decoding again would misread "%2541"). */
export const decodeParam = <A, I>(name: string, schema: Schema.Schema<A, I>) =>
  Effect.flatMap(HttpLayerRouter.params, (params) =>
    Either.mapLeft(Schema.decodeUnknownEither(schema)(params[name] ?? ""), (e) => badRequest(e, name))
  )
