import type {
  ApiError, Call, CallDetail, Delivery, DeliveryDetail, Hook, HookChanges, NumberRoute, Overview, Page, Rotation, SavedHook, Session, TestResult, UnroutableDomain
} from "./types.ts"

/**
 * The console's admin API client: a few lines over `fetch`, typed by hand
 * (types.ts). The CLI's client derived from the HttpApi definition would be
 * the same calls, but it brings Effect and its schemas into the browser, many
 * times this whole app; so the browser gets this one instead.
 *
 * Requests are same-origin and carry the session cookie; the browser never
 * holds a token. Every answer is a `Result`: the value, or the API's error
 * with its status (a network failure is status 0).
 */

export type Result<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly status: number; readonly error: ApiError }

/** Called on every 401, so an ended or expired session shows the sign-in form. */
let onUnauthorized: () => void = () => {}
export const whenUnauthorized = (handler: () => void) => {
  onUnauthorized = handler
}

const request = async <A,>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Result<A>> => {
  let response: Response
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {})
    })
  } catch (failure) {
    if (signal?.aborted) throw failure
    return { ok: false, status: 0, error: { code: "network", message: "The router could not be reached. Check your connection and try again." } }
  }
  if (response.status === 204) return { ok: true, value: undefined as A }
  const text = await response.text()
  let json: unknown
  try {
    json = text === "" ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  if (response.ok) return { ok: true, value: json as A }
  if (response.status === 401 && !path.startsWith("/v1/sessions") && !path.startsWith("/v1/portal-links")) onUnauthorized()
  const error = (json as { error?: ApiError } | undefined)?.error
  return { ok: false, status: response.status, error: error ?? { code: "http_" + response.status, message: `The router answered ${response.status}.` } }
}

const query = (params: Record<string, string | number | undefined>) => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== "") search.set(key, String(value))
  const text = search.toString()
  return text === "" ? "" : "?" + text
}
const seg = encodeURIComponent

export const api = {
  session: {
    current: () => request<Session>("GET", "/v1/sessions/current"),
    signIn: (token: string) => request<Session>("POST", "/v1/sessions", { token }),
    signOut: () => request<void>("DELETE", "/v1/sessions/current"),
    redeem: (secret: string) => request<Session>("POST", "/v1/portal-links/redeem", { secret })
  },
  overview: (signal?: AbortSignal) => request<Overview>("GET", "/v1/overview", undefined, signal),
  calls: {
    list: (params: { tenant?: string; status?: string; number?: string; domain?: string; cursor?: string }, signal?: AbortSignal) =>
      request<Page<Call>>("GET", "/v1/calls" + query(params), undefined, signal),
    get: (room: string, signal?: AbortSignal) => request<CallDetail>("GET", `/v1/calls/${seg(room)}`, undefined, signal)
  },
  deliveries: {
    list: (params: { status?: string; tenant?: string; room?: string; cursor?: string; limit?: number }, signal?: AbortSignal) =>
      request<Page<Delivery>>("GET", "/v1/deliveries" + query(params), undefined, signal),
    get: (id: string, signal?: AbortSignal) => request<DeliveryDetail>("GET", `/v1/deliveries/${seg(id)}`, undefined, signal),
    retry: (id: number) => request<unknown>("POST", `/v1/deliveries/${id}/retry`)
  },
  tenants: {
    recover: (host: string, since: string) => request<{ tenant: string; since: string; requeued: number }>("POST", `/v1/tenants/${seg(host)}/recover${query({ since })}`),
    portalLink: (host: string) => request<{ url: string; expiresAt: string }>("POST", `/v1/tenants/${seg(host)}/portal-links`)
  },
  hooks: {
    list: (signal?: AbortSignal) => request<{ hooks: ReadonlyArray<Hook> }>("GET", "/v1/hooks", undefined, signal),
    get: (host: string, signal?: AbortSignal) => request<Hook>("GET", `/v1/hooks/${seg(host)}`, undefined, signal),
    put: (host: string, changes: HookChanges) => request<SavedHook>("PUT", `/v1/hooks/${seg(host)}`, changes),
    patch: (host: string, changes: HookChanges) => request<SavedHook>("PATCH", `/v1/hooks/${seg(host)}`, changes),
    rotateSecret: (host: string) => request<Rotation>("POST", `/v1/hooks/${seg(host)}/rotate-secret`),
    test: (host: string) => request<TestResult>("POST", `/v1/hooks/${seg(host)}/test`),
    enable: (host: string) => request<Hook>("POST", `/v1/hooks/${seg(host)}/enable`)
  },
  numbers: {
    list: (signal?: AbortSignal) => request<{ numbers: ReadonlyArray<NumberRoute> }>("GET", "/v1/numbers", undefined, signal),
    put: (number: string, host: string) => request<NumberRoute>("PUT", `/v1/numbers/${seg(number)}`, { host }),
    remove: (number: string) => request<void>("DELETE", `/v1/numbers/${seg(number)}`)
  },
  unroutable: {
    domains: (signal?: AbortSignal) => request<{ items: ReadonlyArray<UnroutableDomain> }>("GET", "/v1/unroutable/domains", undefined, signal)
  }
}
