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

/**
 * A tenant's webhook endpoint, on a random loopback port. It verifies every
 * request with the off-the-shelf `standardwebhooks` library and keeps the ones
 * that verify; `replies` scripts its answers in order (the last one repeats).
 */
export const startReceiver = (secret: string, replies: ReadonlyArray<Reply> = [{ status: 200 }], port = 0) => {
  const received: Received[] = []
  const rejected: string[] = []
  let hits = 0
  const waiters = new Set<() => void>()
  const server = Bun.serve({
    port,
    hostname: "127.0.0.1",
    idleTimeout: 60,
    async fetch(request) {
      const reply = replies[Math.min(hits++, replies.length - 1)] ?? { status: 200 }
      const body = await request.text()
      const headers = Object.fromEntries(request.headers.entries())
      try {
        const json = new Webhook(secret).verify(body, headers)
        received.push({ path: new URL(request.url).pathname, headers, body, json, at: Date.now() })
      } catch (error) {
        rejected.push((error as Error).message)
      }
      for (const wake of waiters) wake()
      if (reply.delayMs) await Bun.sleep(reply.delayMs)
      return new Response("ok", { status: reply.status ?? 200, headers: reply.headers ?? {} })
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
    stop: () => server.stop(true)
  }
}

export type Receiver = ReturnType<typeof startReceiver>
