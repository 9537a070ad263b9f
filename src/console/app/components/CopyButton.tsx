import { useState } from "preact/hooks"

/** Copies `value`; says so in a polite live region, since a copy has nothing else to see. */
export const CopyButton = ({ value, what }: { value: string; what: string }) => {
  const [said, setSaid] = useState("")
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setSaid("Copied")
    } catch {
      setSaid("Copy failed: select the text instead")
    }
    setTimeout(() => setSaid(""), 2000)
  }
  return (
    <span class="copy">
      <button type="button" class="small" aria-label={`Copy ${what}`} onClick={copy}>
        Copy
      </button>
      <span aria-live="polite" class="said">
        {said}
      </span>
    </span>
  )
}

/** An id in a monospace font with its copy button. */
export const Id = ({ value, what }: { value: string | number; what: string }) => (
  <span class="id">
    <code>{value}</code> <CopyButton value={String(value)} what={`${what} ${value}`} />
  </span>
)
