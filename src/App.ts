import { HttpLayerRouter, HttpServer } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { AppConfig } from "./AppConfig.ts"
import type { RouterConfig } from "./Domain/Config.ts"
import type { StoreUnavailable } from "./Domain/Errors.ts"
import { Forwarder } from "./Forwarder.ts"
import { HookTable } from "./HookTable.ts"
import { AdminRoutes } from "./Http/Admin.ts"
import { OpsRoutes } from "./Http/Ops.ts"
import { WebhookRoute } from "./Http/Webhook.ts"
import { Ingest } from "./Ingest.ts"
import { JsonLogging } from "./Logging.ts"
import { Metrics } from "./Metrics.ts"
import { Router } from "./Router.ts"
import { SignatureVerifier } from "./SignatureVerifier.ts"
import { Store } from "./Store.ts"

/** Every service, wired in the direction data flows: verify → resolve → store → deliver. */
export const servicesLayer = (config: RouterConfig, store: Layer.Layer<Store, StoreUnavailable> = Store.sqlite(config.store.path)) =>
  Ingest.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(SignatureVerifier.Default, Router.Default, Forwarder.Default)),
    Layer.provideMerge(HookTable.Default),
    Layer.provideMerge(Layer.mergeAll(store, Metrics.Default, AppConfig.layer(config)))
  )

/** Tests and the launcher read the bound port from this line (the config may ask for port 0). */
const announce = Layer.effectDiscard(
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    server.address._tag === "TcpAddress"
      ? Effect.log("listening").pipe(Effect.annotateLogs({ host: server.address.hostname, port: server.address.port }))
      : Effect.void
  )
)

const Routes = Layer.mergeAll(WebhookRoute, AdminRoutes, OpsRoutes)

/** The whole router: HTTP server, routes and services. */
export const appLayer = (config: RouterConfig) =>
  HttpLayerRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.merge(announce),
    Layer.provide(servicesLayer(config)),
    Layer.provide(
      BunHttpServer.layer({
        hostname: config.server.host,
        port: config.server.port,
        // Bun's own cap is a backstop above ours, so oversized bodies reach the handler and are counted.
        maxRequestBodySize: config.server.maxBodyBytes * 2 + 65_536,
        idleTimeout: 30
      })
    ),
    Layer.provide(JsonLogging)
  )
