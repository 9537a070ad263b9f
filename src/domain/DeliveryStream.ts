import { Schema } from "effect"
import { Delivery, type DeliveryChange } from "./Delivery.ts"
import { DeliveryTenant } from "./DeliveryViews.ts"
import { strict } from "./HookViews.ts"
import { oneOf } from "./Untrusted.ts"

/**
 * The live stream of delivery changes (`GET /v1/stream`) on the wire: what
 * selects it, and each Server-Sent Event's `data`. The router writes the
 * events as plain JSON; a client (the CLI's `listen`) decodes them with
 * `StreamEvent`.
 */

/** `1` or `true`; `0` or `false`. */
const Flag = Schema.transform(oneOf(Schema.Literal("1", "true", "0", "false")), Schema.Boolean, {
  strict: true,
  decode: (text) => text === "1" || text === "true",
  encode: (flag) => (flag ? "1" : "0")
})

/** A change's id as the router sent it (opaque; its store's own), bounded so a bad one is a 400, not a read. */
const ChangeId = Schema.String.pipe(Schema.maxLength(64))

export const StreamParams = Schema.Struct({
  tenant: Schema.optional(DeliveryTenant).annotations({ description: "one tenant's host, or @alerts (a tenant token: one of its hosts; without it, all of them)" }),
  bodies: Schema.optional(Flag).annotations({ description: "1: each event also carries the delivery's body and its Standard Webhooks headers, signed now" }),
  lastEventId: Schema.optional(ChangeId).annotations({ description: "resume after this event id, for clients that cannot set Last-Event-ID (the header wins)" })
}).annotations(strict)

export const StreamHeaders = Schema.Struct({
  "last-event-id": Schema.optional(ChangeId).annotations({ description: "resume after this event id: what the store still holds, then live" })
})

/** The Standard Webhooks headers a delivery of the body carries, signed when the event was sent. */
export const SignedHeaders = Schema.Struct({
  "webhook-id": Schema.String,
  "webhook-timestamp": Schema.String,
  "webhook-signature": Schema.String
})
export type SignedHeaders = typeof SignedHeaders.Type

/** One event's `data`: the delivery as of the change. With `bodies=1`, its body and headers too (null: pruned, or no secret to sign with). */
export const StreamEvent = Schema.Struct({
  deliveryId: Schema.Number,
  ...Delivery.pick("tenant", "eventId", "eventType", "room", "status", "attempts").fields,
  at: Schema.String,
  body: Schema.optional(Schema.NullOr(Schema.String)),
  headers: Schema.optional(Schema.NullOr(SignedHeaders))
})
export type StreamEvent = typeof StreamEvent.Type

/** A change that queued its delivery (accepted, or requeued by an operator), as opposed to an attempt's or an expiry's. */
export const isQueued = (event: Pick<StreamEvent, "status" | "attempts">) => event.status === "pending" && event.attempts === 0

export const streamEvent = (change: DeliveryChange): StreamEvent => ({
  deliveryId: change.deliveryId,
  tenant: change.tenant,
  eventId: change.eventId,
  eventType: change.eventType,
  room: change.room,
  status: change.status,
  attempts: change.attempts,
  at: new Date(change.at).toISOString()
})

/** An SSE event: its id (where a client resumes) and one line of JSON. */
export const eventFrame = (id: string, data: StreamEvent) => `id: ${id}\ndata: ${JSON.stringify(data)}\n\n`

/** An SSE comment: clients ignore it; it keeps an idle connection open and shows the stream is up. */
export const commentFrame = (text: string) => `: ${text}\n\n`
