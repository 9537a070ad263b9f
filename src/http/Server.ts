import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Cause, Effect, Layer, Runtime, type Scope } from "effect"
import type { RouterConfig } from "../domain/Config.ts"
import { consoleRoutes } from "../console/ConsoleRoutes.ts"
import { Ingest } from "../ingest/Ingest.ts"
import { adminRoutes } from "./AdminRoutes.ts"
import { OpsLive } from "./Ops.ts"
import { errorResponse, INTERNAL_ERROR } from "./Responses.ts"
import { webhookHandler } from "./Webhook.ts"

/** Host names run to 253 characters; the schemas, not the router, decide what is too long (a 400 naming the field). */
const routerConfig = Layer.succeed(HttpLayerRouter.RouterConfig, { maxParamLength: Number.MAX_SAFE_INTEGER })

/**
 * Effect's router ends a path at a raw `;` (as some servers split off session
 * ids), so `/v1/hooks/a.example;x` would act on `a.example`: refuse it instead.
 * Percent-encoded (`%3B`) it reaches the parameter, which the schema judges.
 */
const hasParameterDelimiter = (url: string) => {
  const start = url.indexOf("/", url.indexOf("//") + 2)
  const end = url.indexOf("?", start)
  return url.slice(start, end === -1 ? undefined : end).includes(";")
}
const SEMICOLON_REFUSED = () =>
  Response.json({ error: { code: "bad_request", message: "path: a raw ';' is not allowed; percent-encode it as %3B" } }, { status: 400 })

/** The cause of an unexpected failure, with where it happened: never the body, the headers or the query (they may hold secrets). */
const logInternal = (method: string, url: string, cause: Cause.Cause<unknown>) =>
  Effect.logError("internal error", cause).pipe(Effect.annotateLogs({ method, path: new URL(url, "http://router").pathname }))

/**
 * One Bun server. LiveKit's webhook, the hot path, is a native Bun route
 * whose requests are stored a turn at a time (Webhook.ts); the admin and
 * operations API go through Effect's router.
 * Every answer is the router's own: an unknown route is a JSON 404, and an
 * unexpected failure anywhere a JSON 500 with no internals, its cause logged.
 * Released before the services, so nothing is answered by a half-stopped router.
 */
export const ServerLive = (config: RouterConfig) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const routes = yield* HttpLayerRouter.toHttpEffect(
        config.admin.console ? Layer.mergeAll(adminRoutes(config), OpsLive, consoleRoutes(config)) : Layer.merge(adminRoutes(config), OpsLive)
      ).pipe(Effect.provide(routerConfig))
      const app = routes.pipe(
        Effect.catchTag("RouteNotFound", () => Effect.succeed(errorResponse(404, "not_found", "no such endpoint"))),
        Effect.catchAllCause((cause) =>
          Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
            Effect.as(logInternal(request.method, request.url, cause), errorResponse(500, INTERNAL_ERROR.error.code, INTERNAL_ERROR.error.message))
          )
        )
      )
      // What the routes need, less the request each one is given.
      const runtime = yield* Effect.runtime<Exclude<Effect.Effect.Context<typeof app>, HttpServerRequest.HttpServerRequest | Scope.Scope>>()
      const api = HttpApp.toWebHandlerRuntime(runtime)(app)
      const webhook = webhookHandler(Runtime.runPromise(runtime), yield* Ingest, { maxBodyBytes: config.server.maxBodyBytes, maxWaiting: config.server.maxWebhooksWaiting })
      /** For what escapes the handlers above (it should be nothing). */
      const lastResort = (request: Request, cause: unknown) => {
        Runtime.runSync(runtime)(logInternal(request.method, request.url, Cause.die(cause)))
        return Response.json(INTERNAL_ERROR, { status: 500 })
      }
      const server = yield* Effect.acquireRelease(
        Effect.sync(() =>
          Bun.serve({
            hostname: config.server.host,
            port: config.server.port,
            // Bodies are read up to server.maxBodyBytes by the handlers, which answer the documented 413 at any size.
            maxRequestBodySize: Number.MAX_SAFE_INTEGER,
            idleTimeout: 30,
            development: false,
            routes: { "/livekit/webhook": { POST: (request) => webhook(request).catch((cause) => lastResort(request, cause)) } },
            fetch: (request) => (hasParameterDelimiter(request.url) ? SEMICOLON_REFUSED() : api(request).catch((cause) => lastResort(request, cause))),
            error: () => Response.json(INTERNAL_ERROR, { status: 500 })
          })
        ),
        (server) => Effect.promise(() => server.stop())
      )
      // Tests and the launcher read the bound port from this line (the config may ask for port 0).
      yield* Effect.log("listening").pipe(Effect.annotateLogs({ host: server.hostname, port: server.port }))
    })
  )
