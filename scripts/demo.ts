/**
 * Plays LiveKit and a tenant against a router started with `bun start`:
 * listens as the demo tenant (127.0.0.1:9000, as config/router.yaml's demo hook
 * says), posts a participant_joined signed exactly as LiveKit signs it, and
 * prints the delivery once it verifies with standardwebhooks.
 *
 *   bun run demo [--router http://127.0.0.1:8080] [--config config/router.yaml]
 */
import { createHash } from "node:crypto"
import { Either, Redacted } from "effect"
import { AccessToken } from "livekit-server-sdk"
import { Webhook } from "standardwebhooks"
import { parseConfigText } from "../src/domain/Config.ts"

const arg = (name: string, fallback: string) => {
  const i = Bun.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : (Bun.argv[i + 1] ?? fallback)
}
const routerUrl = arg("router", "http://127.0.0.1:8080")
const config = Either.getOrThrow(parseConfigText(await Bun.file(arg("config", "config/router.yaml")).text(), process.env))
const hook = config.hooks.find((h) => !h.host.startsWith("*."))
if (!hook) throw new Error("the config has no exact-host hook to send to")
const target = new URL(hook.url)

const delivered = Promise.withResolvers<unknown>()
const tenant = Bun.serve({
  hostname: target.hostname,
  port: Number(target.port || 80),
  async fetch(request) {
    const body = await request.text()
    try {
      delivered.resolve(new Webhook(Redacted.value(hook.secret ?? config.signing.secret ?? Redacted.make(""))).verify(body, Object.fromEntries(request.headers)))
      return new Response(null, { status: 204 })
    } catch (error) {
      delivered.reject(error)
      return new Response("bad signature", { status: 401 })
    }
  }
})

const room = `call-demo-${Date.now()}`
const body = JSON.stringify({
  event: "participant_joined",
  id: `EV_demo_${Date.now()}`,
  createdAt: String(Math.floor(Date.now() / 1000)),
  room: { sid: "RM_demo", name: room },
  participant: {
    identity: "sip_+15550001111",
    kind: "SIP",
    attributes: {
      "sip.callID": "SCL_demo",
      "sip.phoneNumber": "+15550001111",
      "sip.trunkPhoneNumber": "+15557654321",
      "sip.h.x-to-ip": hook.host,
      "sip.h.to": `<sip:+15557654321@${hook.host}>;tag=SCL_demo`
    }
  }
})
const token = new AccessToken(config.livekit.apiKey, Redacted.value(config.livekit.apiSecret), { ttl: "5m" })
token.sha256 = createHash("sha256").update(body).digest("base64")
const response = await fetch(`${routerUrl}/livekit/webhook`, {
  method: "POST",
  headers: { "content-type": "application/webhook+json", authorization: await token.toJwt() },
  body
})
console.log(`router answered ${response.status} ${await response.text()}`)

const timeout = setTimeout(() => delivered.reject(new Error("no delivery within 10 s")), 10_000)
try {
  console.log("tenant received, signature verified:\n" + JSON.stringify(await delivered.promise, null, 2))
} finally {
  clearTimeout(timeout)
  await tenant.stop()
}
