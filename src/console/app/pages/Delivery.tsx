import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Loading, Said, type Outcome } from "../components/Alert.tsx"
import { Id } from "../components/CopyButton.tsx"
import { Title } from "../components/Layout.tsx"
import { RetryButton } from "../components/RetryButton.tsx"
import { HttpResult, StatusBadge } from "../components/StatusBadge.tsx"
import { Table } from "../components/Table.tsx"
import { Time } from "../components/Time.tsx"
import { ms } from "../format.ts"
import { useLoad } from "../load.ts"
import { href } from "../router.ts"
import type { Attempt } from "../types.ts"

const HISTORY = [
  { header: "Attempt", cell: (a: Attempt) => a.attempt, numeric: true },
  { header: "At", cell: (a: Attempt) => <Time iso={a.at} /> },
  { header: "Result", cell: (a: Attempt) => <HttpResult status={a.status} error={a.error} /> },
  { header: "Latency", cell: (a: Attempt) => ms(a.latencyMs), numeric: true }
]

/** One delivery, at its own URL: it opens in a tab of its own from any list. */
export const DeliveryPage = ({ id }: { id: string }) => {
  const { loaded, reload } = useLoad((signal) => api.deliveries.get(id, signal), [id])
  const [outcome, setOutcome] = useState<Outcome>(null)
  const retried = (said: Outcome) => {
    setOutcome(said)
    if (said?.ok) reload()
  }
  return (
    <>
      <Title>Delivery {id}</Title>
      <Said outcome={outcome} />
      <Loading loaded={loaded}>
        {(d) => (
          <>
            <dl class="record">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={d.status} /> {d.status === "failed" && <RetryButton id={d.id} done={retried} />}
              </dd>
              <dt>Id</dt>
              <dd><Id value={d.id} what="delivery id" /></dd>
              <dt>Event id</dt>
              <dd><Id value={d.eventId} what="event id" /></dd>
              <dt>Event type</dt>
              <dd>{d.type}</dd>
              <dt>Tenant</dt>
              <dd><a href={href(`/hooks/${encodeURIComponent(d.tenant)}`)}>{d.tenant}</a></dd>
              <dt>URL</dt>
              <dd><code>{d.url}</code></dd>
              <dt>Call</dt>
              <dd>{d.room ? <a href={href(`/calls/${encodeURIComponent(d.room)}`)}>{d.room}</a> : "—"}</dd>
              <dt>Attempts (this budget)</dt>
              <dd>{d.attempts}</dd>
              <dt>Last result</dt>
              <dd><HttpResult status={d.lastStatus} error={d.lastError} /></dd>
              <dt>Next attempt</dt>
              <dd><Time iso={d.nextAttemptAt} /></dd>
              <dt>Created</dt>
              <dd><Time iso={d.createdAt} /></dd>
              <dt>Updated</dt>
              <dd><Time iso={d.updatedAt} /></dd>
            </dl>
            <section aria-labelledby="history-heading">
              <h2 id="history-heading">Attempts</h2>
              <Table caption="Every attempt, numbered over the delivery's life" columns={HISTORY} rows={d.history} rowKey={(a) => `${a.attempt}-${a.at}`} empty="No attempt yet." />
            </section>
          </>
        )}
      </Loading>
    </>
  )
}
