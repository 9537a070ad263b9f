import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Redacted } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { sortAtOf, type CallListing, type CallTimeline } from "../domain/Call.ts"
import { cursorKey, issueCursor, readCursor } from "../domain/CallCursor.ts"
import type { CallView, TimelineEntryView } from "../domain/CallViews.ts"
import { isDisableEntry } from "../domain/Delivery.ts"
import { BadRequest, NotFound } from "../domain/Errors.ts"
import { excerpt } from "../domain/Untrusted.ts"
import { CallHistory } from "../store/CallHistory.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { mayAccess, requireAccess } from "./Authorization.ts"
import { iso, requestedNumber } from "./Responses.ts"

const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms))

const callView = (c: CallListing): CallView => ({
  room: c.room,
  roomSid: c.roomSid,
  tenant: c.tenant,
  status: c.status,
  domain: c.domain,
  from: c.from,
  to: c.to,
  sipCallId: c.sipCallId,
  startedAt: isoOrNull(c.startedAt),
  endedAt: isoOrNull(c.endedAt),
  durationSeconds: c.startedAt !== null && c.endedAt !== null ? Math.max(0, c.endedAt - c.startedAt) / 1000 : null,
  endedBy: c.endedBy,
  disconnectReason: c.disconnectReason,
  routing: c.routing,
  deliveries: c.deliveries
})

/**
 * The call's events, attempts and expiries in time order (at the same moment,
 * an event before what it caused). The store keeps a delivery ended by its
 * tenant's disable as an attempt with no status and the error "disabled".
 */
const timelineView = ({ events, attempts, expiries }: CallTimeline): ReadonlyArray<TimelineEntryView> =>
  [
    ...events.map((e): [number, TimelineEntryView] => [
      e.at,
      { kind: "event", at: iso(e.at), eventId: e.eventId, eventType: e.eventType, createdAt: isoOrNull(e.createdAt), lagMs: e.createdAt === null ? null : e.at - e.createdAt }
    ]),
    ...attempts.map(({ at, deliveryId, eventId, eventType, ...outcome }): [number, TimelineEntryView] => [
      at,
      isDisableEntry(outcome)
        ? { kind: "disabled", at: iso(at), deliveryId, eventId, eventType }
        : { kind: "attempt", at: iso(at), deliveryId, eventId, eventType, ...outcome }
    ]),
    ...expiries.map(({ at, deliveryId, eventId, eventType }): [number, TimelineEntryView] => [at, { kind: "expired", at: iso(at), deliveryId, eventId, eventType }])
  ]
    .sort(([a], [b]) => a - b)
    .map(([, entry]) => entry)

const DEFAULT_LIMIT = 50

export const CallsLive = HttpApiBuilder.group(AdminApi, "calls", (handlers) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const history = yield* CallHistory
    const key = cursorKey(Redacted.value(config.livekit.apiSecret))

    return handlers
      .handle("list", ({ urlParams: q }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          if (q.tenant !== undefined) yield* requireAccess(principal, q.tenant)
          if (q.since !== undefined && q.until !== undefined && q.until <= q.since) return yield* BadRequest.at("until", "must be later than since")
          const after = q.cursor === undefined ? undefined : readCursor(key, q.cursor)
          if (q.cursor !== undefined && after === undefined) return yield* BadRequest.at("cursor", "not a cursor this router issued: pass a page's nextCursor as it is")
          const number = q.number === undefined ? undefined : yield* requestedNumber("number", q.number, config.defaultCountry)
          const limit = q.limit ?? DEFAULT_LIMIT
          // One more than asked says whether another page exists; a tenant token sees the calls of its own hosts only.
          const found = yield* history.calls({
            tenant: q.tenant,
            scope: principal._tag === "Tenant" ? principal.hosts : undefined,
            status: q.status,
            number,
            domain: q.domain,
            since: q.since?.getTime(),
            until: q.until?.getTime(),
            limit: limit + 1,
            after
          })
          const items = found.slice(0, limit)
          const last = items.at(-1)
          return { items: items.map(callView), nextCursor: found.length > limit && last ? issueCursor(key, { sortAt: sortAtOf(last), key: last.key }) : null }
        })
      )
      .handle("get", ({ path: { room } }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const found = yield* history.call(room)
          // Another tenant's call, or one no tenant has, is as absent as a call that never was: room names can carry numbers.
          if (found._tag === "None" || (principal._tag === "Tenant" && (found.value.tenant === null || !mayAccess(principal, found.value.tenant)))) {
            return yield* new NotFound({ message: `no call ${excerpt(room)}` })
          }
          const call = found.value
          return { ...callView(call), sip: call.sip, timeline: timelineView(call.timeline) }
        })
      )
  })
)
