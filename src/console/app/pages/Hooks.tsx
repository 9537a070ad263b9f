import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Loading } from "../components/Alert.tsx"
import { HookForm } from "../components/HookForm.tsx"
import { Title } from "../components/Layout.tsx"
import { SecretOnce } from "../components/SecretOnce.tsx"
import { StatusBadge } from "../components/StatusBadge.tsx"
import { Table } from "../components/Table.tsx"
import { Time } from "../components/Time.tsx"
import { useLoad } from "../load.ts"
import { href, place, setParams } from "../router.ts"
import { isOperator } from "../session.ts"
import type { Hook, SavedHook } from "../types.ts"

/** Disabled (with since when), failing (every attempt since its last 2xx failed: the overview's list, operators only) or enabled. */
const Health = ({ hook, failing }: { hook: Hook; failing: ReadonlySet<string> }) =>
  hook.disabled ? (
    <>
      <StatusBadge status="disabled" /> since <Time iso={hook.disabledAt} />
    </>
  ) : (
    <StatusBadge status={failing.has(hook.host) ? "failing" : "enabled"} />
  )

const columns = (failing: ReadonlySet<string>) => [
  { header: "Host", cell: (h: Hook) => <a href={href(`/hooks/${encodeURIComponent(h.host)}`)}>{h.host}</a> },
  { header: "Health", cell: (h: Hook) => <Health hook={h} failing={failing} /> },
  { header: "URL", cell: (h: Hook) => <code>{h.url}</code> },
  { header: "Events", cell: (h: Hook) => h.events?.join(", ") ?? "every LiveKit event" },
  { header: "Rate limit", cell: (h: Hook) => h.rateLimit ?? "—" },
  { header: "Max age", cell: (h: Hook) => h.maxAge ?? "—" },
  { header: "Source", cell: (h: Hook) => h.source }
]

/**
 * The hooks the session may see, with their health, and the New hook form.
 * `?new=1` opens the form, `&host=` fills in its host (Unroutable links here).
 */
export const Hooks = () => {
  const { loaded, reload } = useLoad((signal) => api.hooks.list(signal), [])
  const operator = isOperator()
  const { loaded: overview } = useLoad((signal) => (operator ? api.overview(signal) : Promise.resolve({ ok: true as const, value: null })), [operator])
  const failing = new Set<string>(overview.state === "done" && overview.result.ok ? (overview.result.value?.tenants.failing ?? []) : [])
  const open = place.value.params.get("new") === "1"
  const [created, setCreated] = useState<SavedHook | null>(null)
  const closed = { new: undefined, host: undefined }
  const saved = (hook: SavedHook) => {
    setCreated(hook)
    setParams(closed)
    reload()
  }
  return (
    <>
      <Title>Hooks</Title>
      {!open && (
        <button type="button" onClick={() => (setCreated(null), setParams({ new: "1" }))}>
          New hook
        </button>
      )}
      {open && <HookForm initialHost={place.value.params.get("host") ?? ""} saved={saved} cancel={() => setParams(closed)} />}
      {created && (
        <div class="created">
          <p role="status">
            Saved <a href={href(`/hooks/${encodeURIComponent(created.host)}`)}>{created.host}</a>.
          </p>
          {created.secret && <SecretOnce secret={created.secret} note="Its deliveries are signed with this secret: give it to the tenant now, the router will not show it again." />}
        </div>
      )}
      <Loading loaded={loaded}>
        {({ hooks }) => <Table caption="Hooks" columns={columns(failing)} rows={hooks} rowKey={(h) => h.host} empty="No hooks yet." />}
      </Loading>
    </>
  )
}

export const newHookHref = (host: string) => href("/hooks", { new: "1", host })
