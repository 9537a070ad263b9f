import { Clock, Effect, Either } from "effect"
import type { NewDelivery, UnroutableEvent } from "./Domain/Delivery.ts"
import { envelope } from "./Domain/Envelope.ts"
import { ShuttingDown, type InvalidEvent, type StoreUnavailable, type Unauthorized, type Unroutable } from "./Domain/Errors.ts"
import { parseLiveKitEvent, type LiveKitEvent } from "./Domain/LiveKitEvent.ts"
import { Forwarder } from "./Forwarder.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Metrics from "./Metrics.ts"
import { Router, type Routing } from "./Router.ts"
import { SignatureVerifier } from "./SignatureVerifier.ts"
import { Store } from "./Store.ts"

export type IngestOutcome = "accepted" | "duplicate"

const REASONS = {
  MissingHeader: "missing_header",
  MalformedHeader: "malformed_header",
  UnknownDomain: "unknown_domain"
} as const satisfies Record<Unroutable["_tag"], string>

const deliveryOf = (event: LiveKitEvent, raw: string, routing: Routing, receivedAt: number): NewDelivery | undefined =>
  routing._tag === "Routed" && routing.forward
    ? {
        eventId: event.id,
        eventType: event.event,
        tenant: routing.destination.tenant,
        url: routing.destination.url,
        room: routing.call.room,
        domain: routing.call.domain,
        eventCreatedAt: event.createdAtMs ?? null,
        secret: routing.destination.secret ?? null,
        body: envelope({
          type: event.event,
          timestampMs: event.createdAtMs ?? receivedAt,
          tenant: routing.destination.tenant,
          call: routing.call,
          rawEvent: raw
        })
      }
    : undefined

const unroutableOf = (event: LiveKitEvent, routing: Routing, at: number): UnroutableEvent | undefined =>
  routing._tag === "Unrouted" && routing.reason !== undefined && routing.headers !== undefined
    ? {
        at,
        eventId: event.id,
        eventType: event.event,
        room: routing.call.room,
        headers: routing.headers,
        domain: routing.call.domain,
        reason: REASONS[routing.reason._tag]
      }
    : undefined

/** Makes routing results that reach no tenant visible: a warning for SIP events, a count for all. */
const reportUnforwarded = (event: LiveKitEvent, routing: Routing) => {
  if (routing._tag === "Routed") {
    return routing.forward ? Effect.void : Metrics.increment(Metrics.ignored, { reason: "filtered" })
  }
  if (routing.reason === undefined) return Metrics.increment(Metrics.ignored, { reason: "no_pin" })
  const reason = REASONS[routing.reason._tag]
  return Effect.zipRight(
    Metrics.increment(Metrics.unroutable, { reason }),
    Effect.logWarning("no tenant for SIP event").pipe(
      Effect.annotateLogs({
        eventId: event.id,
        type: event.event,
        room: routing.call.room,
        reason,
        domain: routing.call.domain,
        ...(routing.reason._tag === "MalformedHeader" ? { header: routing.reason.header, value: routing.reason.value } : {})
      })
    )
  )
}

/** Odd fields were read as absent rather than refused (LiveKit would drop a 4xx): say which, so a sender can be fixed. */
const reportIgnored = (event: LiveKitEvent) =>
  event.ignored.length === 0
    ? Effect.void
    : Effect.zipRight(
        Effect.forEach(event.ignored, (field) => Metrics.increment(Metrics.fieldsIgnored, { field }), { discard: true }),
        Effect.logWarning("webhook fields of an unexpected shape ignored").pipe(
          Effect.annotateLogs({ eventId: event.id, type: event.event, fields: event.ignored })
        )
      )

/**
 * The inbound pipeline, in the one direction data flows:
 * verify → parse → resolve → store → enqueue. It answers as soon as the event
 * is durable; tenants are reached in the background.
 */
export class Ingest extends Effect.Service<Ingest>()("Ingest", {
  effect: Effect.gen(function* () {
    const verifier = yield* SignatureVerifier
    const router = yield* Router
    const store = yield* Store
    const forwarder = yield* Forwarder
    const lifecycle = yield* Lifecycle

    const decoder = new TextDecoder()

    /** Writes the event with its routing, then queues its delivery; once written it is queued even if LiveKit hangs up. */
    const storeAndQueue = (event: LiveKitEvent, raw: string, routing: Routing, receivedAt: number) =>
      Effect.uninterruptible(
        Effect.tap(
          store.accept({
            eventId: event.id,
            receivedAt,
            delivery: deliveryOf(event, raw, routing, receivedAt),
            pinChange: routing._tag === "Routed" ? routing.pinChange : undefined,
            unroutable: unroutableOf(event, routing, receivedAt)
          }),
          (result) => (result._tag === "Accepted" && result.delivery ? forwarder.enqueue(result.delivery) : Effect.void)
        )
      )

    // The checks before the store are plain functions; this runs on every webhook, so it takes few Effect steps.
    const receive = (
      authorization: string | undefined,
      body: Uint8Array
    ): Effect.Effect<IngestOutcome, ShuttingDown | Unauthorized | InvalidEvent | StoreUnavailable> =>
      Effect.flatMap(Clock.currentTimeMillis, (receivedAt): Effect.Effect<IngestOutcome, ShuttingDown | Unauthorized | InvalidEvent | StoreUnavailable> => {
        if (lifecycle.draining()) return Effect.fail(new ShuttingDown())
        const verified = verifier.verify(authorization, body, receivedAt)
        if (Either.isLeft(verified)) return Effect.fail(verified.left)
        const raw = decoder.decode(body)
        const parsed = parseLiveKitEvent(raw)
        if (Either.isLeft(parsed)) return Effect.fail(parsed.left)
        const event = parsed.right
        return Effect.flatMap(router.resolve(event), (routing) =>
          Effect.flatMap(storeAndQueue(event, raw, routing, receivedAt), (result) =>
            result._tag === "Duplicate"
              ? Effect.succeed("duplicate" as const)
              : Effect.as(Effect.zipRight(reportIgnored(event), reportUnforwarded(event, routing)), "accepted" as const)
          )
        )
      })

    return { receive }
  })
}) {}
