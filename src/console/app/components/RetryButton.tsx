import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Alert, Note } from "./Alert.tsx"

/** Requeues a failed delivery with a fresh attempt budget; `done` lets the page fetch again. */
export const RetryButton = ({ id, done }: { id: number; done: () => void }) => {
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null)
  const [busy, setBusy] = useState(false)
  const retry = async () => {
    setBusy(true)
    const result = await api.deliveries.retry(id)
    setBusy(false)
    setOutcome(result.ok ? { ok: true, text: `Delivery ${id} requeued.` } : { ok: false, text: result.error.message })
    if (result.ok) done()
  }
  return (
    <span class="retry">
      <button type="button" class="small" onClick={retry} disabled={busy}>
        Retry
      </button>
      {outcome && (outcome.ok ? <Note>{outcome.text}</Note> : <Alert>{outcome.text}</Alert>)}
    </span>
  )
}
