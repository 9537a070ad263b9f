import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Alert, Loading } from "../components/Alert.tsx"
import { CopyButton } from "../components/CopyButton.tsx"
import { Title } from "../components/Layout.tsx"
import { Table } from "../components/Table.tsx"
import { useLoad } from "../load.ts"
import { href } from "../router.ts"
import type { NumberRoute } from "../types.ts"

/** Dialled numbers on shared domains and the hook each routes to (operators hand them out). */
export const Numbers = () => {
  const { loaded, reload } = useLoad((signal) => api.numbers.list(signal), [])
  const [error, setError] = useState<string | null>(null)
  const act = async (done: Promise<{ ok: boolean; error?: { message: string } }>) => {
    const result = await done
    setError(result.ok ? null : (result.error?.message ?? "failed"))
    if (result.ok) reload()
  }
  const submit = (event: Event) => {
    event.preventDefault()
    const form = event.currentTarget as HTMLFormElement
    const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value.trim()
    void act(api.numbers.put(value("number"), value("host")).then((r) => (r.ok && form.reset(), r)))
  }
  const columns = [
    { header: "Number", cell: (n: NumberRoute) => <span class="id"><code>{n.number}</code> <CopyButton value={n.number} what={`number ${n.number}`} /></span> },
    { header: "Hook", cell: (n: NumberRoute) => <a href={href(`/hooks/${encodeURIComponent(n.host)}`)}>{n.host}</a> },
    { header: "Source", cell: (n: NumberRoute) => n.source },
    {
      header: "Action",
      cell: (n: NumberRoute) =>
        n.source === "api" ? (
          <button type="button" class="small" aria-label={`Remove ${n.number}`} onClick={() => act(api.numbers.remove(n.number))}>
            Remove
          </button>
        ) : null
    }
  ]
  return (
    <>
      <Title>Numbers</Title>
      <form class="inline-form" onSubmit={submit} aria-labelledby="map-heading">
        <h2 id="map-heading">Map a number</h2>
        <span class="field">
          <label for="number-number">Number</label>
          <input id="number-number" name="number" required placeholder="+15557654321" />
        </span>
        <span class="field">
          <label for="number-host">Host</label>
          <input id="number-host" name="host" required placeholder="calls.tenant.example" />
        </span>
        <button type="submit">Map number</button>
      </form>
      {error && <Alert>{error}</Alert>}
      <Loading loaded={loaded}>
        {({ numbers }) => <Table caption="Numbers and their hooks" columns={columns} rows={numbers} rowKey={(n) => n.number} empty="No numbers mapped." />}
      </Loading>
    </>
  )
}
