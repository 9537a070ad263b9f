import { useLayoutEffect, useRef, useState } from "preact/hooks"
import { Title } from "../components/Layout.tsx"
import { StatusBadge } from "../components/StatusBadge.tsx"
import { Time } from "../components/Time.tsx"
import { plural } from "../format.ts"
import { href } from "../router.ts"
import { streamStateText, useStream } from "../stream.ts"
import type { StreamChange } from "../types.ts"

const KEEP = 500

/**
 * The stream of delivery changes, oldest at the top. It follows new changes
 * only while the list is scrolled to its end: once the user scrolls up to
 * read, it stays put. Pause holds new changes back (and counts them) until
 * Resume. It says when it is not connected.
 */
export const Live = () => {
  const [shown, setShown] = useState<ReadonlyArray<StreamChange & { key: number }>>([])
  const [held, setHeld] = useState<ReadonlyArray<StreamChange & { key: number }>>([])
  const [paused, setPaused] = useState(false)
  const counter = useRef(0)
  const list = useRef<HTMLOListElement>(null)
  const following = useRef(true)
  const state = useStream((change) => {
    const entry = { ...change, key: ++counter.current }
    if (pausedRef.current) setHeld((before) => [...before, entry].slice(-KEEP))
    else setShown((before) => [...before, entry].slice(-KEEP))
  })
  const pausedRef = useRef(paused)
  pausedRef.current = paused

  const onScroll = () => {
    const el = list.current
    if (el) following.current = el.scrollHeight - el.scrollTop - el.clientHeight < 8
  }
  useLayoutEffect(() => {
    const el = list.current
    if (el && following.current) el.scrollTop = el.scrollHeight
  }, [shown])

  const toggle = () => {
    if (paused) {
      setShown((before) => [...before, ...held].slice(-KEEP))
      setHeld([])
    }
    setPaused(!paused)
  }
  return (
    <>
      <Title>Live</Title>
      <p role="status" class={`live-state ${state === "open" ? "" : "warn-text"}`}>
        {streamStateText(state)}
        {paused && ` · paused, ${plural(held.length, "change")} held back`}
      </p>
      <div class="actions">
        <button type="button" onClick={toggle}>
          {paused ? "Resume" : "Pause"}
        </button>
        <button type="button" class="secondary" onClick={() => setShown([])}>
          Clear
        </button>
      </div>
      <ol class="live" ref={list} onScroll={onScroll} tabIndex={0} aria-label="Delivery changes">
        {shown.length === 0 && <li class="muted">Waiting for deliveries…</li>}
        {shown.map((c) => (
          <li key={c.key}>
            <Time iso={c.at} /> <StatusBadge status={c.status} /> <a href={href(`/deliveries/${c.deliveryId}`)}>delivery {c.deliveryId}</a> {c.eventType} to {c.tenant}
            {c.room && (
              <>
                {" "}
                in <a href={href(`/calls/${encodeURIComponent(c.room)}`)}>{c.room}</a>
              </>
            )}{" "}
            ({plural(c.attempts, "attempt")})
          </li>
        ))}
      </ol>
    </>
  )
}
