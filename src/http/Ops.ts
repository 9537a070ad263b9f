import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, Redacted, SubscriptionRef } from "effect"
import { constantTimeEqual } from "../domain/Signing.ts"
import { Lifecycle } from "../Lifecycle.ts"
import { LiveConfig } from "../LiveConfig.ts"
import { Metrics } from "../telemetry/Metrics.ts"
import { EventStore } from "../store/EventStore.ts"
import { presentedToken } from "./Credentials.ts"
import { errorResponse } from "./Responses.ts"

/** With `admin.metricsToken` (as the file says now), only a scraper that sends it sees the metrics: their labels name every tenant. */
const MetricsRoute = HttpLayerRouter.add(
  "GET",
  "/metrics",
  Effect.gen(function* () {
    const { metricsToken } = (yield* SubscriptionRef.get((yield* LiveConfig).current)).admin
    if (metricsToken !== undefined && !constantTimeEqual(Redacted.value(metricsToken), presentedToken(yield* HttpServerRequest.HttpServerRequest))) {
      return errorResponse(401, "unauthorized", "/metrics needs the bearer token admin.metricsToken")
    }
    const text = yield* (yield* Metrics).render
    return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  })
)

/** Liveness: the process answers. */
const HealthRoute = HttpLayerRouter.add("GET", "/healthz", Effect.succeed(HttpServerResponse.unsafeJson({ status: "ok" })))

/** Readiness: not draining, and the store can take events, so acknowledging them is safe. */
const ReadyRoute = HttpLayerRouter.add(
  "GET",
  "/readyz",
  Effect.gen(function* () {
    if (yield* (yield* Lifecycle).isDraining) return errorResponse(503, "not_ready", "shutting down")
    yield* (yield* EventStore).ping
    return HttpServerResponse.unsafeJson({ status: "ready" })
  }).pipe(Effect.catchTag("StoreUnavailable", (e) => Effect.succeed(errorResponse(503, "not_ready", e.reason === undefined ? "store unavailable" : `store unavailable: ${e.reason}`))))
)

export const OpsLive = Layer.mergeAll(MetricsRoute, HealthRoute, ReadyRoute)
