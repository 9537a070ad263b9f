import { useEffect, useRef, useState } from "preact/hooks"
import { api } from "../api.ts"
import type { Hook, HookAuth, HookChanges, SavedHook } from "../types.ts"
import { Alert } from "./Alert.tsx"

/** `Name: value` lines; a line without a colon is reported rather than dropped. */
const readHeaders = (text: string): Record<string, string> | string => {
  const headers: Record<string, string> = {}
  for (const line of text.split("\n").map((l) => l.trim()).filter((l) => l !== "")) {
    const colon = line.indexOf(":")
    if (colon <= 0) return `Headers: write each as "Name: value" (line "${line.slice(0, 40)}")`
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
  }
  return headers
}

const list = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s !== "")

type AuthKind = "keep" | "none" | "bearer" | "basic"

/**
 * Creates a hook (PUT) or edits one (PATCH: only what the form changes, so
 * write-only headers and credentials stay unless replaced). Header values and
 * credentials are never shown: an empty field keeps what the hook has.
 */
export const HookForm = ({ hook, initialHost = "", saved, cancel }: {
  hook?: Hook
  initialHost?: string
  saved: (hook: SavedHook) => void
  cancel: () => void
}) => {
  const [error, setError] = useState<string | null>(null)
  const [auth, setAuth] = useState<AuthKind>(hook ? "keep" : "none")
  const form = useRef<HTMLFormElement>(null)
  // Opening the form takes the keyboard to its first field.
  useEffect(() => form.current?.querySelector<HTMLInputElement>("input")?.focus(), [])
  const submit = async (event: Event) => {
    event.preventDefault()
    const field = (name: string) => (((event.currentTarget as HTMLFormElement).elements.namedItem(name) as HTMLInputElement | null)?.value ?? "").trim()
    const headers = field("headers") === "" ? undefined : readHeaders(field("headers"))
    if (typeof headers === "string") return setError(headers)
    const authValue: HookAuth | null | undefined =
      auth === "bearer" ? { bearer: field("bearer") } : auth === "basic" ? { basic: { username: field("username"), password: field("password") } } : auth === "none" ? null : undefined
    const optional = (value: string) => (value === "" ? null : value)
    const changes: HookChanges = {
      url: field("url"),
      events: field("events") === "" ? null : list(field("events")),
      rateLimit: optional(field("rateLimit")),
      maxAge: optional(field("maxAge")),
      ...(headers !== undefined ? { headers } : hook ? {} : { headers: null }),
      ...(authValue !== undefined ? { auth: authValue } : {})
    }
    // A PUT leaves cleared fields out rather than sending null.
    const body = hook ? changes : (Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== null)) as HookChanges)
    const result = hook ? await api.hooks.patch(hook.host, body) : await api.hooks.put(field("host"), body)
    if (!result.ok) return setError(result.error.message)
    setError(null)
    saved(result.value)
  }
  const id = (name: string) => `hook-${name}`
  return (
    <form class="hook-form" ref={form} onSubmit={submit} aria-labelledby={id("heading")}>
      <h2 id={id("heading")}>{hook ? `Edit ${hook.host}` : "New hook"}</h2>
      {!hook && (
        <span class="field">
          <label for={id("host")}>Host</label>
          <input id={id("host")} name="host" required defaultValue={initialHost} placeholder="calls.tenant.example or *.tenant.example" spellcheck={false} />
        </span>
      )}
      <span class="field">
        <label for={id("url")}>URL</label>
        <input id={id("url")} name="url" type="url" required defaultValue={hook?.url ?? ""} placeholder="https://tenant.example/voice" spellcheck={false} />
      </span>
      <span class="field">
        <label for={id("events")}>Events</label>
        <input id={id("events")} name="events" defaultValue={hook?.events?.join(", ") ?? ""} placeholder="every LiveKit event" aria-describedby={id("events-help")} />
        <small id={id("events-help")}>Comma-separated: participant_joined, *, call.started, call.ended…</small>
      </span>
      <span class="field">
        <label for={id("rateLimit")}>Rate limit</label>
        <input id={id("rateLimit")} name="rateLimit" defaultValue={hook?.rateLimit ?? ""} placeholder="50/s" />
      </span>
      <span class="field">
        <label for={id("maxAge")}>Max age</label>
        <input id={id("maxAge")} name="maxAge" defaultValue={hook?.maxAge ?? ""} placeholder="30s" />
      </span>
      <span class="field">
        <label for={id("headers")}>Headers</label>
        <textarea id={id("headers")} name="headers" rows={2} placeholder="X-Api-Key: value" aria-describedby={id("headers-help")} spellcheck={false} />
        <small id={id("headers-help")}>
          One "Name: value" a line, write-only.{hook && ` Empty keeps the current ones${hook.headers.length ? ` (${hook.headers.join(", ")})` : " (none)"}.`}
        </small>
      </span>
      <span class="field">
        <label for={id("auth")}>Auth</label>
        <select id={id("auth")} value={auth} onChange={(e) => setAuth((e.currentTarget as HTMLSelectElement).value as AuthKind)}>
          {hook && <option value="keep">Keep the current ({hook.hasAuth ? "set" : "none"})</option>}
          <option value="none">None</option>
          <option value="bearer">Bearer token</option>
          <option value="basic">Basic (username and password)</option>
        </select>
      </span>
      {auth === "bearer" && (
        <span class="field">
          <label for={id("bearer")}>Bearer token</label>
          <input id={id("bearer")} name="bearer" type="password" required autoComplete="off" />
        </span>
      )}
      {auth === "basic" && (
        <>
          <span class="field">
            <label for={id("username")}>Username</label>
            <input id={id("username")} name="username" required autoComplete="off" />
          </span>
          <span class="field">
            <label for={id("password")}>Password</label>
            <input id={id("password")} name="password" type="password" required autoComplete="off" />
          </span>
        </>
      )}
      <div class="actions">
        <button type="submit">Save</button>
        <button type="button" class="secondary" onClick={cancel}>
          Cancel
        </button>
      </div>
      {error && <Alert>{error}</Alert>}
    </form>
  )
}
