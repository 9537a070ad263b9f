import { useState } from "preact/hooks"
import { api } from "../api.ts"
import type { Outcome } from "./Alert.tsx"

/**
 * Requeues a failed delivery with a fresh attempt budget. What came of it goes
 * to `done`, for the page to say outside the row: once requeued, the delivery
 * may leave a list of failed ones, and its row with it.
 */
export const RetryButton = ({ id, done }: { id: number; done: (outcome: Outcome) => void }) => {
  const [busy, setBusy] = useState(false)
  const retry = async () => {
    setBusy(true)
    const result = await api.deliveries.retry(id)
    setBusy(false)
    done(result.ok ? { ok: true, text: `Delivery ${id} requeued.` } : { ok: false, text: `Delivery ${id}: ${result.error.message}` })
  }
  return (
    <button type="button" class="small" onClick={retry} disabled={busy}>
      Retry
    </button>
  )
}
