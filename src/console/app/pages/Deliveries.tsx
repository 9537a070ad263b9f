import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Loading, Said, type Outcome } from "../components/Alert.tsx"
import { LoadMore, useMorePages } from "../components/MorePages.tsx"
import { Id } from "../components/CopyButton.tsx"
import { Title } from "../components/Layout.tsx"
import { RetryButton } from "../components/RetryButton.tsx"
import { Select } from "../components/Select.tsx"
import { HttpResult, StatusBadge } from "../components/StatusBadge.tsx"
import { Table } from "../components/Table.tsx"
import { Time } from "../components/Time.tsx"
import { localInputToIso, plural } from "../format.ts"
import { useLoad } from "../load.ts"
import { href, place, setParams } from "../router.ts"
import { isOperator } from "../session.ts"
import { useTenantHosts } from "../tenants.ts"
import { DELIVERY_STATUSES, type Delivery } from "../types.ts"

const columns = (retried: (outcome: Outcome) => void) => [
  { header: "Id", cell: (d: Delivery) => <span class="id"><a href={href(`/deliveries/${d.id}`)}>{d.id}</a></span> },
  { header: "Event id", cell: (d: Delivery) => <Id value={d.eventId} what="event id" /> },
  { header: "Event type", cell: (d: Delivery) => d.type },
  { header: "Tenant", cell: (d: Delivery) => d.tenant },
  { header: "Room", cell: (d: Delivery) => (d.room ? <a href={href(`/calls/${encodeURIComponent(d.room)}`)}>{d.room}</a> : "—") },
  { header: "Status", cell: (d: Delivery) => <StatusBadge status={d.status} /> },
  { header: "Attempts", cell: (d: Delivery) => d.attempts, numeric: true },
  { header: "Last result", cell: (d: Delivery) => <HttpResult status={d.lastStatus} error={d.lastError} /> },
  { header: "Updated", cell: (d: Delivery) => <Time iso={d.updatedAt} /> },
  { header: "Action", cell: (d: Delivery) => (d.status === "failed" ? <RetryButton id={d.id} done={retried} /> : null) }
]

/** Requeues a tenant's failed deliveries created since a time. */
const Recover = ({ tenant, done }: { tenant: string; done: () => void }) => {
  const [outcome, setOutcome] = useState<Outcome>(null)
  const submit = async (event: Event) => {
    event.preventDefault()
    const since = ((event.currentTarget as HTMLFormElement).elements.namedItem("since") as HTMLInputElement).value
    const result = await api.tenants.recover(tenant, localInputToIso(since))
    setOutcome(result.ok ? { ok: true, text: `Requeued ${plural(result.value.requeued, "failed delivery", "failed deliveries")} of ${tenant}.` } : { ok: false, text: result.error.message })
    if (result.ok) done()
  }
  return (
    <form class="inline-form" onSubmit={submit} aria-labelledby="recover-heading">
      <h2 id="recover-heading">Recover {tenant}</h2>
      <span class="field">
        <label for="recover-since">Since</label>
        <input id="recover-since" name="since" type="datetime-local" required step={1} />
      </span>
      <button type="submit">Recover</button>
      <Said outcome={outcome} />
    </form>
  )
}

export const Deliveries = () => {
  const params = place.value.params
  const status = params.get("status") ?? ""
  const room = params.get("room") ?? ""
  const hosts = useTenantHosts()
  // A tenant must name one of its hosts; an operator may list every tenant's.
  const tenant = params.get("tenant") ?? (isOperator() ? "" : (hosts[0] ?? ""))
  const waiting = !isOperator() && tenant === ""
  const filters = { status, tenant, room }
  const { loaded, reload } = useLoad((signal) => (waiting ? new Promise(() => {}) : api.deliveries.list(filters, signal)), [status, tenant, room, waiting])
  const more = useMorePages((cursor) => api.deliveries.list({ ...filters, cursor }), [status, tenant, room])
  const [outcome, setOutcome] = useState<Outcome>(null)
  const retried = (said: Outcome) => {
    setOutcome(said)
    if (said?.ok) reload()
  }
  const tenantOptions = [...(isOperator() ? [["", "All tenants"] as const] : []), ...hosts.map((h) => [h, h] as const)]
  return (
    <>
      <Title>Deliveries</Title>
      <div class="filters">
        <Select id="deliveries-status" label="Status" value={status} options={[["", "All statuses"], ...DELIVERY_STATUSES.map((s) => [s, s] as const)]} onChange={(v) => setParams({ status: v })} />
        <Select id="deliveries-tenant" label="Tenant" value={tenant} options={tenantOptions} onChange={(v) => setParams({ tenant: v })} />
        {room && (
          <span class="field">
            Room {room} <a href={href("/deliveries", { status, tenant })}>show every room</a>
          </span>
        )}
      </div>
      <Said outcome={outcome} />
      <Loading loaded={loaded}>
        {(page) => (
          <>
            <Table caption="Deliveries, newest first" columns={columns(retried)} rows={[...page.items, ...more.items]} rowKey={(d) => d.id} empty="No deliveries match." />
            <LoadMore cursor={more.cursorAfter(page)} load={more.load} />
          </>
        )}
      </Loading>
      {tenant !== "" && <Recover tenant={tenant} done={reload} />}
    </>
  )
}
