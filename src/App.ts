import { Duration, Effect, Layer, Redacted } from "effect"
import { AppConfig } from "./AppConfig.ts"
import type { RouterConfig } from "./domain/Config.ts"
import type { StoreUnavailable } from "./domain/Errors.ts"
import { keyFromText } from "./domain/SecretBox.ts"
import { FileHooks } from "./hooks/FileHookSource.ts"
import { EffectStepsLive } from "./telemetry/EffectSteps.ts"
import { EngineClock } from "./delivery/EngineClock.ts"
import { DeliveryEngineLive, Forwarder } from "./delivery/Forwarder.ts"
import { QueueGaugesLive } from "./delivery/QueueGauges.ts"
import { HookTable } from "./hooks/HookTable.ts"
import { ServerLive } from "./http/Server.ts"
import { RemoteHooks } from "./hooks/HttpHookSource.ts"
import { Ingest } from "./ingest/Ingest.ts"
import { Replay } from "./ingest/Replay.ts"
import { JanitorLive } from "./store/Janitor.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { LiveConfig } from "./LiveConfig.ts"
import { JsonLoggingLive } from "./telemetry/Logging.ts"
import { Metrics } from "./telemetry/Metrics.ts"
import { TracingLive } from "./telemetry/TracingLive.ts"
import { ReclaimerLive } from "./delivery/Reclaimer.ts"
import { Router } from "./ingest/Router.ts"
import { SignatureVerifier } from "./ingest/SignatureVerifier.ts"
import type { StoreServices } from "./store/StoreLive.ts"
import { StoreLive } from "./store/StoreLive.ts"
import { WebhookSender } from "./delivery/WebhookSender.ts"

export interface AppOptions {
  /** The config file to watch for hook edits; without it the config's hooks are fixed. */
  readonly configFile?: { readonly path: string; readonly text: string } | undefined
}

/** SQLite unless the config names a Redis, whose TTLs come from the retention settings. */
const storeLayer = ({ store, retention }: RouterConfig): Layer.Layer<StoreServices, StoreUnavailable> => {
  const keys = (store.encryptionKey ?? []).map((key) => keyFromText(Redacted.value(key)))
  return store.redis === undefined
    ? StoreLive.sqlite(store.path, keys)
    : StoreLive.redis(
        {
          url: store.redis,
          prefix: store.prefix,
          leaseMs: Duration.toMillis(store.lease),
          dedupeMs: Duration.toMillis(retention.dedupe),
          pinsMs: Duration.toMillis(retention.pins)
        },
        keys
      )
}

/** Every service, wired in the direction data flows: verify → resolve → store → deliver. */
export const ServicesLive = (config: RouterConfig, options: AppOptions = {}) =>
  Replay.Default.pipe(
    Layer.provideMerge(Ingest.Default),
    // Only a shared store has leases to renew and other instances' deliveries to take over.
    Layer.provideMerge(config.store.redis === undefined ? Layer.empty : ReclaimerLive),
    Layer.provideMerge(Layer.mergeAll(SignatureVerifier.Default, Router.Default, QueueGaugesLive)),
    Layer.provideMerge(DeliveryEngineLive),
    Layer.provideMerge(Layer.mergeAll(HookTable.Default, WebhookSender.Default, JanitorLive)),
    Layer.provideMerge(
      Layer.mergeAll(FileHooks.Default, RemoteHooks.Default)
    ),
    Layer.provideMerge(
      // Below every service that makes spans: built before them and released after, so their last spans are flushed too.
      Layer.mergeAll(
        storeLayer(config),
        Metrics.Default,
        Lifecycle.Default,
        AppConfig.layer(config),
        LiveConfig.layer(config, options.configFile),
        TracingLive(config),
        EngineClock.Default
      )
    )
  )

/** The whole router: HTTP server, routes and services. */
export const AppLive = (config: RouterConfig, options: AppOptions = {}) =>
  ServerLive(config).pipe(Layer.provideMerge(ServicesLive(config, options)), Layer.provide(JsonLoggingLive))

/**
 * Graceful shutdown: refuse new webhooks (503) and report not ready, let
 * attempts in flight finish within `server.drainTimeout`, then stop. Whatever
 * is still pending stays in the store for the next start.
 */
const drain = (config: RouterConfig) =>
  Effect.gen(function* () {
    yield* (yield* Lifecycle).beginDrain
    yield* Effect.log("draining")
    const finished = yield* (yield* Forwarder).drain(config.server.drainTimeout)
    yield* Effect.log(finished._tag === "Some" ? "drained" : "drain timed out; unfinished attempts stay pending")
  })

/** Runs the router until interrupted (SIGTERM/SIGINT), draining before anything is released. */
export const runApp = (config: RouterConfig, options: AppOptions = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      // Built first and released last, so its count covers the whole run, drain included.
      yield* Layer.build(EffectStepsLive(process.env.ROUTER_COUNT_EFFECT_STEPS === "1").pipe(Layer.provide(JsonLoggingLive)))
      const context = yield* Layer.build(AppLive(config, options))
      // Added after the layers, so it runs before any of them is released.
      yield* Effect.addFinalizer(() => drain(config).pipe(Effect.provide(context), Effect.provide(JsonLoggingLive)))
      return yield* Effect.never
    })
  )
