import { useState } from "preact/hooks"
import { api } from "../api.ts"
import { Alert } from "../components/Alert.tsx"
import { session } from "../session.ts"

/**
 * The sign-in form: the admin token is exchanged for a session cookie at once
 * and kept nowhere in the browser. The page the user asked for shows after.
 */
export const SignIn = () => {
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (event: Event) => {
    event.preventDefault()
    const form = event.currentTarget as HTMLFormElement
    const input = form.elements.namedItem("token") as HTMLInputElement
    setBusy(true)
    const result = await api.session.signIn(input.value.trim())
    setBusy(false)
    if (result.ok) {
      input.value = ""
      session.value = result.value
    } else {
      setError(result.status === 401 ? "The router refused this token. Check it and try again." : result.error.message)
      input.focus()
    }
  }
  return (
    <main id="main" class="sign-in">
      <h1>Sign in</h1>
      <p>Sign in to the sip-tenant-router console with an admin token. Tenants open the portal link their operator sent them.</p>
      <form onSubmit={submit}>
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autoComplete="off" required spellcheck={false} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {error && <Alert>{error}</Alert>}
    </main>
  )
}
