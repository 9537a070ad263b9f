/** A client of the router's live stream (`GET /v1/stream`) for tests: it keeps every event and comment, in order. */

export interface StreamedEvent {
  readonly id: string
  readonly data: any
}

export interface OpenedStream {
  readonly response: Response
  readonly events: Array<StreamedEvent>
  readonly comments: Array<string>
  /** Everything received, as text. */
  readonly text: () => string
  /** Resolves once `predicate` holds, or rejects after `timeoutMs` with what was seen. */
  readonly waitFor: (predicate: (events: ReadonlyArray<StreamedEvent>) => boolean, timeoutMs?: number, what?: string) => Promise<void>
  /** Resolves when the router ends the stream (or it breaks): how it ended. */
  readonly ended: Promise<"ended" | "broken">
  readonly close: () => void
}

/** The complete frames in `text` (a frame ends at a blank line: `id:`/`data:` fields, or `:` comments), and what follows them. */
export const parseFrames = (text: string) => {
  const events: Array<StreamedEvent> = []
  const comments: Array<string> = []
  let rest = text
  let split: number
  while ((split = rest.indexOf("\n\n")) !== -1) {
    let id: string | undefined
    const data: Array<string> = []
    for (const line of rest.slice(0, split).split("\n")) {
      if (line.startsWith(":")) comments.push(line.slice(1).trim())
      else if (line.startsWith("id:")) id = line.slice(3).trim()
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart())
    }
    if (data.length > 0) events.push({ id: id ?? "", data: JSON.parse(data.join("\n")) })
    rest = rest.slice(split + 2)
  }
  return { events, comments, rest }
}

/** Opens the stream at `path` (e.g. `/v1/stream?tenant=a.example`); a non-200 answer is returned with nothing read. */
export const openStream = async (base: string, path: string, init: { token?: string | null; lastEventId?: string } = {}): Promise<OpenedStream> => {
  const abort = new AbortController()
  const headers: Record<string, string> = {}
  if (init.token !== null && init.token !== undefined) headers.authorization = `Bearer ${init.token}`
  if (init.lastEventId !== undefined) headers["last-event-id"] = init.lastEventId
  const response = await fetch(`${base}${path}`, { headers, signal: abort.signal })
  const seen = { events: [] as Array<StreamedEvent>, comments: [] as Array<string> }
  let raw = ""
  let pending = ""
  const waiters = new Set<() => void>()
  const wake = () => waiters.forEach((check) => check())
  const ended: Promise<"ended" | "broken"> =
    response.status !== 200 || !response.body
      ? Promise.resolve("ended")
      : (async () => {
          const decoder = new TextDecoder()
          const reader = response.body!.getReader()
          try {
            for (;;) {
              const { done, value } = await reader.read()
              if (done) return "ended"
              const text = decoder.decode(value, { stream: true })
              raw += text
              const parsed = parseFrames(pending + text)
              seen.events.push(...parsed.events)
              seen.comments.push(...parsed.comments)
              pending = parsed.rest
              wake()
            }
          } catch {
            return "broken"
          } finally {
            wake()
          }
        })()
  const waitFor: OpenedStream["waitFor"] = (predicate, timeoutMs = 10_000, what = "events") =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!predicate(seen.events)) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`stream: timed out waiting for ${what}; saw ${seen.events.length} events: ${JSON.stringify(seen.events.map((e) => [e.id, e.data.eventType, e.data.status]))}`))
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  return {
    response,
    events: seen.events,
    comments: seen.comments,
    text: () => raw,
    waitFor,
    ended,
    close: () => abort.abort()
  }
}
