/** A status as a word and a symbol, coloured too: the colour is never the only sign. */
const SYMBOLS: Record<string, string> = {
  delivered: "✓",
  succeeded: "✓",
  enabled: "✓",
  ended: "■",
  active: "●",
  pending: "…",
  failed: "✕",
  failing: "!",
  disabled: "⊘",
  expired: "⌛",
  unrouted: "?"
}
const TONES: Record<string, string> = {
  delivered: "good",
  enabled: "good",
  active: "info",
  ended: "neutral",
  pending: "info",
  failed: "bad",
  failing: "bad",
  disabled: "bad",
  expired: "warn",
  unrouted: "warn"
}

export const StatusBadge = ({ status }: { status: string }) => (
  <span class={`badge ${TONES[status] ?? "neutral"}`}>
    <span aria-hidden="true">{SYMBOLS[status] ?? "•"} </span>
    {status}
  </span>
)

/** An HTTP status as a badge: 2xx good, anything else bad; an error without a status shows the error. */
export const HttpResult = ({ status, error }: { status: number | null; error: string | null }) =>
  status !== null ? (
    <span class={`badge ${status >= 200 && status < 300 ? "good" : "bad"}`}>HTTP {status}</span>
  ) : error !== null ? (
    <span class="badge bad">{error}</span>
  ) : (
    <span>—</span>
  )
