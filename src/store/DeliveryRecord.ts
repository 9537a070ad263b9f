import { Schema } from "effect"
import { Delivery, NewDelivery } from "../domain/Delivery.ts"
import type { QueuedDelivery } from "./Store.ts"

// A delivery as both stores keep it: one field (SQLite: column; Redis: hash field) per field of
// the schemas, so their column and field lists derive from these and cannot drift apart.

/** What acceptance writes, in this order. */
export const NEW_FIELDS = Object.keys(NewDelivery.fields) as ReadonlyArray<keyof NewDelivery>

/** Every field of a stored delivery. */
export const DELIVERY_FIELDS = Object.keys(Delivery.fields) as ReadonlyArray<keyof Delivery>

/** What the queue reads return: everything but the body, which is read only when an attempt is due. */
const Queued = Delivery.omit("body")
export const QUEUED_FIELDS = Object.keys(Queued.fields) as ReadonlyArray<keyof typeof Queued.Type>

// Plain structs, decoded once per row: a queue read returns hundreds of rows at a time. Both throw on a row that does not decode.
export const decodeDelivery: (row: unknown) => Delivery = Schema.decodeUnknownSync(Delivery)
export const decodeQueued: (row: unknown) => QueuedDelivery = Schema.decodeUnknownSync(Queued)
