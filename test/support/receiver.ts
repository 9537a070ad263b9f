import { Webhook } from "standardwebhooks"

export interface Received {
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
  /** The verified, parsed body. */
  readonly json: any
  readonly at: number
}

export type Reply = { status?: number; headers?: Record<string, string>; delayMs?: number }

/** A request as a verifying endpoint saw it: `json` is the verified body, undefined (and `error` set) when it did not verify. */
interface Seen {
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
  readonly json: any
  readonly error: string | undefined
}

/**
 * A loopback endpoint that verifies every request with the off-the-shelf
 * `standardwebhooks` library. `arrive` runs as a request arrives (so scripted
 * answers go out in arrival order) and gives what answers it once it is read.
 */
const serveVerifying = (secret: string, port: number, arrive: () => (seen: Seen) => Reply) =>
  Bun.serve({
    port,
    hostname: "127.0.0.1",
    idleTimeout: 60,
    async fetch(request) {
      const answer = arrive()
      const body = await request.text()
      const headers = Object.fromEntries(request.headers.entries())
      let json: any
      let error: string | undefined
      try {
        json = new Webhook(secret).verify(body, headers)
      } catch (failure) {
        error = (failure as Error).message
      }
      const reply = answer({ path: new URL(request.url).pathname, headers, body, json, error })
      if (reply.delayMs) await Bun.sleep(reply.delayMs)
      return new Response("ok", { status: reply.status ?? 200, headers: reply.headers ?? {} })
    }
  })

/**
 * A tenant's webhook endpoint, on a random loopback port. It verifies every
 * request and keeps the ones that verify; `replies` scripts its answers in
 * order (the last one repeats).
 */
export const startReceiver = (secret: string, replies: ReadonlyArray<Reply> = [{ status: 200 }], port = 0) => {
  const received: Received[] = []
  const rejected: string[] = []
  let hits = 0
  let isDown = false
  const waiters = new Set<() => void>()
  const server = serveVerifying(secret, port, () => {
    if (isDown) return () => DOWN
    const reply = replies[Math.min(hits++, replies.length - 1)] ?? { status: 200 }
    return ({ path, headers, body, json, error }) => {
      if (error === undefined) received.push({ path, headers, body, json, at: Date.now() })
      else rejected.push(error)
      for (const wake of waiters) wake()
      return reply
    }
  })
  const url = `http://127.0.0.1:${server.port}`
  return {
    url,
    port: server.port!,
    received,
    rejected,
    get hits() {
      return hits
    },
    /** Resolves once `predicate` holds, or rejects after `timeoutMs` with what was seen. */
    waitFor: (predicate: (received: ReadonlyArray<Received>) => boolean, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!predicate(received)) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`receiver timed out: ${received.length} verified, ${rejected.length} rejected, ${hits} hits`))
        }, timeoutMs)
        waiters.add(check)
        check()
      }),
    /**
     * Down: every request gets 503, unrecorded, until `up()`. The port stays bound all along, so a
     * tenant can be down and come back where the router expects it, without another process taking
     * the port meanwhile (as a port closed and bound again later could be).
     */
    down: () => {
      isDown = true
    },
    up: () => {
      isDown = false
    },
    stop: () => server.stop(true)
  }
}

const DOWN: Reply = { status: 503 }

export type Receiver = ReturnType<typeof startReceiver>

/** One request to a scripted endpoint, as it arrived, with the answer it got. */
export interface ScriptedHit {
  readonly id: string
  readonly at: number
  readonly headers: Record<string, string>
  readonly body: string
  /** The body verified with the endpoint's secret; undefined when the signature did not verify. */
  readonly json: any
  readonly status: number
}

/** What a scripted endpoint knows of a request when it picks the answer. */
export interface ScriptedRequest {
  readonly id: string
  /** Whether its signature verified. */
  readonly verified: boolean
  /** Requests before this one, of any id. */
  readonly n: number
  /** Since the first request with this webhook-id. */
  readonly sinceFirstMs: number
}

/**
 * An endpoint whose answers are a function of the request (its id, how many
 * came before, how long this id has been retried), for tenants and alert
 * endpoints that fail in a scripted way. It verifies every request with
 * `standardwebhooks` and records every one, verified or not.
 */
export const startScriptedEndpoint = (secret: string, answer: (request: ScriptedRequest) => number, replyHeaders: Record<string, string> = {}) => {
  const hits: Array<ScriptedHit> = []
  const firstSeen = new Map<string, number>()
  const server = serveVerifying(secret, 0, () => ({ headers, body, json }) => {
    const id = headers["webhook-id"]!
    const at = Date.now()
    if (!firstSeen.has(id)) firstSeen.set(id, at)
    const status = answer({ id, verified: json !== undefined, n: hits.length, sinceFirstMs: at - firstSeen.get(id)! })
    hits.push({ id, at, headers, body, json, status })
    return { status, headers: replyHeaders }
  })
  return {
    url: `http://127.0.0.1:${server.port}`,
    hits,
    hitsOf: (id: string) => hits.filter((h) => h.id === id),
    stop: () => server.stop(true)
  }
}
export type ScriptedEndpoint = ReturnType<typeof startScriptedEndpoint>
