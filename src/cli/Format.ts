/** How the CLI prints the router's answers: pure functions of the API's views. */
import type { CallDetailView, CallPageView, CallView, TimelineEntryView } from "../domain/CallViews.ts"
import type { UnroutableDomainView } from "../domain/DeliveryViews.ts"
import type { DeliveryDetailView, DeliveryPageView, DeliveryView, RecoveryView, UnroutableView } from "../domain/DeliveryViews.ts"
import type { ExplainView } from "../domain/ExplainViews.ts"
import { HookCreated, type HookView, type NumberView, type PatchedHookView, type RotationView, type SavedHookView, type TestResultView } from "../domain/HookViews.ts"
import { excerpt } from "../domain/Untrusted.ts"

/** Left-aligned columns two spaces apart; the last column is not padded. */
export const formatTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)))
  return [header, ...rows]
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  "))
    .join("\n")
}

/** `key: value` lines with the values aligned. */
const formatFields = (fields: ReadonlyArray<readonly [string, string]>): string => {
  const width = Math.max(...fields.map(([key]) => key.length)) + 1
  return fields.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`).join("\n")
}

const orDash = (value: string | number | null) => (value === null ? "-" : String(value))

const eventsText = (events: ReadonlyArray<string> | null) => (events === null ? "all" : events.length === 0 ? "none" : events.join(","))

const headersText = (headers: ReadonlyArray<string>) => (headers.length > 0 ? headers.join(",") : "-")

export const formatHookList = (hooks: ReadonlyArray<HookView>): string =>
  hooks.length === 0
    ? "no hooks"
    : formatTable(
        ["host", "url", "source", "events", "rateLimit", "maxAge", "headers", "disabled"],
        hooks.map((hook) => [
          hook.host,
          hook.url,
          hook.source,
          eventsText(hook.events),
          orDash(hook.rateLimit),
          orDash(hook.maxAge),
          headersText(hook.headers),
          hook.disabled ? "yes" : "no"
        ])
      )

export const formatHook = (hook: HookView): string =>
  formatFields([
    ["host", hook.host],
    ["url", hook.url],
    ["source", hook.source],
    ["events", eventsText(hook.events)],
    ["rateLimit", orDash(hook.rateLimit)],
    ["maxAge", orDash(hook.maxAge)],
    ["own secret", hook.hasOwnSecret ? "yes" : "no (signed with signing.secret)"],
    ["headers", hook.headers.length > 0 ? hook.headers.join(", ") : "-"],
    ["auth", hook.hasAuth ? "yes" : "no"],
    ["disabled", hook.disabled ? `yes, since ${hook.disabledAt}` : "no"]
  ])

const STORE_IT = "Store this secret now: the router never shows it again."

/** The fields a change took away, if it took any. */
const clearedLines = (cleared: ReadonlyArray<string> | undefined, why = "") => (cleared === undefined || cleared.length === 0 ? [] : [`cleared: ${cleared.join(", ")}${why}`])

/** A created hook is a HookCreated (the router answered 201); a replaced one a plain view (200), which says what it lost. */
export const formatHookSet = (saved: SavedHookView): string =>
  [
    `${saved instanceof HookCreated ? "created" : "updated"} ${saved.host} -> ${saved.url}`,
    ...clearedLines(saved.cleared, ` (hooks set replaces the whole hook; hooks update ${saved.host} changes only what it is given)`),
    ...(saved.secret === undefined ? [] : [`secret: ${saved.secret}`, STORE_IT])
  ].join("\n")

export const formatHookUpdate = (patched: PatchedHookView): string =>
  [`updated ${patched.host} -> ${patched.url}`, ...clearedLines(patched.cleared)].join("\n")

export const formatEnabled = (hook: HookView): string =>
  [
    `enabled ${hook.host}: new deliveries flow again.`,
    `Those that failed while it was disabled are resent by: tenants recover ${hook.host} --since TIME`
  ].join("\n")

export const formatTest = (answer: TestResultView): string =>
  formatFields([
    ["url", answer.url],
    ["delivered", answer.delivered ? "yes" : "no"],
    ["status", orDash(answer.status)],
    ...(answer.error === null ? [] : [["error", answer.error] as const]),
    ["latency", `${answer.latencyMs}ms`]
  ])

export const formatRotation = (answer: RotationView): string =>
  [
    `new secret for ${answer.host}: ${answer.secret}`,
    STORE_IT,
    `The previous secret keeps signing deliveries, next to the new one, until ${answer.previousSecretExpiresAt}.`
  ].join("\n")

export const formatNumberList = (numbers: ReadonlyArray<NumberView>): string =>
  numbers.length === 0
    ? "no numbers"
    : formatTable(["number", "host", "source"], numbers.map((entry) => [entry.number, entry.host, entry.source]))

export const formatDeliveryList = (page: DeliveryPageView): string =>
  [
    page.items.length === 0
      ? "no deliveries"
      : formatTable(
          ["id", "status", "tenant", "type", "attempts", "lastStatus", "createdAt"],
          page.items.map((d) => [String(d.id), d.status, d.tenant, d.type, String(d.attempts), orDash(d.lastStatus ?? d.lastError), d.createdAt])
        ),
    ...(page.nextCursor === null ? [] : [`more: --cursor ${page.nextCursor}`])
  ].join("\n")

const deliveryFields = (d: DeliveryView): ReadonlyArray<readonly [string, string]> => [
  ["id", String(d.id)],
  ["status", d.status],
  ["tenant", d.tenant],
  ["url", d.url],
  ["type", d.type],
  ["eventId", d.eventId],
  ["room", orDash(d.room)],
  ["attempts", String(d.attempts)],
  ["lastStatus", orDash(d.lastStatus)],
  ["lastError", orDash(d.lastError)],
  ["nextAttemptAt", orDash(d.nextAttemptAt)],
  ["createdAt", d.createdAt],
  ["updatedAt", d.updatedAt]
]

export const formatDelivery = (d: DeliveryDetailView): string =>
  [
    formatFields(deliveryFields(d)),
    "",
    d.history.length === 0
      ? "no attempts yet"
      : formatTable(
          ["attempt", "at", "status", "latency"],
          d.history.map((a) => [String(a.attempt), a.at, orDash(a.status ?? a.error), `${a.latencyMs}ms`])
        )
  ].join("\n")

export const formatRetried = (d: DeliveryView): string => `requeued delivery ${d.id} (${d.tenant}, ${d.type})`

export const formatRecovery = (r: RecoveryView): string => `requeued ${r.requeued} failed deliveries of ${r.tenant} created since ${r.since}`

export const formatUnroutableList = (items: ReadonlyArray<UnroutableView>): string =>
  items.length === 0
    ? "no unroutable events"
    : formatTable(
        ["at", "reason", "domain", "type", "dialled", "eventId"],
        items.map((u) => [u.at, u.reason, orDash(u.domain), u.type, orDash(u.headers.dialled), u.eventId])
      )

/** The decision, one line per attribute (values quoted: callers set them), then the hints. */
export const formatExplanation = (answer: ExplainView): string =>
  [
    formatFields([
      ["routed", answer.routed ? "yes" : `no (${answer.reason})`],
      ["tenant", orDash(answer.tenant)],
      ["url", orDash(answer.url)],
      ["rule", orDash(answer.rule)],
      ["pattern", orDash(answer.pattern)]
    ]),
    "",
    formatTable(
      ["attribute", "value", "gave", "outcome"],
      answer.steps.map((step) => [step.source, step.value === null ? "-" : excerpt(step.value), orDash(step.domain), step.outcome])
    ),
    ...(answer.hints.length === 0 ? [] : ["", "hints:", ...answer.hints.map((hint) => `- ${hint}`)])
  ].join("\n")

const durationText = (seconds: number | null) => (seconds === null ? "-" : `${seconds}s`)

const statusText = (call: CallView) => (call.routing.reason === null ? call.status : `${call.status} (${call.routing.reason})`)

/** The counts that are not zero, e.g. `2 delivered, 1 failed`. */
const deliveriesText = ({ deliveries }: CallView) =>
  Object.entries(deliveries)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(", ") || "none"

export const formatCallList = (page: CallPageView): string =>
  [
    page.items.length === 0
      ? "no calls"
      : formatTable(
          ["startedAt", "status", "tenant", "from", "to", "duration", "deliveries", "room"],
          page.items.map((c) => [orDash(c.startedAt), statusText(c), orDash(c.tenant), orDash(c.from), orDash(c.to), durationText(c.durationSeconds), deliveriesText(c), c.room])
        ),
    ...(page.nextCursor === null ? [] : [`more: --cursor ${page.nextCursor}`])
  ].join("\n")

const routingText = ({ routing }: CallView) =>
  routing.reason !== null ? `none: ${routing.reason}` : routing.rule === null ? "-" : `${routing.rule} ${orDash(routing.pattern)} (from ${orDash(routing.source)})`

/** One line's cells: when, what, which event, and what happened. */
const entryCells = (entry: TimelineEntryView): ReadonlyArray<string> => {
  switch (entry.kind) {
    case "event":
      return [entry.at, "event", entry.eventType, `${entry.eventId}${entry.lagMs === null ? "" : `, lag ${entry.lagMs}ms`}`]
    case "attempt":
      return [entry.at, "attempt", entry.eventType, `delivery ${entry.deliveryId} #${entry.attempt}: ${orDash(entry.status ?? entry.error)} in ${entry.latencyMs}ms`]
    case "expired":
      return [entry.at, "expired", entry.eventType, `delivery ${entry.deliveryId}: older than the hook's maxAge, not sent`]
    case "disabled":
      return [entry.at, "disabled", entry.eventType, `delivery ${entry.deliveryId}: the tenant was disabled, not sent`]
  }
}

export const formatCall = (call: CallDetailView): string =>
  [
    formatFields([
      ["room", call.room],
      ["roomSid", orDash(call.roomSid)],
      ["status", call.status],
      ["tenant", orDash(call.tenant)],
      ["routing", routingText(call)],
      ["domain", orDash(call.domain)],
      ["from", orDash(call.from)],
      ["to", orDash(call.to)],
      ["sipCallId", orDash(call.sipCallId)],
      ["startedAt", orDash(call.startedAt)],
      ["endedAt", orDash(call.endedAt)],
      ["duration", durationText(call.durationSeconds)],
      ["endedBy", orDash(call.endedBy)],
      ["disconnectReason", orDash(call.disconnectReason)],
      ["deliveries", deliveriesText(call)]
    ]),
    "",
    call.timeline.length === 0 ? "no timeline" : formatTable(["at", "kind", "type", "detail"], call.timeline.map(entryCells))
  ].join("\n")

export const formatUnroutableDomains = (items: ReadonlyArray<UnroutableDomainView>): string =>
  items.length === 0
    ? "no unroutable events"
    : [
        formatTable(
          ["lastSeen", "reason", "domain", "count", "firstSeen", "sampleEventId"],
          items.map((g) => [g.lastSeen, g.reason, orDash(g.domain), String(g.count), g.firstSeen, g.sampleEventId])
        ),
        ...items.flatMap((g) => g.hints.map((hint) => `${orDash(g.domain)}: ${hint}`))
      ].join("\n")
