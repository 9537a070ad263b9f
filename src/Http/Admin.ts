import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Layer, ParseResult, Schema } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { BadRequest, type Conflict, type NotFound, type PayloadTooLarge, type StoreUnavailable } from "../Domain/Errors.ts"
import { HookFields, HostPattern, type ActiveHook, type Hook } from "../Domain/Hook.ts"
import { HookTable } from "../HookTable.ts"
import { constantTimeEqual, generateSecret } from "../Signing.ts"
import { errorResponse, readBody } from "./Responses.ts"

class AdminUnauthorized extends Error {
  readonly _tag = "AdminUnauthorized"
}

/** Every configured token is compared (in constant time), so timing reveals neither which nor how close. */
const authorize = Effect.gen(function* () {
  const config = yield* AppConfig
  const request = yield* HttpServerRequest.HttpServerRequest
  const presented = /^Bearer\s+(.+)$/i.exec(request.headers["authorization"] ?? "")?.[1]?.trim() ?? ""
  const matches = config.admin.tokens.reduce((found, token) => constantTimeEqual(token, presented) || found, false)
  if (!presented || !matches) return yield* Effect.fail(new AdminUnauthorized())
})

/** Secrets are write-only: listings say whether a hook has its own, never what it is. */
const publicView = (hook: ActiveHook) => ({
  host: hook.host,
  url: hook.url,
  events: hook.events ?? null,
  source: hook.source,
  hasOwnSecret: hook.secret !== undefined
})

const hostParam = Effect.gen(function* () {
  // Already percent-decoded by the router: decoding again would read "%2541" as "A" and throw (500) on "%25zz".
  const { host } = yield* HttpLayerRouter.params
  return yield* Either.mapLeft(
    Schema.decodeUnknownEither(HostPattern)(host ?? ""),
    (e) => new BadRequest({ field: "host", message: ParseResult.TreeFormatter.formatErrorSync(e) })
  )
})

const decodeFields = (body: Uint8Array) => {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder().decode(body))
  } catch {
    return Either.left(new BadRequest({ field: "body", message: "body is not valid JSON" }))
  }
  return Either.mapLeft(Schema.decodeUnknownEither(HookFields, { onExcessProperty: "error" })(json), (e) => {
    const [first] = ParseResult.ArrayFormatter.formatErrorSync(e)
    return new BadRequest({ field: first?.path.join(".") || "body", message: first?.message ?? "invalid" })
  })
}

type AdminError = AdminUnauthorized | BadRequest | NotFound | Conflict | PayloadTooLarge | StoreUnavailable

const answerError = (error: AdminError) => {
  switch (error._tag) {
    case "AdminUnauthorized":
      return errorResponse(401, "unauthorized", "a valid admin bearer token is required")
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

const admin = <R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, AdminError, R>) =>
  Effect.zipRight(authorize, handler).pipe(Effect.catchAll((error) => Effect.succeed(answerError(error))))

const ListHooks = HttpLayerRouter.add(
  "GET",
  "/v1/hooks",
  admin(Effect.gen(function* () {
    const hooks = yield* (yield* HookTable).list
    return HttpServerResponse.unsafeJson({ hooks: hooks.map(publicView) })
  }))
)

const PutHook = HttpLayerRouter.add("PUT", "/v1/hooks/:host", (request) =>
  admin(Effect.gen(function* () {
    const config = yield* AppConfig
    const host = yield* hostParam
    const fields = yield* decodeFields(yield* readBody(request, config.server.maxBodyBytes))
    // A hook without a secret of its own gets a fresh one, shown only in this response.
    const generated = fields.secret === undefined ? generateSecret() : undefined
    const hook: Hook = { host, url: fields.url, events: fields.events, secret: fields.secret ?? generated }
    const outcome = yield* (yield* HookTable).put(hook)
    return HttpServerResponse.unsafeJson(
      { ...publicView({ ...hook, source: "api" }), ...(generated ? { secret: generated } : {}) },
      { status: outcome === "created" ? 201 : 200 }
    )
  }))
)

const DeleteHook = HttpLayerRouter.add(
  "DELETE",
  "/v1/hooks/:host",
  admin(Effect.gen(function* () {
    yield* (yield* HookTable).remove(yield* hostParam)
    return HttpServerResponse.empty({ status: 204 })
  }))
)

export const AdminRoutes = Layer.mergeAll(ListHooks, PutHook, DeleteHook)
