import { Effect, Either } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { unroutableAlerts } from "../domain/Alert.ts"
import type { Delivery, NewDelivery, UnroutableEvent } from "../domain/Delivery.ts"
import { callEventId, eventTime } from "../domain/CallEvents.ts"
import { envelope } from "../domain/Envelope.ts"
import { ShuttingDown, type InvalidEvent, type InvalidSignature, type StoreUnavailable } from "../domain/Errors.ts"
import type { CallChange } from "../domain/Call.ts"
import { parseLiveKitEvent, type LiveKitEvent } from "../domain/LiveKitEvent.ts"
import { alertAcceptance, AlertQueue } from "../delivery/AlertQueue.ts"
import { LaneWindow } from "../delivery/LaneWindow.ts"
import { Lifecycle } from "../Lifecycle.ts"
import { logWarningWith } from "../telemetry/Logging.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { Tracing, type WebhookSpan } from "../telemetry/Tracing.ts"
import { REASONS, Router, type Routed, type Routing } from "./Router.ts"
import { SignatureVerifier } from "./SignatureVerifier.ts"
import { EventStore } from "../store/EventStore.ts"
import type { Acceptance } from "../store/Store.ts"

export type IngestOutcome = "accepted" | "duplicate"

/** A delivery to the routed tenant, in the call's lane, of the event itself or of a call event derived from it. */
const deliveryTo = ({ event, receivedAt, span }: Verified, routing: Routed, eventId: string, type: string, data: string): NewDelivery => ({
  eventId,
  eventType: type,
  tenant: routing.destination.tenant,
  url: routing.destination.url,
  room: routing.call.room,
  domain: routing.call.domain,
  eventCreatedAt: event.createdAtMs ?? null,
  secret: routing.destination.secret ?? null,
  trace: span.traceparent,
  call: routing.callKey ?? null,
  body: envelope({ type, timestampMs: eventTime(event, receivedAt), tenant: routing.destination.tenant, call: routing.call, data })
})

const deliveryOf = (verified: Verified, routing: Routing): NewDelivery | undefined =>
  routing._tag === "Routed" && routing.forward ? deliveryTo(verified, routing, verified.event.id, verified.event.event, verified.raw) : undefined

const callEventOf = (verified: Verified, routing: Routing): NewDelivery | undefined =>
  routing._tag === "Routed" && routing.callEvent !== undefined
    ? deliveryTo(verified, routing, callEventId(verified.event.id, routing.callEvent.type), routing.callEvent.type, JSON.stringify(routing.callEvent.data))
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
        reason: REASONS[routing.reason._tag],
        call: routing.callKey ?? null
      }
    : undefined

/** What the event does to its call's record (see CallChange); none for an event of no room. */
const callChangeOf = ({ event, receivedAt }: Verified, routing: Routing): CallChange | undefined =>
  routing.callKey === undefined || event.room === undefined
    ? undefined
    : {
        key: routing.callKey,
        room: event.room,
        roomSid: event.roomSid ?? null,
        at: receivedAt,
        event: { eventId: event.id, eventType: event.event, at: receivedAt, createdAt: event.createdAtMs ?? null },
        identity: routing.identity,
        startedAt: routing.startedAt,
        ended: routing.ended
      }

/** A webhook that passed the checks made before the store: signed by LiveKit, an event the router can read. */
export interface Verified {
  readonly event: LiveKitEvent
  readonly raw: string
  readonly receivedAt: number
  /** The request's span, which its phases (verify, resolve, store) and its answer end. */
  readonly span: WebhookSpan
}

/** A warning about one event, written once the batch is stored. */
type Warning = { readonly message: string; readonly fields: Record<string, unknown> }

/**
 * Makes what reaches no tenant visible: a count for every event, a warning for
 * SIP events and for fields read as absent because of their shape.
 */
const report = ({ event, span }: Verified, routing: Routing, warnings: Array<Warning>) => {
  if (event.ignored.length > 0) {
    for (const field of event.ignored) Metrics.count(Metrics.fieldsIgnored, { field })
    warnings.push({ message: "webhook fields of an unexpected shape ignored", fields: { eventId: event.id, type: event.event, fields: event.ignored, ...span.ids } })
  }
  if (routing._tag === "Routed") {
    if (!routing.forward) Metrics.count(Metrics.ignored, { reason: "filtered" })
    return
  }
  if (routing.reason === undefined) return Metrics.count(Metrics.ignored, { reason: "no_pin" })
  const reason = REASONS[routing.reason._tag]
  Metrics.count(Metrics.unroutable, { reason })
  warnings.push({
    message: "no tenant for SIP event",
    fields: {
      eventId: event.id,
      type: event.event,
      room: routing.call.room,
      reason,
      domain: routing.call.domain,
      // On a shared domain the dialled number is what the operator must map (E.164 when it reads as one).
      ...(routing.call.to !== null ? { number: routing.call.to } : {}),
      ...(routing.reason._tag === "MalformedHeader" ? { header: routing.reason.header, value: routing.reason.value } : {}),
      ...span.ids
    }
  })
}

/**
 * The inbound pipeline, in the one direction data flows: verify → parse →
 * resolve → store → enqueue. The checks before the store run per request;
 * what follows runs once per batch, the requests of one event-loop turn (see
 * docs/architecture.md, the hot-path rule).
 * It answers as soon as the batch is durable; tenants are reached in the background.
 */
export class Ingest extends Effect.Service<Ingest>()("Ingest", {
  effect: Effect.gen(function* () {
    const verifier = yield* SignatureVerifier
    const router = yield* Router
    const store = yield* EventStore
    const window = yield* LaneWindow
    const alertQueue = yield* AlertQueue
    const lifecycle = yield* Lifecycle
    const tracing = yield* Tracing
    const unroutable = unroutableAlerts((yield* AppConfig).alerts)

    const decoder = new TextDecoder()

    /** Starts a webhook's span, on its arrival; `check` and `receiveAll` carry it through, the answer ends it. */
    const begin = (): WebhookSpan => tracing.webhook()

    const check = (
      authorization: string | undefined,
      body: Uint8Array,
      receivedAt: number,
      span: WebhookSpan
    ): Either.Either<Verified, ShuttingDown | InvalidSignature | InvalidEvent> => {
      if (lifecycle.draining()) return Either.left(new ShuttingDown())
      span.phase("verify")
      const verified = verifier.verify(authorization, body, receivedAt)
      if (Either.isLeft(verified)) return Either.left(verified.left)
      const raw = decoder.decode(body)
      return Either.map(parseLiveKitEvent(raw), (event) => {
        span.event(event.id, event.event)
        span.passed()
        return { event, raw, receivedAt, span }
      })
    }

    // The phases of a batch's webhooks: not even a loop when not traced.
    const resolving = (batch: ReadonlyArray<Verified>) => {
      if (tracing.enabled) for (const { span } of batch) span.phase("resolve")
    }
    const storing = (batch: ReadonlyArray<Verified>, routings: ReadonlyArray<Routing>) => {
      if (!tracing.enabled) return
      batch.forEach(({ span }, i) => {
        const routing = routings[i]!
        if (routing._tag === "Routed") span.routed(routing.destination.tenant)
        span.phase("store")
      })
    }

    /**
     * The batch's acceptances, written with the `domain.unroutable` alerts they
     * raise (after them, in the same write as the records they tell of); the
     * batch's results, with the alerts queued.
     */
    const acceptWithAlerts = (acceptances: ReadonlyArray<Acceptance>) => {
      const alerts = unroutable.due(acceptances.flatMap((a) => (a.unroutable ? [a.unroutable] : [])))
      if (alerts.length === 0) return store.acceptAll(acceptances)
      return Effect.flatMap(store.acceptAll([...acceptances, ...alerts.map((alert) => alertAcceptance(alert.delivery, alert.at))]), (results) => {
        unroutable.stored(alerts)
        alertQueue.enqueueAccepted(results.slice(acceptances.length))
        return Effect.succeed(results.slice(0, acceptances.length))
      })
    }

    /**
     * Resolves, stores (one write) and queues a batch; an outcome per webhook, in order. Once written it is
     * queued even if LiveKit hangs up. A replay (of events that reached no tenant when they arrived) is
     * deduplicated under ids of its own, so each event is replayed once while its deliveries keep its id.
     */
    const receiveAll = (batch: ReadonlyArray<Verified>, replay = false): Effect.Effect<ReadonlyArray<IngestOutcome>, StoreUnavailable> => {
      resolving(batch)
      return Effect.flatMap(router.resolveAll(batch), (routings) => {
        storing(batch, routings)
        return Effect.uninterruptible(
          Effect.flatMap(
            acceptWithAlerts(
              batch.map((verified, i) => {
                const { event, receivedAt } = verified
                const routing = routings[i]!
                return {
                  eventId: replay ? `replay:${event.id}` : event.id,
                  receivedAt,
                  delivery: deliveryOf(verified, routing),
                  pinChange: routing._tag === "Routed" ? routing.pinChange : undefined,
                  unroutable: unroutableOf(event, routing, receivedAt),
                  callEvent: callEventOf(verified, routing),
                  call: callChangeOf(verified, routing),
                  // Kept while the store holds the call unrouted, so a replay can route it once a hook exists.
                  unroutedBody: routing._tag === "Unrouted" ? verified.raw : undefined
                }
              })
            ),
            (results) => {
              const warnings: Array<Warning> = []
              const queued: Array<Delivery> = []
              const outcomes = results.map((result, i): IngestOutcome => {
                if (result._tag === "Duplicate") return "duplicate"
                if (result.delivery) queued.push(result.delivery)
                if (result.callEvent) queued.push(result.callEvent)
                report(batch[i]!, routings[i]!, warnings)
                return "accepted"
              })
              const logged = warnings.length === 0 ? Effect.void : Effect.forEach(warnings, (w) => logWarningWith(w.message, w.fields), { discard: true })
              window.enqueueAll(queued)
              return Effect.as(logged, outcomes)
            }
          )
        )
      }).pipe(tracing.batch("ingest batch", batch, (verified) => verified.span.traceparent))
    }

    return { begin, check, receiveAll }
  })
}) {}
