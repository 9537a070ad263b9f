/**
 * Many tenants on one loopback port, as a separate process so their CPU is not
 * the load generator's: `/t/{n}` is tenant n. Every request is verified with
 * the off-the-shelf `standardwebhooks` library; tenants listed in SLEEPY sleep
 * past the router's timeout before answering. GET /stats returns what arrived.
 */
import { Webhook } from "standardwebhooks"

const secret = process.env.SECRET!
const sleepy = new Set((process.env.SLEEPY ?? "").split(",").filter(Boolean).map(Number))
const sleepMs = Number(process.env.SLEEP_MS ?? 3000)
const verifier = new Webhook(secret)

// Arrival time (ms since the epoch, sub-ms precision) of each verified webhook-id, with its tenant.
let arrivals: Array<[id: string, tenant: number, at: number]> = []
let rejected = 0

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 60,
  async fetch(request) {
    const path = new URL(request.url).pathname
    if (path === "/stats") {
      const body = JSON.stringify({ arrivals, rejected })
      if (request.method === "DELETE") (arrivals = []), (rejected = 0)
      return new Response(body)
    }
    const tenant = Number(path.slice(3))
    const body = await request.text()
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
