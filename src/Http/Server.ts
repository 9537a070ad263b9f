import { HttpApp, HttpLayerRouter } from "@effect/platform"
import { Effect, Layer, Runtime } from "effect"
import type { servicesLayer } from "../App.ts"
import type { RouterConfig } from "../Domain/Config.ts"
import { Ingest } from "../Ingest.ts"
import { DeliveriesApi } from "./DeliveriesApi.ts"
import { HooksApi } from "./HooksApi.ts"
import { NumbersApi } from "./NumbersApi.ts"
import { OpsRoutes } from "./Ops.ts"
import { webhookHandler } from "./Webhook.ts"

/** What the routes need: every service of the router. */
type Services = Layer.Layer.Success<ReturnType<typeof servicesLayer>>

const Routes = Layer.mergeAll(HooksApi, NumbersApi, DeliveriesApi, OpsRoutes)

/**
 * One Bun server. LiveKit's webhook, the hot path, is a native Bun route that
 * runs one Effect per request; the admin and operations API go through
 * Effect's router, whose per-request cost only the hot path would notice.
 * Released before the services, so nothing is answered by a half-stopped router.
 */
export const serverLayer = (config: RouterConfig) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const runtime = yield* Effect.runtime<Services>()
      const api = HttpApp.toWebHandlerRuntime(runtime)(yield* HttpLayerRouter.toHttpEffect(Routes))
      const webhook = webhookHandler(Runtime.runPromise(runtime), yield* Ingest, config.server.maxBodyBytes)
      const server = yield* Effect.acquireRelease(
        Effect.sync(() =>
          Bun.serve({
            hostname: config.server.host,
            port: config.server.port,
            // Bun's own cap is a backstop above ours, so oversized bodies reach the handler and are counted.
            maxRequestBodySize: config.server.maxBodyBytes * 2 + 65_536,
            idleTimeout: 30,
            routes: { "/livekit/webhook": { POST: webhook } },
            fetch: (request) => api(request)
          })
        ),
        (server) => Effect.promise(() => server.stop())
      )
      // Tests and the launcher read the bound port from this line (the config may ask for port 0).
      yield* Effect.log("listening").pipe(Effect.annotateLogs({ host: server.hostname, port: server.port }))
    })
  )
