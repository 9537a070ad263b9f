import { useEffect, useRef, useState } from "preact/hooks"
import { api, type Result } from "../api.ts"
import { Loading } from "../components/Alert.tsx"
import { LoadMore, useMorePages } from "../components/MorePages.tsx"
import { Title } from "../components/Layout.tsx"
import { Select } from "../components/Select.tsx"
import { StatusBadge } from "../components/StatusBadge.tsx"
import { Table } from "../components/Table.tsx"
import { Time } from "../components/Time.tsx"
import { duration } from "../format.ts"
import { useLoad } from "../load.ts"
import { href, place, setParams } from "../router.ts"
import { isOperator } from "../session.ts"
import { streamStateText, useStream } from "../stream.ts"
import { useTenantHosts } from "../tenants.ts"
import { CALL_STATUSES, type Call, type Page } from "../types.ts"

/** A number in any spelling: digits with the usual punctuation, maybe `tel:`. */
const looksLikeNumber = (text: string) => /^(tel:)?[+\d\s().\-/]+$/i.test(text) && (text.match(/\d/g)?.length ?? 0) >= 3
const looksLikeDomain = (text: string) => /^[a-z0-9*_-]+(\.[a-z0-9_-]+)+\.?$/i.test(text)

/**
 * One search box for numbers, rooms and domains: a number goes to the API's
 * `number` filter, a domain to `domain`, and anything else (a domain too, as
 * room names may have dots) is looked up as a room name or sid.
 */
const search = async (q: string, filters: { status?: string; tenant?: string }, cursor: string | undefined, signal: AbortSignal): Promise<Result<Page<Call>>> => {
  if (q === "") return api.calls.list({ ...filters, ...(cursor ? { cursor } : {}) }, signal)
  if (looksLikeNumber(q)) return api.calls.list({ ...filters, number: q, ...(cursor ? { cursor } : {}) }, signal)
  const [byDomain, byRoom] = await Promise.all([
    looksLikeDomain(q) ? api.calls.list({ ...filters, domain: q, ...(cursor ? { cursor } : {}) }, signal) : undefined,
    cursor ? undefined : api.calls.get(q, signal)
  ])
  const room = byRoom?.ok && (!filters.status || byRoom.value.status === filters.status) && (!filters.tenant || byRoom.value.tenant === filters.tenant) ? [byRoom.value] : []
  if (byDomain && !byDomain.ok) return byDomain
  const items = [...room, ...(byDomain?.ok ? byDomain.value.items.filter((c) => c.roomSid !== room[0]?.roomSid) : [])]
  return { ok: true, value: { items, nextCursor: byDomain?.ok ? byDomain.value.nextCursor : null } }
}

const callKey = (call: Call) => call.roomSid ?? `${call.room}@${call.startedAt}`

const COLUMNS = [
  { header: "Room", cell: (c: Call) => <a href={href(`/calls/${encodeURIComponent(c.room)}`)}>{c.room}</a> },
  { header: "Status", cell: (c: Call) => <StatusBadge status={c.status} /> },
  { header: "Tenant", cell: (c: Call) => c.tenant ?? "—" },
  { header: "From", cell: (c: Call) => c.from ?? "—" },
  { header: "To", cell: (c: Call) => c.to ?? "—" },
  { header: "Started", cell: (c: Call) => <Time iso={c.startedAt} /> },
  { header: "Duration", cell: (c: Call) => duration(c.durationSeconds) },
  {
    header: "Deliveries",
    cell: (c: Call) => `${c.deliveries.delivered} delivered, ${c.deliveries.pending} pending, ${c.deliveries.failed} failed${c.deliveries.expired ? `, ${c.deliveries.expired} expired` : ""}`
  }
]

export const Calls = () => {
  const params = place.value.params
  const q = params.get("q") ?? ""
  const status = params.get("status") ?? ""
  const tenant = params.get("tenant") ?? ""
  const hosts = useTenantHosts()
  const [typed, setTyped] = useState(q)
  const { loaded, reload } = useLoad((signal) => search(q.trim(), { status, tenant }, undefined, signal), [q, status, tenant])
  const more = useMorePages((cursor) => search(q.trim(), { status, tenant }, cursor, new AbortController().signal), [q, status, tenant])
  useEffect(() => setTyped(q), [q])

  // The search applies as the user types (after a pause) and at once on Enter.
  const typing = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const onInput = (value: string) => {
    setTyped(value)
    clearTimeout(typing.current)
    typing.current = setTimeout(() => setParams({ q: value }, { replace: true }), 300)
  }
  const onSubmit = (event: Event) => {
    event.preventDefault()
    clearTimeout(typing.current)
    setParams({ q: typed.trim() })
  }

  // A change on the stream may be a new call or a call's new state: fetch the first page again, at most once a second.
  const refresh = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const live = useStream(() => {
    if (refresh.current === undefined) refresh.current = setTimeout(() => ((refresh.current = undefined), reload()), 1000)
  })
  useEffect(() => () => clearTimeout(refresh.current), [])

  return (
    <>
      <Title>Calls</Title>
      <form class="filters" role="search" onSubmit={onSubmit}>
        <span class="field">
          <label for="calls-q">Search calls</label>
          <input id="calls-q" type="search" value={typed} placeholder="number, room or domain" onInput={(e) => onInput((e.currentTarget as HTMLInputElement).value)} />
        </span>
        <Select id="calls-status" label="Status" value={status} options={[["", "All statuses"], ...CALL_STATUSES.map((s) => [s, s] as const)]} onChange={(v) => setParams({ status: v })} />
        <Select id="calls-tenant" label="Tenant" value={tenant} options={[["", isOperator() ? "All tenants" : "All your hosts"], ...hosts.map((h) => [h, h] as const)]} onChange={(v) => setParams({ tenant: v })} />
      </form>
      <p role="status" class="muted live-state">
        {streamStateText(live)}
      </p>
      <Loading loaded={loaded}>
        {(page) => {
          const firstKeys = new Set(page.items.map(callKey))
          const rows = [...page.items, ...more.items.filter((c) => !firstKeys.has(callKey(c)))]
          return (
            <>
              <Table caption="Calls, newest first" columns={COLUMNS} rows={rows} rowKey={callKey} empty="No calls match." />
              <LoadMore cursor={more.cursorAfter(page)} load={more.load} />
            </>
          )
        }}
      </Loading>
    </>
  )
}
