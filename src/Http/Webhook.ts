import { Effect } from "effect"
import { PayloadTooLarge } from "../Domain/Errors.ts"
import type { Ingest } from "../Ingest.ts"
import * as Metrics from "../Metrics.ts"
import { readBodyWithin } from "./Body.ts"

type IngestError = Effect.Effect.Error<ReturnType<Ingest["receive"]>>

const received = (outcome: string) => Metrics.increment(Metrics.webhooksReceived, { outcome })

const json = (status: number, body: string) => new Response(body, { status, headers: { "content-type": "application/json" } })
const error = (status: number, code: string, message: string) => json(status, JSON.stringify({ error: { code, message } }))
const RECEIVED = JSON.stringify({ status: "received" })

/**
 * POST /livekit/webhook, as a native Bun route. LiveKit retries 5xx and treats
 * 4xx as final, so only a store failure or shutdown answers 5xx; routing
 * problems are acknowledged (fail open). A client that hangs up does not
 * interrupt the request: once verified, the event is stored and queued.
 */
export const webhookHandler = (run: (effect: Effect.Effect<Response>) => Promise<Response>, ingest: Ingest, maxBodyBytes: number) => {
  const accept = (authorization: string | undefined, body: Uint8Array | PayloadTooLarge): Effect.Effect<void, PayloadTooLarge | IngestError> =>
    body instanceof PayloadTooLarge ? Effect.fail(body) : Effect.flatMap(ingest.receive(authorization, body), received)
  const handle = (authorization: string | undefined, body: Uint8Array | PayloadTooLarge) =>
    accept(authorization, body).pipe(
      Effect.map(() => json(200, RECEIVED)),
      Effect.catchTags({
        PayloadTooLarge: (e) => Effect.as(received("too_large"), error(413, "payload_too_large", `body exceeds ${e.limit} bytes`)),
        Unauthorized: (e) => Effect.as(received("unauthorized"), error(401, "unauthorized", e.reason)),
        InvalidEvent: (e) => Effect.as(received("invalid"), error(400, "invalid_event", e.message)),
        ShuttingDown: () => Effect.as(received("unavailable"), error(503, "shutting_down", "router is shutting down; retry")),
        StoreUnavailable: (e) =>
          Effect.zipRight(
            Effect.logError("event not stored; asking LiveKit to retry", e.cause),
            Effect.as(received("unavailable"), error(503, "store_unavailable", "event could not be stored; retry"))
          )
      })
    )
  // The body is read before the Effect starts: one fiber per request, never suspended for I/O it does not own.
  return async (request: Request) => run(handle(request.headers.get("authorization") ?? undefined, await readBodyWithin(request, maxBodyBytes)))
}
