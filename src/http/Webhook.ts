import { Effect, Either } from "effect"
import { Overloaded, PayloadTooLarge, StoreUnavailable, type InvalidEvent, type InvalidSignature, type ShuttingDown } from "../domain/Errors.ts"
import type { Ingest, IngestOutcome, Verified } from "../ingest/Ingest.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import type { WebhookSpan } from "../telemetry/Tracing.ts"
import { readBodyWithin } from "./Body.ts"
import { INTERNAL_ERROR } from "./Responses.ts"
import { TurnBatch } from "../TurnBatch.ts"

const json = (status: number, body: string, headers?: Record<string, string>) => new Response(body, { status, headers: { "content-type": "application/json", ...headers } })
const error = (status: number, code: string, message: string) => json(status, JSON.stringify({ error: { code, message } }), status === 503 ? RETRY_SOON : undefined)
/** LiveKit honours Retry-After on a 503; a second lets a brief store outage or a burst pass within its four retries. */
const RETRY_SOON = { "retry-after": "1" }
const OVERLOADED = new Overloaded()
const RECEIVED = JSON.stringify({ status: "received" })
/** LiveKit's words for a batch the store refused: its event, not the store, is what LiveKit retries. */
const NOT_STORED = "event could not be stored; retry"

type Refusal = Overloaded | PayloadTooLarge | ShuttingDown | InvalidSignature | InvalidEvent

/** A refusal's metric outcome, and the failure its span records. */
const describeRefusal = (e: Refusal) => {
  switch (e._tag) {
    case "PayloadTooLarge":
      return { outcome: "too_large", failure: "payload too large" }
    case "InvalidSignature":
      return { outcome: "unauthorized", failure: e.message }
    case "InvalidEvent":
      return { outcome: "invalid", failure: e.message }
    case "ShuttingDown":
      return { outcome: "unavailable", failure: "shutting down" }
    case "Overloaded":
      return { outcome: "overloaded", failure: "overloaded" }
  }
}

/** The answer to a webhook refused before the store, counted by outcome; it ends the webhook's span. */
const refused = (e: Refusal, span: WebhookSpan) => {
  const { outcome, failure } = describeRefusal(e)
  Metrics.count(Metrics.webhooksReceived, { outcome })
  span.end(e.status, failure)
  return error(e.status, e.code, e.message)
}

interface Waiting {
  readonly verified: Verified
  readonly answer: (response: Response) => void
}

/**
 * POST /livekit/webhook, as a native Bun route. LiveKit retries 5xx and treats
 * 4xx as final, so only a store failure or shutdown answers 5xx; routing
 * problems are acknowledged (fail open). Each request is read and checked on
 * its own; the requests that pass in one event-loop turn are resolved, stored
 * and queued together, and answered once that batch is durable. A client that hangs up does not undo its event.
 * At most `maxWaiting` requests are read or wait for the store at once; the next are refused unread.
 */
export const webhookHandler = (
  run: (effect: Effect.Effect<void>) => Promise<void>,
  ingest: Ingest,
  limits: { readonly maxBodyBytes: number; readonly maxWaiting: number }
) => {
  /** Requests read or waiting for the store now. */
  let held = 0
  const answerAll = (waiting: ReadonlyArray<Waiting>): Effect.Effect<void> =>
    ingest.receiveAll(waiting.map((w) => w.verified)).pipe(
      Effect.match({
        onSuccess: (outcomes: ReadonlyArray<IngestOutcome>) =>
          waiting.forEach((w, i) => {
            Metrics.count(Metrics.webhooksReceived, { outcome: outcomes[i]! })
            w.verified.span.end(200)
            w.answer(json(200, RECEIVED))
          }),
        onFailure: () =>
          waiting.forEach((w) => {
            Metrics.count(Metrics.webhooksReceived, { outcome: "unavailable" })
            w.verified.span.end(StoreUnavailable.status, "store unavailable")
            w.answer(error(StoreUnavailable.status, StoreUnavailable.code, NOT_STORED))
          })
      })
    )

  const batch = new TurnBatch<Waiting>((waiting) =>
    void run(
      answerAll(waiting).pipe(
        // Unexpected: every request of the batch gets the last-resort answer, and the cause is logged.
        Effect.catchAllCause((cause) =>
          Effect.zipRight(
            Effect.logError("internal error", cause).pipe(Effect.annotateLogs({ method: "POST", path: "/livekit/webhook" })),
            Effect.sync(() =>
              waiting.forEach((w) => {
                w.verified.span.end(500, "internal error")
                w.answer(json(500, JSON.stringify(INTERNAL_ERROR)))
              })
            )
          )
        )
      )
    )
  )

  return async (request: Request): Promise<Response> => {
    const span = ingest.begin()
    if (held >= limits.maxWaiting) return refused(OVERLOADED, span)
    held++
    try {
      const body = await readBodyWithin(request, limits.maxBodyBytes)
      if (body instanceof PayloadTooLarge) return refused(body, span)
      const checked = ingest.check(request.headers.get("authorization") ?? undefined, body, Date.now(), span)
      if (Either.isLeft(checked)) return refused(checked.left, span)
      return await new Promise<Response>((answer) => batch.add({ verified: checked.right, answer }))
    } finally {
      held--
    }
  }
}
