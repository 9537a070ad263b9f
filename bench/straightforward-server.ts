/**
 * What a user would write without this router: livekit-server-sdk's
 * WebhookReceiver, a map from the X-To-IP attribute to the tenant, and a
 * fire-and-forget signed fetch. No store, no retries, no ordering: the
 * comparison the benchmark makes, not a design to copy.
 */
import { WebhookReceiver } from "livekit-server-sdk"
import { Webhook } from "standardwebhooks"

const tenants: Record<string, string> = JSON.parse(process.env.TENANTS!)
const receiver = new WebhookReceiver(process.env.API_KEY!, process.env.API_SECRET!)
const signer = new Webhook(process.env.SECRET!)

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(request) {
    const raw = await request.text()
    try {
      const event = await receiver.receive(raw, request.headers.get("authorization") ?? undefined)
      const url = tenants[event.participant?.attributes["sip.h.x-to-ip"] ?? ""]
      if (url) {
        const id = event.id
        const now = new Date()
        fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(Math.floor(now.getTime() / 1000)), "webhook-signature": signer.sign(id, now, raw) },
          body: raw
        }).catch(() => {})
      }
      return Response.json({ status: "received" })
    } catch {
      return new Response("unauthorized", { status: 401 })
    }
  }
})
console.log(JSON.stringify({ msg: "listening", port: server.port }))
