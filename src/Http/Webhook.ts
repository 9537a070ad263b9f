import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { Ingest } from "../Ingest.ts"
import * as Metrics from "../Metrics.ts"
import { errorResponse, readBody } from "./Responses.ts"

const received = (outcome: string) => Metrics.increment(Metrics.webhooksReceived, { outcome })

/**
 * POST /livekit/webhook. LiveKit retries 5xx and treats 4xx as final, so only a
 * store failure answers 5xx; routing problems are acknowledged (fail open).
 */
export const WebhookRoute = HttpLayerRouter.add("POST", "/livekit/webhook", (request) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const ingest = yield* Ingest
    const body = yield* readBody(request, config.server.maxBodyBytes)
    const outcome = yield* ingest.receive(request.headers["authorization"], body)
    yield* received(outcome)
    return HttpServerResponse.unsafeJson({ status: "received" })
  }).pipe(
    Effect.catchTags({
      PayloadTooLarge: (e) =>
        Effect.as(received("too_large"), errorResponse(413, "payload_too_large", `body exceeds ${e.limit} bytes`)),
      Unauthorized: (e) => Effect.as(received("unauthorized"), errorResponse(401, "unauthorized", e.reason)),
      InvalidEvent: (e) => Effect.as(received("invalid"), errorResponse(400, "invalid_event", e.message)),
      ShuttingDown: () => Effect.as(received("unavailable"), errorResponse(503, "shutting_down", "router is shutting down; retry")),
      StoreUnavailable: (e) =>
        Effect.zipRight(
          Effect.logError("event not stored; asking LiveKit to retry", e.cause),
          Effect.as(received("unavailable"), errorResponse(503, "store_unavailable", "event could not be stored; retry"))
        )
    })
  )
)
