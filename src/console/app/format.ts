/** How the console writes times, durations and counts: in the browser's zone and language. */

const sameDay = (a: Date, b: Date) => a.toDateString() === b.toDateString()

/** Short: the time alone today, else the date too. */
export const shortTime = (iso: string) => {
  const date = new Date(iso)
  return sameDay(date, new Date())
    ? date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
}

/** Absolute, with the zone: what a focused or hovered time shows. */
export const absoluteTime = (iso: string) =>
  new Date(iso).toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" })

export const duration = (seconds: number | null) => {
  if (seconds === null) return "—"
  const m = Math.floor(seconds / 60)
  const s = seconds % 60
  return m === 0 ? `${s} s` : `${m} min ${s} s`
}

export const ms = (value: number | null) => (value === null ? "—" : `${Math.round(value)} ms`)

export const percent = (rate: number | null) => (rate === null ? "—" : `${(rate * 100).toFixed(rate >= 0.999 || rate === 0 ? 0 : 1)}%`)

export const plural = (n: number, one: string, many = one + "s") => `${n} ${n === 1 ? one : many}`

/** A `datetime-local` input's value (the browser's zone) as an ISO time with its zone. */
export const localInputToIso = (value: string) => new Date(value).toISOString()
