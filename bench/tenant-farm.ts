/**
 * Many tenants on one loopback port, as a separate process so their CPU is not
 * the load generator's: `/t/{n}` is tenant n. Every request is verified with
 * the off-the-shelf `standardwebhooks` library; tenants listed in SLEEPY sleep
 * past the router's timeout before answering.
 *
 * Control: GET /stats returns what arrived (DELETE /stats also forgets it),
 * GET /stats?from=N only the arrivals from index N on, GET /count the counts;
 * POST /down/{n} makes tenant n answer 503 at once (nothing verified or
 * recorded) until POST /up/{n}.
 */
import { Webhook } from "standardwebhooks"

const secret = process.env.SECRET!
const sleepy = new Set((process.env.SLEEPY ?? "").split(",").filter(Boolean).map(Number))
const sleepMs = Number(process.env.SLEEP_MS ?? 3000)
const verifier = new Webhook(secret)
const down = new Set<number>()

// Arrival time (ms since the epoch, sub-ms precision) of each verified webhook-id, with its tenant.
let arrivals: Array<[id: string, tenant: number, at: number]> = []
let rejected = 0
let refused = 0

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 60,
  async fetch(request) {
    const url = new URL(request.url)
    const path = url.pathname
    if (path === "/stats") {
      const from = Number(url.searchParams.get("from") ?? 0)
      const body = JSON.stringify({ arrivals: from > 0 ? arrivals.slice(from) : arrivals, rejected })
      if (request.method === "DELETE") (arrivals = []), (rejected = 0)
      return new Response(body)
    }
    if (path === "/count") return Response.json({ arrivals: arrivals.length, rejected, refused })
    const control = /^\/(down|up)\/(\d+)$/.exec(path)
    if (control && request.method === "POST") {
      if (control[1] === "down") down.add(Number(control[2]))
      else down.delete(Number(control[2]))
      return Response.json({ down: [...down] })
    }
    const tenant = Number(path.slice(3))
    const body = await request.text()
    if (down.has(tenant)) {
      refused++
      return new Response("down", { status: 503 })
    }
    if (sleepy.has(tenant)) {
      await Bun.sleep(sleepMs)
      return new Response("slow", { status: 200 })
    }
    try {
      verifier.verify(body, {
        "webhook-id": request.headers.get("webhook-id")!,
        "webhook-timestamp": request.headers.get("webhook-timestamp")!,
        "webhook-signature": request.headers.get("webhook-signature")!
      })
      arrivals.push([request.headers.get("webhook-id")!, tenant, performance.timeOrigin + performance.now()])
      return new Response(null, { status: 204 })
    } catch {
      rejected++
      return new Response("bad signature", { status: 401 })
    }
  }
})
console.log(JSON.stringify({ msg: "listening", port: server.port }))
