import { api } from "../api.ts"
import { Loading } from "../components/Alert.tsx"
import { Id } from "../components/CopyButton.tsx"
import { Title } from "../components/Layout.tsx"
import { Table } from "../components/Table.tsx"
import { Time } from "../components/Time.tsx"
import { useLoad } from "../load.ts"
import { navigate } from "../router.ts"
import type { UnroutableDomain } from "../types.ts"
import { newHookHref } from "./Hooks.tsx"

const COLUMNS = [
  { header: "Domain", cell: (u: UnroutableDomain) => u.domain ?? "(none)" },
  { header: "Reason", cell: (u: UnroutableDomain) => u.reason },
  { header: "Count", cell: (u: UnroutableDomain) => u.count, numeric: true },
  { header: "Last seen", cell: (u: UnroutableDomain) => <Time iso={u.lastSeen} /> },
  { header: "Latest event", cell: (u: UnroutableDomain) => <Id value={u.sampleEventId} what="event id" /> },
  { header: "Hints", cell: (u: UnroutableDomain) => (u.hints.length ? <ul class="hints">{u.hints.map((h) => <li>{h}</li>)}</ul> : "—") },
  {
    header: "Action",
    cell: (u: UnroutableDomain) =>
      u.domain !== null && u.reason === "unknown_domain" ? (
        <button type="button" class="small" onClick={() => navigate(newHookHref(u.domain!))}>
          Create hook
        </button>
      ) : null
  }
]

/** SIP events that reached no tenant, by domain and reason, with what to do about them. */
export const Unroutable = () => {
  const { loaded } = useLoad((signal) => api.unroutable.domains(signal), [])
  return (
    <>
      <Title>Unroutable</Title>
      <Loading loaded={loaded}>
        {({ items }) => (
          <Table caption="Unroutable events by domain, most recently seen first" columns={COLUMNS} rows={items} rowKey={(u) => `${u.domain}-${u.reason}`} empty="Every event found its tenant." />
        )}
      </Loading>
    </>
  )
}
