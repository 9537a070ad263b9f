/**
 * Per-hook `headers` and `auth` through the real process and a real receiver
 * that verifies with `standardwebhooks`: from the config file and the admin
 * API, on deliveries and test sends; what is refused (and that no refusal
 * quotes a secret value); that no answer and no log line shows a value; and
 * tenant tokens setting them on their own hosts only.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver, type Received } from "./support/receiver.ts"
import { eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ROOT = join(import.meta.dir, "..")
const WAIT = 20_000
const SECRET = "whsec_" + randomBytes(32).toString("base64")
/** Every value below is a secret: none may show up in an answer, a log line or stderr. */
const unique = (label: string) => `${label}${randomBytes(12).toString("hex")}`
const FILE_KEY = unique("filekey")
const FILE_PASSWORD = unique("filepass")
const FILE_TOKEN = unique("filetoken")
const API_KEY = unique("apikey")
const API_TOKEN = unique("apitoken")
const API_PASSWORD = unique("apipass")
const NEW_KEY = unique("newkey")
const TENANT_KEY = unique("tenantkey")
const TENANT_PASSWORD = unique("tenantpass")
const REFUSED_VALUE = unique("refusedvalue")
const TENANT_TOKEN = "tenant-token-credentials-0123456789"
const SECRETS = [FILE_KEY, FILE_PASSWORD, FILE_TOKEN, API_KEY, API_TOKEN, API_PASSWORD, NEW_KEY, TENANT_KEY, TENANT_PASSWORD, REFUSED_VALUE]

const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`

let roomCounter = 0
/** A new SIP call for `domain`; resolves with the delivery the receiver verified for it. */
const deliveredCall = async (router: RunningRouter, receiver: Receiver, domain: string): Promise<Received> => {
  const room = `room-creds-${Date.now().toString(36)}-${++roomCounter}`
  const response = await router.post(sipParticipantEvent("participant_joined", { room, xToIp: domain }))
  expect(response.status).toBe(200)
  const mine = (r: Received) => r.json?.call?.room === room
  await receiver.waitFor((received) => received.some(mine), WAIT)
  return receiver.received.find(mine)!
}

/** A test send; resolves with what the receiver verified for it. */
const testSend = async (router: RunningRouter, receiver: Receiver, host: string, token?: string): Promise<Received> => {
  const response = await router.admin("POST", `/v1/hooks/${encodeURIComponent(host)}/test`, undefined, token)
  const text = await response.text()
  expect(response.status).toBe(200)
  for (const secret of SECRETS) expect(text).not.toContain(secret)
  const body = JSON.parse(text)
  expect(body.delivered).toBe(true)
  const mine = (r: Received) => r.json?.data?.id === body.eventId
  await receiver.waitFor((received) => received.some(mine), WAIT)
  return receiver.received.find(mine)!
}

const noSecretIn = (text: string) => {
  for (const secret of SECRETS) expect(text).not.toContain(secret)
}

/** 400 naming `field` first, without quoting any secret. */
const expectRefused = async (response: Response, field: string) => {
  const text = await response.text()
  expect(response.status).toBe(400)
  noSecretIn(text)
  const { error } = JSON.parse(text)
  expect(error.code).toBe("bad_request")
  expect(error.message.startsWith(`${field}: `)).toBe(true)
  return error.message as string
}

describe("per-hook headers and auth", () => {
  let receiver: Receiver
  let router: RunningRouter

  beforeAll(async () => {
    receiver = startReceiver(SECRET)
    router = await startRouter({
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: ["tenant.creds.example"] }] },
      hooks: [
        {
          host: "file.creds.example",
          url: `${receiver.url}/file`,
          secret: SECRET,
          headers: { "X-Api-Key": FILE_KEY, "X-Tenant": "dr-smith" },
          auth: { basic: { username: "router", password: FILE_PASSWORD } }
        },
        { host: "bearer.creds.example", url: `${receiver.url}/bearer`, secret: SECRET, auth: { bearer: FILE_TOKEN } },
        { host: "plain.creds.example", url: `${receiver.url}/plain`, secret: SECRET }
      ]
    })
  })
  afterAll(async () => {
    await router?.stop()
    receiver?.stop()
  })

  test("config file: headers and basic auth on deliveries and test sends, verified by standardwebhooks", async () => {
    for (const received of [await deliveredCall(router, receiver, "file.creds.example"), await testSend(router, receiver, "file.creds.example")]) {
      expect(received.path).toBe("/file")
      expect(received.headers["x-api-key"]).toBe(FILE_KEY)
      expect(received.headers["x-tenant"]).toBe("dr-smith")
      expect(received.headers["authorization"]).toBe(basic("router", FILE_PASSWORD))
      // The router's own headers are untouched.
      expect(received.headers["content-type"]).toBe("application/json")
      expect(received.headers["webhook-id"]).toBeTruthy()
    }
  })

  test("config file: bearer auth; a hook with neither sends no Authorization and no extra header", async () => {
    for (const received of [await deliveredCall(router, receiver, "bearer.creds.example"), await testSend(router, receiver, "bearer.creds.example")]) {
      expect(received.headers["authorization"]).toBe(`Bearer ${FILE_TOKEN}`)
    }
    const plain = await deliveredCall(router, receiver, "plain.creds.example")
    expect(plain.headers["authorization"]).toBeUndefined()
    expect(plain.headers["x-api-key"]).toBeUndefined()
  })

  test("views list header names and hasAuth, never a value (GET, list)", async () => {
    const one = await router.admin("GET", "/v1/hooks/file.creds.example")
    const text = await one.text()
    expect(one.status).toBe(200)
    expect(JSON.parse(text)).toMatchObject({ host: "file.creds.example", headers: ["X-Api-Key", "X-Tenant"], hasAuth: true })
    expect(text).not.toContain("dr-smith")
    noSecretIn(text)
    const list = await router.admin("GET", "/v1/hooks")
    const listText = await list.text()
    noSecretIn(listText)
    const hooks = JSON.parse(listText).hooks as Array<Record<string, unknown>>
    expect(hooks.find((h) => h.host === "bearer.creds.example")).toMatchObject({ headers: [], hasAuth: true })
    expect(hooks.find((h) => h.host === "plain.creds.example")).toMatchObject({ headers: [], hasAuth: false })
  })

  test("admin API: PUT with headers and auth answers names and hasAuth only; deliveries and test sends carry them", async () => {
    const put = await router.admin("PUT", "/v1/hooks/api.creds.example", {
      url: `${receiver.url}/api`,
      secret: SECRET,
      headers: { "X-Api-Key": API_KEY },
      auth: { bearer: API_TOKEN }
    })
    const text = await put.text()
    expect(put.status).toBe(201)
    noSecretIn(text)
    expect(JSON.parse(text)).toMatchObject({ host: "api.creds.example", headers: ["X-Api-Key"], hasAuth: true })
    for (const received of [await deliveredCall(router, receiver, "api.creds.example"), await testSend(router, receiver, "api.creds.example")]) {
      expect(received.headers["x-api-key"]).toBe(API_KEY)
      expect(received.headers["authorization"]).toBe(`Bearer ${API_TOKEN}`)
    }
  })

  test("admin API: a changed hook's headers and auth apply to the next send; a PUT without them clears them", async () => {
    const put = await router.admin("PUT", "/v1/hooks/api.creds.example", {
      url: `${receiver.url}/api`,
      secret: SECRET,
      headers: { "X-Other-Key": NEW_KEY, "User-Agent": "tenant-asked-for-this" },
      auth: { basic: { username: "ops", password: API_PASSWORD } }
    })
    const text = await put.text()
    expect(put.status).toBe(200)
    noSecretIn(text)
    expect(JSON.parse(text)).toMatchObject({ headers: ["X-Other-Key", "User-Agent"], hasAuth: true })
    const changed = await deliveredCall(router, receiver, "api.creds.example")
    expect(changed.headers["x-other-key"]).toBe(NEW_KEY)
    expect(changed.headers["x-api-key"]).toBeUndefined()
    // A User-Agent of the hook's own replaces the router's.
    expect(changed.headers["user-agent"]).toBe("tenant-asked-for-this")
    expect(changed.headers["authorization"]).toBe(basic("ops", API_PASSWORD))

    const cleared = await router.admin("PUT", "/v1/hooks/api.creds.example", { url: `${receiver.url}/api`, secret: SECRET })
    expect(await cleared.json()).toMatchObject({ headers: [], hasAuth: false })
    const plain = await testSend(router, receiver, "api.creds.example")
    expect(plain.headers["x-other-key"]).toBeUndefined()
    expect(plain.headers["authorization"]).toBeUndefined()
    expect(plain.headers["user-agent"]).toBe("sip-tenant-router")
  })

  test("admin API: refused header names and values are a 400 naming the header, never quoting the value", async () => {
    const put = (body: Record<string, unknown>) => router.admin("PUT", "/v1/hooks/refused.creds.example", { url: `${receiver.url}/refused`, ...body })
    for (const name of ["Host", "content-type", "Content-Length", "Authorization", "traceparent", "tracestate", "Connection", "Transfer-Encoding", "Upgrade", "TE", "Webhook-Signature", "webhook-id"]) {
      await expectRefused(await put({ headers: { [name]: REFUSED_VALUE } }), `headers.${name}`)
    }
    expect(await expectRefused(await put({ headers: { "X-Key": `${REFUSED_VALUE}\r\nX-Injected: 1` } }), "headers.X-Key")).toContain("not shown")
    await expectRefused(await put({ headers: { "X-Key": `${REFUSED_VALUE}\u0000` } }), "headers.X-Key")
    await expectRefused(await put({ headers: { "X-Key": REFUSED_VALUE.repeat(500) } }), "headers.X-Key")
    await expectRefused(await put({ headers: { "X-Key": 42 } }), "headers.X-Key")
    await expectRefused(await put({ headers: { "Bad Name": "v" } }), "headers.Bad Name")
    const proto = `{"url": "${receiver.url}/refused", "headers": {"__proto__": "${REFUSED_VALUE}"}}`
    await expectRefused(await router.admin("PUT", "/v1/hooks/refused.creds.example", proto), "headers.__proto__")
    await expectRefused(await put({ headers: { "x-key": "a", "X-Key": "b" } }), "headers.X-Key")
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`X-H${i}`, "v"]))
    await expectRefused(await put({ headers: many }), "headers")
    await expectRefused(await put({ auth: { bearer: `${REFUSED_VALUE} x` } }), "auth.bearer")
    await expectRefused(await put({ auth: { bearer: REFUSED_VALUE, basic: { username: "a", password: "b" } } }), "auth")
    await expectRefused(await put({ auth: { basic: { username: `a:${REFUSED_VALUE}`, password: "b" } } }), "auth.basic.username")
    await expectRefused(await put({ auth: { basic: { username: "a", password: `${REFUSED_VALUE}\n` } } }), "auth.basic.password")
    // The store tells an encrypted value by its prefix: a plain one that starts so is refused, not stored to fail its reading later.
    expect(await expectRefused(await put({ headers: { "X-Key": `enc:v1:${REFUSED_VALUE}` } }), "headers.X-Key")).toContain("the form of an encrypted value")
    await expectRefused(await put({ auth: { basic: { username: "a", password: `enc:v1:x:${REFUSED_VALUE}:y` } } }), "auth.basic.password")
    await expectRefused(await put({ auth: REFUSED_VALUE }), "auth")
    await expectRefused(await put({ auth: { token: REFUSED_VALUE } }), "auth.token")
    expect((await router.admin("GET", "/v1/hooks/refused.creds.example")).status).toBe(404)
  })

  test("a tenant token sets headers and auth on its own host; on another's it is 403", async () => {
    const own = await router.admin(
      "PUT",
      "/v1/hooks/tenant.creds.example",
      { url: `${receiver.url}/tenant`, secret: SECRET, headers: { "X-Api-Key": TENANT_KEY }, auth: { basic: { username: "clinic", password: TENANT_PASSWORD } } },
      TENANT_TOKEN
    )
    const text = await own.text()
    expect(own.status).toBe(201)
    noSecretIn(text)
    const received = await testSend(router, receiver, "tenant.creds.example", TENANT_TOKEN)
    expect(received.headers["x-api-key"]).toBe(TENANT_KEY)
    expect(received.headers["authorization"]).toBe(basic("clinic", TENANT_PASSWORD))

    const other = await router.admin("PUT", "/v1/hooks/other.creds.example", { url: `${receiver.url}/other`, headers: { "X-Api-Key": TENANT_KEY } }, TENANT_TOKEN)
    expect(other.status).toBe(403)
    noSecretIn(await other.text())
    expect((await router.admin("GET", "/v1/hooks/other.creds.example")).status).toBe(404)
  })

  test("nothing secret in the router's logs or stderr; the delivery attempt lines are there", () => {
    expect(router.logs.some((line) => line.msg === "delivery attempt" && line.tenant === "file.creds.example")).toBe(true)
    noSecretIn(JSON.stringify(router.logs))
    noSecretIn(router.stderr())
  })

  test("the OpenAPI document describes headers and auth in the request and hasAuth/headers in the answers", async () => {
    const spec = (await (await fetch(`${router.url}/openapi.json`)).json()) as any
    const schemas = spec.components.schemas
    expect(Object.keys(schemas.HookChanges.properties)).toEqual(expect.arrayContaining(["headers", "auth"]))
    expect(Object.keys(schemas.Hook.properties)).toEqual(expect.arrayContaining(["headers", "hasAuth"]))
    expect(schemas.Hook.properties.auth).toBeUndefined()
    expect(schemas.Hook.required).toEqual(expect.arrayContaining(["headers", "hasAuth"]))
  })
})

describe("refused in the config file", () => {
  const dir = mkdtempSync(join(tmpdir(), "router-creds-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const start = async (hook: Record<string, unknown>) => {
    const path = join(dir, `bad-${++roomCounter}.yaml`)
    writeFileSync(path, Bun.YAML.stringify(testConfig(dir, { hooks: [{ host: "bad.creds.example", url: "http://127.0.0.1:9/x", ...hook }] })))
    const proc = Bun.spawn(["bun", "run", join(ROOT, "src/main.ts"), "--config", path], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ROUTER_CONFIG: "" } })
    const code = await proc.exited
    const output = (await new Response(proc.stderr).text()) + (await new Response(proc.stdout).text())
    expect(code).not.toBe(0)
    noSecretIn(output)
    return output
  }

  test("a refused header name or value stops the process naming the key, never quoting the value", async () => {
    expect(await start({ headers: { Host: REFUSED_VALUE } })).toContain("config: hooks.0.headers.Host: ")
    expect(await start({ headers: { "Proxy-Authorization": REFUSED_VALUE } })).toContain("config: hooks.0.headers.Proxy-Authorization: ")
    expect(await start({ headers: { "X-Key": `${REFUSED_VALUE}\n` } })).toContain("config: hooks.0.headers.X-Key: ")
  })

  test("bad auth stops the process naming the key, never quoting the credentials", async () => {
    expect(await start({ auth: { basic: { username: `u:${REFUSED_VALUE}`, password: "p" } } })).toContain("config: hooks.0.auth.basic.username: ")
    expect(await start({ auth: { bearer: `${REFUSED_VALUE} ${REFUSED_VALUE}` } })).toContain("config: hooks.0.auth.bearer: ")
  })
})

describe("the HTTP hook source, and changes between attempts", () => {
  const REMOTE_KEY = unique("remotekey")
  const REMOTE_PASSWORD = unique("remotepass")
  const FIRST_KEY = unique("firstkey")
  const NEXT_KEY = unique("nextkey")
  const OLD_TOKEN = unique("oldtoken")
  const secrets = [REMOTE_KEY, REMOTE_PASSWORD, FIRST_KEY, NEXT_KEY, OLD_TOKEN]
  let receiver: Receiver
  /** Answers 503 (retry in about a second) to the first request of each path, then 200. */
  let retrying: Receiver
  let router: RunningRouter
  let answer: string
  let source: ReturnType<typeof Bun.serve>

  beforeAll(async () => {
    receiver = startReceiver(SECRET)
    retrying = startReceiver(SECRET, [{ status: 503 }, { status: 200 }, { status: 503 }, { status: 200 }])
    answer = JSON.stringify({
      hooks: [
        {
          host: "remote.creds.example",
          url: `${receiver.url}/remote`,
          secret: SECRET,
          headers: { "X-Api-Key": REMOTE_KEY },
          auth: { basic: { username: "remote", password: REMOTE_PASSWORD } }
        }
      ]
    })
    source = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(answer, { headers: { "content-type": "application/json" } }) })
    router = await startRouter({
      remoteHooks: { url: `http://127.0.0.1:${source.port}/hooks`, interval: "300ms" },
      // One retry, about a second after the first attempt: time to change the hook in between.
      delivery: { initialBackoff: "1s", maxBackoff: "1s" }
    })
    // The router listens before its first fetch of the source: a call sent sooner would find no hook (unroutable).
    await eventually(async () => (await router.admin("GET", "/v1/hooks/remote.creds.example")).status === 200, WAIT, "the source's hooks loaded")
  })
  afterAll(async () => {
    await router?.stop()
    receiver?.stop()
    retrying?.stop()
    source?.stop(true)
  })

  test("hooks from the HTTP source carry their headers and auth", async () => {
    const received = await deliveredCall(router, receiver, "remote.creds.example")
    expect(received.headers["x-api-key"]).toBe(REMOTE_KEY)
    expect(received.headers["authorization"]).toBe(basic("remote", REMOTE_PASSWORD))
    const view = await (await router.admin("GET", "/v1/hooks/remote.creds.example")).text()
    expect(JSON.parse(view)).toMatchObject({ source: "http", headers: ["X-Api-Key"], hasAuth: true })
    for (const secret of secrets) expect(view).not.toContain(secret)
  })

  test("a source answer with a refused header is logged naming it, without its value, and the last good table stays", async () => {
    answer = JSON.stringify({ hooks: [{ host: "remote.creds.example", url: `${receiver.url}/remote`, secret: SECRET, headers: { "Transfer-Encoding": REMOTE_KEY } }] })
    const refusedLine = () => router.logs.find((line) => line.msg?.startsWith("remote hook table refused"))
    await eventually(() => refusedLine() !== undefined, WAIT, "the refusal")
    expect(refusedLine()!.problem).toStartWith("hooks.0.headers.Transfer-Encoding: ")
    expect(JSON.stringify(refusedLine())).not.toContain(REMOTE_KEY)
    const received = await deliveredCall(router, receiver, "remote.creds.example")
    expect(received.headers["x-api-key"]).toBe(REMOTE_KEY)
  })

  test("a changed hook's headers and auth apply to the next attempt of a call in progress", async () => {
    const hook = (key: string) => ({ url: `${retrying.url}/same`, secret: SECRET, headers: { "X-Api-Key": key }, auth: { bearer: OLD_TOKEN } })
    expect((await router.admin("PUT", "/v1/hooks/retry.creds.example", hook(FIRST_KEY))).status).toBe(201)
    const room = `room-creds-retry-${++roomCounter}`
    await router.post(sipParticipantEvent("participant_joined", { room, xToIp: "retry.creds.example" }))
    const ofRoom = () => retrying.received.filter((r) => r.json?.call?.room === room)
    await retrying.waitFor(() => ofRoom().length === 1, WAIT)
    expect((await router.admin("PUT", "/v1/hooks/retry.creds.example", { ...hook(NEXT_KEY), auth: undefined })).status).toBe(200)
    await retrying.waitFor(() => ofRoom().length === 2, WAIT)
    const [first, second] = ofRoom()
    expect(first!.headers["x-api-key"]).toBe(FIRST_KEY)
    expect(first!.headers["authorization"]).toBe(`Bearer ${OLD_TOKEN}`)
    expect(second!.headers["x-api-key"]).toBe(NEXT_KEY)
    expect(second!.headers["authorization"]).toBeUndefined()
  })

  test("a moved hook's pinned destination is sent without the hook's headers and auth", async () => {
    const moved = { url: `${retrying.url}/old`, secret: SECRET, headers: { "X-Api-Key": FIRST_KEY }, auth: { bearer: OLD_TOKEN } }
    expect((await router.admin("PUT", "/v1/hooks/moved.creds.example", moved)).status).toBe(201)
    const room = `room-creds-moved-${++roomCounter}`
    await router.post(sipParticipantEvent("participant_joined", { room, xToIp: "moved.creds.example" }))
    const ofRoom = () => retrying.received.filter((r) => r.json?.call?.room === room)
    await retrying.waitFor(() => ofRoom().length === 1, WAIT)
    expect((await router.admin("PUT", "/v1/hooks/moved.creds.example", { ...moved, url: `${receiver.url}/new`, headers: { "X-Api-Key": NEXT_KEY } })).status).toBe(200)
    await retrying.waitFor(() => ofRoom().length === 2, WAIT)
    const [first, second] = ofRoom()
    expect([first!.path, second!.path]).toEqual(["/old", "/old"])
    expect(first!.headers["x-api-key"]).toBe(FIRST_KEY)
    expect(second!.headers["x-api-key"]).toBeUndefined()
    expect(second!.headers["authorization"]).toBeUndefined()
  })

  test("nothing secret in this router's logs or stderr", () => {
    const text = JSON.stringify(router.logs) + router.stderr()
    for (const secret of secrets) expect(text).not.toContain(secret)
  })
})
