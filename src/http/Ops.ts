import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { Lifecycle } from "../Lifecycle.ts"
import { Metrics } from "../telemetry/Metrics.ts"
import { EventStore } from "../store/EventStore.ts"
import { errorResponse } from "./Responses.ts"

const MetricsRoute = HttpLayerRouter.add(
  "GET",
  "/metrics",
  Effect.flatMap(Metrics, (metrics) => metrics.render).pipe(
    Effect.map((text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" }))
  )
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
  }).pipe(Effect.catchTag("StoreUnavailable", () => Effect.succeed(errorResponse(503, "not_ready", "store unavailable"))))
)

export const OpsLive = Layer.mergeAll(MetricsRoute, HealthRoute, ReadyRoute)
