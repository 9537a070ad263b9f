import { signal } from "@preact/signals"
import { api, whenUnauthorized } from "./api.ts"
import type { Session } from "./types.ts"

/** Who is signed in: undefined while the first check runs, null when nobody is. */
export const session = signal<Session | null | undefined>(undefined)

export const isOperator = () => session.value?.role === "operator"

export const checkSession = async () => {
  const current = await api.session.current()
  session.value = current.ok ? current.value : null
}

// A request refused mid-session (it expired, or was ended elsewhere) brings the sign-in form back.
whenUnauthorized(() => {
  session.value = null
})
