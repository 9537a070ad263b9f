import { Webhook } from "standardwebhooks"

/** Generous: two shared cores, several router processes. */
const WAIT = 20_000

export interface Captured {
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
  readonly json: any
}

/**
 * A tenant endpoint that records every request and verifies signatures later
 * (a generated or rotated secret is only known after the admin call).
 * `status` is its answer; `tls` serves https on 127.0.0.1.
 */
export const startCapture = (options: { status?: number; tls?: { cert: string; key: string } } = {}) => {
  const requests: Captured[] = []
  const waiters = new Set<() => void>()
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 60,
    ...(options.tls ? { tls: options.tls } : {}),
    async fetch(request) {
      const body = await request.text()
      let json: any = undefined
      try {
        json = JSON.parse(body)
      } catch {
        // kept as text
      }
      requests.push({ path: new URL(request.url).pathname, headers: Object.fromEntries(request.headers.entries()), body, json })
      for (const wake of waiters) wake()
      return new Response("ok", { status: options.status ?? 200 })
    }
  })
  const port = server.port!
  const waitFor = (predicate: (r: Captured) => boolean, what: string, timeoutMs = WAIT) =>
    new Promise<Captured>((resolve, reject) => {
      const check = () => {
        const found = requests.find(predicate)
        if (!found) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(found)
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`capture timed out waiting for ${what}: ${requests.length} requests seen`))
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  return {
    url: `${options.tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    requests,
    /** Every request that arrived on `path`. */
    at: (path: string) => requests.filter((r) => r.path === path),
    waitFor,
    /** The delivery of a call's (room's) first event. */
    forRoom: (room: string) => waitFor((r) => r.json?.call?.room === room, `delivery for ${room}`),
    /** The router.test event with this webhook-id. */
    forTest: (eventId: string) => waitFor((r) => r.headers["webhook-id"] === eventId, `test event ${eventId}`),
    stop: () => server.stop(true)
  }
}
export type Capture = ReturnType<typeof startCapture>

/** True when the off-the-shelf Standard Webhooks verifier accepts the request under `secret`. */
export const verifies = (secret: string, request: Captured) => {
  try {
    new Webhook(secret).verify(request.body, request.headers)
    return true
  } catch {
    return false
  }
}
