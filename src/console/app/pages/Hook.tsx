import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Alert, Loading, Said, type Outcome } from "../components/Alert.tsx"
import { CopyButton } from "../components/CopyButton.tsx"
import { HookForm } from "../components/HookForm.tsx"
import { Title } from "../components/Layout.tsx"
import { SecretOnce } from "../components/SecretOnce.tsx"
import { StatusBadge } from "../components/StatusBadge.tsx"
import { Time } from "../components/Time.tsx"
import { absoluteTime } from "../format.ts"
import { useLoad } from "../load.ts"
import { href } from "../router.ts"
import { isOperator } from "../session.ts"
import type { Hook } from "../types.ts"

/** A single-use link that signs the tenant in to the portal (operators only). */
const PortalLink = ({ host }: { host: string }) => {
  const [link, setLink] = useState<{ url: string; expiresAt: string } | null>(null)
  const [error, setError] = useState<string | null>(null)
  const create = async () => {
    const result = await api.tenants.portalLink(host)
    if (result.ok) setLink(result.value)
    setError(result.ok ? null : result.error.message)
  }
  return (
    <section aria-labelledby="portal-heading">
      <h2 id="portal-heading">Tenant portal</h2>
      <button type="button" onClick={create}>
        Create portal link
      </button>
      {link && (
        <p>
          <label for="portal-link">Portal link</label> <input id="portal-link" readOnly value={link.url} size={60} /> <CopyButton value={link.url} what="the portal link" />
          <br />
          It opens once, until {absoluteTime(link.expiresAt)}.
        </p>
      )}
      {error && <Alert>{error}</Alert>}
    </section>
  )
}

const Actions = ({ hook, changed }: { hook: Hook; changed: () => void }) => {
  const [secret, setSecret] = useState<{ secret: string; until: string } | null>(null)
  const [outcome, setOutcome] = useState<Outcome>(null)
  const rotate = async () => {
    const result = await api.hooks.rotateSecret(hook.host)
    setSecret(result.ok ? { secret: result.value.secret, until: result.value.previousSecretExpiresAt } : null)
    setOutcome(result.ok ? null : { ok: false, text: result.error.message })
  }
  const test = async () => {
    setOutcome({ ok: true, text: "Sending a test event…" })
    const result = await api.hooks.test(hook.host)
    if (!result.ok) return setOutcome({ ok: false, text: result.error.message })
    const r = result.value
    setOutcome(
      r.delivered
        ? { ok: true, text: `Test event ${r.eventId} delivered: HTTP ${r.status} in ${r.latencyMs} ms.` }
        : { ok: false, text: `Test event ${r.eventId} not delivered: ${r.status !== null ? `HTTP ${r.status}` : r.error} after ${r.latencyMs} ms.` }
    )
  }
  const enable = async () => {
    const result = await api.hooks.enable(hook.host)
    setOutcome(result.ok ? { ok: true, text: `${hook.host} is enabled. Deliveries that failed while it was disabled can be recovered from Deliveries.` } : { ok: false, text: result.error.message })
    if (result.ok) changed()
  }
  return (
    <div class="actions">
      <button type="button" onClick={rotate}>
        Rotate secret
      </button>
      <button type="button" onClick={test}>
        Send test event
      </button>
      {hook.disabled && (
        <button type="button" onClick={enable}>
          Enable
        </button>
      )}
      <Said outcome={outcome} />
      {secret && <SecretOnce secret={secret.secret} note={`The old secret keeps signing too until ${absoluteTime(secret.until)}: switch the tenant to this one before then.`} />}
    </div>
  )
}

export const HookPage = ({ host }: { host: string }) => {
  const { loaded, reload } = useLoad((signal) => api.hooks.get(host, signal), [host])
  const [editing, setEditing] = useState(false)
  return (
    <>
      <Title>Hook {host}</Title>
      <Loading loaded={loaded}>
        {(hook) => (
          <>
            <dl class="record">
              <dt>Health</dt>
              <dd>{hook.disabled ? <><StatusBadge status="disabled" /> since <Time iso={hook.disabledAt} /></> : <StatusBadge status="enabled" />}</dd>
              <dt>URL</dt>
              <dd><code>{hook.url}</code></dd>
              <dt>Events</dt>
              <dd>{hook.events?.join(", ") ?? "every LiveKit event"}</dd>
              <dt>Rate limit</dt>
              <dd>{hook.rateLimit ?? "—"}</dd>
              <dt>Max age</dt>
              <dd>{hook.maxAge ?? "—"}</dd>
              <dt>Headers</dt>
              <dd>{hook.headers.length ? hook.headers.join(", ") : "—"}</dd>
              <dt>Auth</dt>
              <dd>{hook.hasAuth ? "set (write-only)" : "none"}</dd>
              <dt>Secret</dt>
              <dd>{hook.hasOwnSecret ? "its own" : "the router's signing secret"}</dd>
              <dt>Source</dt>
              <dd>{hook.source === "api" ? "API" : `${hook.source} (change it there)`}</dd>
            </dl>
            <p>
              <a href={href("/calls", { tenant: hook.host })}>Its calls</a> · <a href={href("/deliveries", { tenant: hook.host })}>Its deliveries</a> ·{" "}
              <a href={href("/deliveries", { tenant: hook.host, status: "failed" })}>Its failed deliveries</a>
            </p>
            <Actions hook={hook} changed={reload} />
            {hook.source === "api" &&
              (editing ? (
                <HookForm hook={hook} saved={() => (setEditing(false), reload())} cancel={() => setEditing(false)} />
              ) : (
                <button type="button" onClick={() => setEditing(true)}>
                  Edit
                </button>
              ))}
            {isOperator() && <PortalLink host={hook.host} />}
          </>
        )}
      </Loading>
    </>
  )
}
