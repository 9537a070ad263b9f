/**
 * The durable floor: about the least a durable router must do, in plain
 * TypeScript, as a measuring stick for the router (not a design to copy).
 * It verifies LiveKit's JWT, finds the tenant from the X-To-IP attribute,
 * commits every event of one event-loop turn in one fsynced SQLite
 * transaction (dedupe id + outbox row) before answering that turn's requests,
 * then delivers each new outbox row with a keep-alive fetch signed as Standard
 * Webhooks, and marks the delivered rows in one transaction per turn. A failed
 * delivery stays pending: no retries, no ordering, no limits.
 *
 * Env: API_KEY, API_SECRET, SECRET (whsec_…), TENANTS (JSON host → URL), DB (SQLite file).
 */
import { Database } from "bun:sqlite"
import { createHash, createHmac, timingSafeEqual } from "node:crypto"

const apiKey = process.env.API_KEY!
const apiSecret = process.env.API_SECRET!
const signingKey = Buffer.from(process.env.SECRET!.replace(/^whsec_/, ""), "base64")
const tenants = new Map<string, string>(Object.entries(JSON.parse(process.env.TENANTS!)))
const LEEWAY_SECONDS = 60

const db = new Database(process.env.DB!, { create: true })
db.exec("PRAGMA journal_mode = WAL")
db.exec("PRAGMA synchronous = FULL")
db.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")
db.exec("CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, url TEXT NOT NULL, body TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0)")
const insertSeen = db.prepare("INSERT OR IGNORE INTO seen (id) VALUES (?)")
const insertOutbox = db.prepare("INSERT INTO outbox (id, url, body) VALUES (?, ?, ?)")
const updateDelivered = db.prepare("UPDATE outbox SET delivered = 1 WHERE id = ?")

// ------------------------------------------------------------------ LiveKit's JWT

const same = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b)
const segment = (part: string): any => {
  try {
    return JSON.parse(Buffer.from(part, "base64url").toString("utf8"))
  } catch {
    return undefined
  }
}

/** HS256 over `header.payload`, iss = the API key, exp/nbf with leeway, sha256 = base64 SHA-256 of the raw body. */
const verified = (authorization: string | null, body: Uint8Array): boolean => {
  const parts = (authorization ?? "").replace(/^Bearer\s+/i, "").trim().split(".")
  if (parts.length !== 3) return false
  const [header, payload, signature] = parts as [string, string, string]
  const claims = segment(payload)
  if (segment(header)?.alg !== "HS256" || claims?.iss !== apiKey) return false
  if (!same(createHmac("sha256", apiSecret).update(`${header}.${payload}`).digest(), Buffer.from(signature, "base64url"))) return false
  const now = Date.now() / 1000
  if (typeof claims.exp !== "number" || now > claims.exp + LEEWAY_SECONDS) return false
  if (typeof claims.nbf === "number" && now + LEEWAY_SECONDS < claims.nbf) return false
  return typeof claims.sha256 === "string" && same(createHash("sha256").update(body).digest(), Buffer.from(claims.sha256, "base64"))
}

// ------------------------------------------------------------------ one commit per turn, then delivery

interface Row {
  readonly id: string
  readonly url: string | undefined
  readonly body: string
}

/** Inserts a turn's events; returns the outbox rows it added (new ids with a tenant). */
const commitTurn = db.transaction((rows: ReadonlyArray<Row>) => {
  const added: Row[] = []
  for (const row of rows) {
    if (insertSeen.run(row.id).changes === 1 && row.url !== undefined) insertOutbox.run(row.id, row.url, row.body), added.push(row)
  }
  return added
})
const markTurn = db.transaction((ids: ReadonlyArray<string>) => {
  for (const id of ids) updateDelivered.run(id)
})

let arriving: Array<{ row: Row; answer: (response: Response) => void }> = []
let delivered: string[] = []

const commitArriving = () => {
  const turn = arriving
  arriving = []
  let added: Row[]
  try {
    added = commitTurn(turn.map((t) => t.row))
  } catch {
    for (const t of turn) t.answer(new Response("store unavailable", { status: 503 }))
    return
  }
  for (const t of turn) t.answer(Response.json({ status: "received" }))
  for (const row of added) void deliver(row)
}

const markDelivered = () => {
  const ids = delivered
  delivered = []
  try {
    markTurn(ids)
  } catch {
    // still pending: sent again by nobody, as a floor without retries
  }
}

const deliver = async (row: Row) => {
  const timestamp = String(Math.floor(Date.now() / 1000))
  const signature = "v1," + createHmac("sha256", signingKey).update(`${row.id}.${timestamp}.${row.body}`).digest("base64")
  try {
    const response = await fetch(row.url!, {
      method: "POST",
      headers: { "content-type": "application/json", "webhook-id": row.id, "webhook-timestamp": timestamp, "webhook-signature": signature },
      body: row.body
    })
    await response.arrayBuffer()
    if (response.ok && delivered.push(row.id) === 1) setImmediate(markDelivered)
  } catch {
    // left pending
  }
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  routes: {
    "/livekit/webhook": {
      async POST(request) {
        const body = new Uint8Array(await request.arrayBuffer())
        if (!verified(request.headers.get("authorization"), body)) return new Response("unauthorized", { status: 401 })
        const raw = new TextDecoder().decode(body)
        let event: any
        try {
          event = JSON.parse(raw)
        } catch {
          return new Response("invalid", { status: 400 })
        }
        if (typeof event?.id !== "string" || typeof event.event !== "string") return new Response("invalid", { status: 400 })
        const domain = event.participant?.attributes?.["sip.h.x-to-ip"]
        const url = typeof domain === "string" ? tenants.get(domain.toLowerCase()) : undefined
        return new Promise<Response>((answer) => {
          if (arriving.push({ row: { id: event.id, url, body: raw }, answer }) === 1) setImmediate(commitArriving)
        })
      }
    }
  },
  fetch: () => new Response("not found", { status: 404 })
})
console.log(JSON.stringify({ msg: "listening", port: server.port }))
