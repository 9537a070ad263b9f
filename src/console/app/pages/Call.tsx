import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Loading, Said, type Outcome } from "../components/Alert.tsx"
import { Id } from "../components/CopyButton.tsx"
import { Title } from "../components/Layout.tsx"
import { RetryButton } from "../components/RetryButton.tsx"
import { HttpResult, StatusBadge } from "../components/StatusBadge.tsx"
import { Table } from "../components/Table.tsx"
import { Time } from "../components/Time.tsx"
import { duration, ms } from "../format.ts"
import { useLoad } from "../load.ts"
import { href } from "../router.ts"
import type { CallDetail, Delivery, TimelineEntry } from "../types.ts"

const routingText = (call: CallDetail) =>
  call.routing.reason !== null
    ? `not routed: ${call.routing.reason}`
    : `${call.routing.rule ?? "?"} match on ${call.routing.pattern ?? "?"}, from ${call.routing.source ?? "?"}`

const deliveryLink = (id: number) => <a href={href(`/deliveries/${id}`)}>delivery {id}</a>

const detail = (entry: TimelineEntry) => {
  switch (entry.kind) {
    case "event":
      return (
        <>
          <Id value={entry.eventId} what="event id" /> lag {ms(entry.lagMs)}
        </>
      )
    case "attempt":
      return (
        <>
          {deliveryLink(entry.deliveryId)} attempt {entry.attempt}: <HttpResult status={entry.status} error={entry.error} /> in {ms(entry.latencyMs)}
        </>
      )
    case "expired":
      return <>{deliveryLink(entry.deliveryId)} expired unsent (older than the hook's maxAge)</>
    case "disabled":
      return <>{deliveryLink(entry.deliveryId)} not sent: the tenant is disabled</>
  }
}

const TIMELINE = [
  { header: "At", cell: (e: TimelineEntry) => <Time iso={e.at} /> },
  { header: "Kind", cell: (e: TimelineEntry) => e.kind },
  { header: "Event type", cell: (e: TimelineEntry) => e.eventType },
  { header: "Detail", cell: (e: TimelineEntry) => detail(e) }
]

/** The call's failed deliveries, each with Retry: a call's problems are fixed from the call. */
const FailedDeliveries = ({ call }: { call: CallDetail }) => {
  const { loaded, reload } = useLoad(
    (signal) => api.deliveries.list({ room: call.room, status: "failed", ...(call.tenant ? { tenant: call.tenant } : {}) }, signal),
    [call.room, call.tenant, call.deliveries.failed]
  )
  const [outcome, setOutcome] = useState<Outcome>(null)
  const retried = (said: Outcome) => {
    setOutcome(said)
    if (said?.ok) reload()
  }
  if (call.tenant === null || call.deliveries.failed === 0) return null
  return (
    <section aria-labelledby="failed-heading">
      <h2 id="failed-heading">Failed deliveries</h2>
      <Said outcome={outcome} />
      <Loading loaded={loaded}>
        {(page) => (
          <Table
            caption="Failed deliveries of this call"
            rows={page.items}
            rowKey={(d) => d.id}
            empty="None."
            columns={[
              { header: "Delivery", cell: (d: Delivery) => deliveryLink(d.id) },
              { header: "Event type", cell: (d: Delivery) => d.type },
              { header: "Last result", cell: (d: Delivery) => <HttpResult status={d.lastStatus} error={d.lastError} /> },
              { header: "Action", cell: (d: Delivery) => <RetryButton id={d.id} done={retried} /> }
            ]}
          />
        )}
      </Loading>
    </section>
  )
}

export const CallPage = ({ id }: { id: string }) => {
  const { loaded, reload } = useLoad((signal) => api.calls.get(id, signal), [id])
  const room = loaded.state === "done" && loaded.result.ok ? loaded.result.value.room : id
  return (
    <>
    <Title>Call {room}</Title>
    <Loading loaded={loaded}>
      {(call) => (
        <>
          <dl class="record">
            <dt>Status</dt>
            <dd><StatusBadge status={call.status} /></dd>
            <dt>Tenant</dt>
            <dd>{call.tenant ? <a href={href(`/hooks/${encodeURIComponent(call.tenant)}`)}>{call.tenant}</a> : "—"}</dd>
            <dt>Domain</dt>
            <dd>{call.domain ?? "—"}</dd>
            <dt>From</dt>
            <dd>{call.from ?? "—"}</dd>
            <dt>To</dt>
            <dd>{call.to ?? "—"}</dd>
            <dt>Routing</dt>
            <dd>{routingText(call)}</dd>
            <dt>Started</dt>
            <dd><Time iso={call.startedAt} /></dd>
            <dt>Ended</dt>
            <dd><Time iso={call.endedAt} />{call.endedBy ? ` (${call.endedBy}${call.disconnectReason ? `, ${call.disconnectReason}` : ""})` : ""}</dd>
            <dt>Duration</dt>
            <dd>{duration(call.durationSeconds)}</dd>
            <dt>Room sid</dt>
            <dd>{call.roomSid ? <Id value={call.roomSid} what="room sid" /> : "—"}</dd>
            <dt>SIP call id</dt>
            <dd>{call.sipCallId ? <Id value={call.sipCallId} what="SIP call id" /> : "—"}</dd>
            <dt>Deliveries</dt>
            <dd>
              <a href={href("/deliveries", { room: call.room, ...(call.tenant ? { tenant: call.tenant } : {}) })}>
                {call.deliveries.delivered} delivered, {call.deliveries.pending} pending, {call.deliveries.failed} failed, {call.deliveries.expired} expired
              </a>
            </dd>
          </dl>
          <FailedDeliveries call={call} />
          <section aria-labelledby="timeline-heading" role="region">
            <h2 id="timeline-heading">Timeline</h2>
            <button type="button" class="small" onClick={reload}>
              Refresh
            </button>
            <Table caption="Events and delivery attempts, in time order" columns={TIMELINE} rows={call.timeline} rowKey={(e) => `${e.kind}-${e.at}-${"deliveryId" in e ? e.deliveryId : e.eventId}-${"attempt" in e ? e.attempt : ""}`} empty="Nothing yet." />
          </section>
        </>
      )}
    </Loading>
    </>
  )
}
