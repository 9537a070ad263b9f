import { useEffect, useRef, useState } from "preact/hooks"
import type { StreamChange } from "./types.ts"

export type StreamState = "connecting" | "open" | "reconnecting" | "disconnected"

/**
 * Follows `GET /v1/stream` (same origin, so the session cookie goes with it).
 * EventSource reconnects by itself and resumes with Last-Event-ID; the state
 * says when it is not connected, so a page never looks live when it is not.
 */
export const useStream = (onChange: (change: StreamChange) => void) => {
  const [state, setState] = useState<StreamState>("connecting")
  const handler = useRef(onChange)
  handler.current = onChange
  useEffect(() => {
    const source = new EventSource("/v1/stream", { withCredentials: true })
    source.onopen = () => setState("open")
    source.onerror = () => setState(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting")
    source.onmessage = (message) => {
      try {
        handler.current(JSON.parse(message.data) as StreamChange)
      } catch {
        // Not a change this console knows: skip it.
      }
    }
    return () => source.close()
  }, [])
  return state
}

export const streamStateText = (state: StreamState) =>
  state === "open"
    ? "Connected to the live stream"
    : state === "connecting"
      ? "Connecting to the live stream…"
      : state === "reconnecting"
        ? "Disconnected from the live stream: reconnecting…"
        : "Disconnected from the live stream: reload the page to try again"
