import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import { Chunk, Effect, Layer, Scope } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import { BadRequest, firstIssue } from "../domain/Errors.ts"
import { AdminApi } from "./Api.ts"
import { AuthorizationLive } from "./Authorization.ts"
import { BackupLive } from "./BackupHandlers.ts"
import { CallsLive } from "./CallsHandlers.ts"
import { CredentialsLive } from "./Credentials.ts"
import { DeliveriesLive } from "./DeliveriesHandlers.ts"
import { ExplainLive } from "./ExplainHandlers.ts"
import { HooksLive } from "./HooksHandlers.ts"
import { JsonBodyLive } from "./JsonBody.ts"
import { NumbersLive } from "./NumbersHandlers.ts"
import { SessionLive, SignInLive } from "./SessionsHandlers.ts"
import { OverviewLive } from "./OverviewHandlers.ts"
import { StreamLive } from "./StreamHandlers.ts"
import { StreamHub } from "./StreamHub.ts"
import { TenantsLive } from "./TenantsHandlers.ts"
import { TokensLive } from "./TokensHandlers.ts"
import { UnroutableLive } from "./UnroutableHandlers.ts"

/** A path, query or payload HttpApi could not decode: the documented 400, naming the field (the body, when the whole of it is wrong). */
const badRequest = (error: HttpApiDecodeError) => {
  const { key, problem } = firstIssue(error.issues, "body")
  return BadRequest.at(key, problem)
}

const isDecodeError = (error: unknown): error is HttpApiDecodeError => error instanceof HttpApiDecodeError

/**
 * The admin API's endpoints on the router, as HttpLayerRouter.addHttpApi
 * registers them, with one change: HttpApi's own decode errors are answered
 * in the router's error shape, by the API's error encoding like every other.
 */
const Endpoints = HttpApiBuilder.Router.unwrap(
  Effect.fnUntraced(function* (built) {
    const router = yield* HttpLayerRouter.HttpRouter
    const withApiMiddleware = yield* HttpApiBuilder.buildMiddleware(AdminApi)
    yield* router.addAll(
      Chunk.toReadonlyArray(built.routes).map((route) =>
        HttpLayerRouter.route(
          // The API declares no HEAD endpoint (the router answers HEAD with GET's route).
          route.method as Exclude<typeof route.method, "HEAD">,
          route.path as HttpLayerRouter.PathInput,
          withApiMiddleware(Effect.catchIf(route.handler as Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>, isDecodeError, (e) => Effect.fail(badRequest(e)))).pipe(
            // What the API's errors cannot encode was never one of them: the server's last resort answers it.
            Effect.orDie
          ),
          { uninterruptible: route.uninterruptible }
        )
      )
    )
  }, Layer.effectDiscard)
).pipe(
  Layer.provide([HooksLive, NumbersLive, DeliveriesLive, TenantsLive, UnroutableLive, ExplainLive, CallsLive, StreamLive, TokensLive, OverviewLive, BackupLive, SignInLive, SessionLive]),
  Layer.provide([AuthorizationLive, JsonBodyLive, StreamHub.Default]),
  Layer.provide(CredentialsLive)
)

/**
 * /docs: Scalar's page with the OpenAPI document inlined. Built on its first
 * request, not at start: the page carries Scalar's 3 MB script, which a router
 * nobody reads the docs of should neither load nor keep.
 */
const DocsPage = Layer.unwrapScoped(
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const page = yield* Effect.cached(
      Effect.promise(() => import("@effect/platform/HttpApiScalar")).pipe(
        Effect.flatMap((scalar) => HttpLayerRouter.toHttpEffect(scalar.layerHttpLayerRouter({ api: AdminApi, path: "/docs", scalar: { withDefaultFonts: false } }))),
        // A router of its own: the request's memo map would hand it the router this route is on.
        Effect.provideServiceEffect(Layer.CurrentMemoMap, Layer.makeMemoMap),
        Scope.extend(scope)
      )
    )
    return HttpLayerRouter.add("GET", "/docs", Effect.flatten(page))
  })
)

/** The OpenAPI document and its rendering, both generated from the same definition when first asked for, with nothing fetched from elsewhere. */
const Docs = Layer.mergeAll(
  HttpLayerRouter.add("GET", "/openapi.json", Effect.sync(() => HttpServerResponse.unsafeJson(OpenApi.fromApi(AdminApi)))),
  DocsPage
)

/** The admin API, and (unless `admin.docs` is false) its documentation. */
export const adminRoutes = (config: RouterConfig) => (config.admin.docs ? Layer.merge(Endpoints, Docs) : Endpoints)
