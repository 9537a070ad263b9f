import { api } from "../api.ts"
import { Alert, Loading } from "../components/Alert.tsx"
import { Title } from "../components/Layout.tsx"
import { MinuteChart } from "../components/MinuteChart.tsx"
import { StatusBadge } from "../components/StatusBadge.tsx"
import { Time } from "../components/Time.tsx"
import { ms, percent } from "../format.ts"
import { useLoad } from "../load.ts"
import { href } from "../router.ts"
import { isOperator } from "../session.ts"
import type { Overview as OverviewData } from "../types.ts"

const hostLinks = (hosts: ReadonlyArray<string>) =>
  hosts.length === 0 ? "none" : hosts.map((host, i) => <>{i > 0 && ", "}<a href={href(`/hooks/${encodeURIComponent(host)}`)}>{host}</a></>)

const OperatorOverview = ({ data }: { data: OverviewData }) => (
  <>
    <dl class="stats">
      <div><dt>Success rate (last hour)</dt><dd>{percent(data.successRate)}</dd></div>
      <div><dt>p99 attempt latency (last hour)</dt><dd>{data.p99Ms === null ? "—" : `≤ ${ms(data.p99Ms)}`}</dd></div>
      <div><dt>Queue depth</dt><dd><a href={href("/deliveries", { status: "pending" })}>{data.queue.pending} pending</a></dd></div>
      <div><dt>Oldest pending</dt><dd><Time iso={data.queue.oldestPendingAt} /></dd></div>
    </dl>
    <section aria-labelledby="chart-heading">
      <h2 id="chart-heading">Delivery attempts per minute</h2>
      <MinuteChart minutes={data.minutes} />
    </section>
    <section aria-labelledby="tenants-heading">
      <h2 id="tenants-heading">Tenants needing attention</h2>
      <p><StatusBadge status="failed" /> Failing: {hostLinks(data.tenants.failing)}</p>
      <p><StatusBadge status="disabled" /> Disabled: {hostLinks(data.tenants.disabled)}</p>
    </section>
    <section aria-labelledby="unroutable-heading">
      <h2 id="unroutable-heading">Most frequent unroutable domains</h2>
      {data.unroutable.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ol>
          {data.unroutable.map((u) => (
            <li key={u.domain}>{u.domain}: {u.count}</li>
          ))}
        </ol>
      )}
      <a href={href("/unroutable")}>All unroutable domains</a>
    </section>
  </>
)

/** A tenant's overview: its hooks' health, from what its session may read (the hour's figures are operators'). */
const TenantOverview = () => {
  const { loaded } = useLoad((signal) => api.hooks.list(signal), [])
  return (
    <Loading loaded={loaded}>
      {({ hooks }) => (
        <ul class="plain">
          {hooks.map((hook) => (
            <li key={hook.host}>
              <a href={href(`/hooks/${encodeURIComponent(hook.host)}`)}>{hook.host}</a> <StatusBadge status={hook.disabled ? "disabled" : "enabled"} />{" "}
              <a href={href("/deliveries", { tenant: hook.host, status: "failed" })}>failed deliveries</a>
            </li>
          ))}
        </ul>
      )}
    </Loading>
  )
}

export const Overview = () => {
  const operator = isOperator()
  const { loaded } = useLoad((signal) => (operator ? api.overview(signal) : Promise.resolve({ ok: true as const, value: null })), [operator])
  return (
    <>
      <Title>Overview</Title>
      {!operator ? (
        <TenantOverview />
      ) : loaded.state === "done" && !loaded.result.ok && loaded.result.status === 404 ? (
        <Alert>This router has no overview yet (GET /v1/overview answered 404).</Alert>
      ) : (
        <Loading loaded={loaded}>{(data) => data && <OperatorOverview data={data} />}</Loading>
      )}
    </>
  )
}
