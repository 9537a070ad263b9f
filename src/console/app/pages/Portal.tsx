import { useEffect, useState } from "preact/hooks"
import { api } from "../api.ts"
import { Alert } from "../components/Alert.tsx"
import { href, navigate } from "../router.ts"
import { session } from "../session.ts"

/**
 * Where a tenant's portal link lands: its secret is in the URL fragment (never
 * sent to a server, nor kept in history once read). The page takes it off the
 * URL, redeems it for a session, and goes on to the tenant's calls. A used or
 * expired link signs nobody in and says so.
 */
export const Portal = () => {
  const [error, setError] = useState<string | null>(null)
  useEffect(() => {
    const secret = window.location.hash.slice(1)
    history.replaceState(null, "", window.location.pathname + window.location.search)
    if (secret === "") {
      setError("This portal link has no secret in it: open the whole link you were sent, or ask for a new one.")
      return
    }
    void api.session.redeem(secret).then((result) => {
      if (result.ok) {
        session.value = result.value
        navigate(href("/calls"), { replace: true })
      } else setError(`${result.error.message} Ask your operator for a new link.`)
    })
  }, [])
  return (
    <main id="main" class="sign-in">
      <h1>Tenant portal</h1>
      {error ? <Alert>{error}</Alert> : <p class="muted">Signing you in…</p>}
    </main>
  )
}
