/**
 * Where the hook table comes from, through the real process: the config file
 * (watched and polled while the router runs), an HTTP source polled with
 * If-None-Match, and the admin API (persisted), merged file > HTTP > API.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { randomBytes } from "node:crypto"
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { roomEvent, sipParticipantEvent, trackEvent, type SipCall } from "./support/livekit.ts"
import { startReceiver, type Receiver, type Received } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

setDefaultTimeout(45_000)

/** The documented promise: a valid edit takes effect "within a couple of seconds". Generous for a loaded machine. */
const EDIT_BOUND_MS = 5_000
/** Waits for things with no promised latency (log lines, deliveries). */
const SLOW_MS = 15_000

const newSecret = () => "whsec_" + randomBytes(32).toString("base64")

let rooms = 0
const room = (prefix: string) => `${prefix}-${++rooms}-${Math.random().toString(36).slice(2, 8)}`

type Doc = Record<string, any>

const yaml = (doc: Doc) => Bun.YAML.stringify(doc)

/** Overwrites router.yaml in place (truncate + write), as `echo > file` or some editors do. */
const writeInPlace = (router: RunningRouter, doc: Doc) => writeFileSync(router.configPath, yaml(doc))

let temps = 0
/** Saves like vim/VS Code/atomic writers: a new file in the same folder renamed over router.yaml. */
const saveByRename = (router: RunningRouter, doc: Doc) => {
  const temp = join(dirname(router.configPath), `.router.yaml.${process.pid}.${++temps}.tmp`)
  writeFileSync(temp, yaml(doc))
  renameSync(temp, router.configPath)
}

interface HookView {
  host: string
  url: string
  events: string[] | null
  rateLimit: string | null
  maxAge: string | null
  source: "file" | "http" | "api"
  hasOwnSecret: boolean
  headers: string[]
  hasAuth: boolean
  disabled: boolean
  disabledAt: string | null
}
interface NumberView {
  number: string
  host: string
  source: "file" | "http" | "api"
}

const listHooks = async (router: RunningRouter): Promise<HookView[]> => {
  const response = await router.admin("GET", "/v1/hooks")
  expect(response.status).toBe(200)
  return ((await response.json()) as { hooks: HookView[] }).hooks
}
const hookOf = async (router: RunningRouter, host: string) => (await listHooks(router)).find((h) => h.host === host)

const listNumbers = async (router: RunningRouter): Promise<NumberView[]> => {
  const response = await router.admin("GET", "/v1/numbers")
  expect(response.status).toBe(200)
  return ((await response.json()) as { numbers: NumberView[] }).numbers
}
const numberOf = async (router: RunningRouter, number: string) => (await listNumbers(router)).find((n) => n.number === number)

/** Waits (bounded by the documented promise) until the router's table shows `check`; returns how long it took. */
const takesEffect = async (what: string, check: () => Promise<boolean>, bound = EDIT_BOUND_MS) => {
  const started = Date.now()
  await eventually(check, bound, `${what} (within ${bound} ms)`)
  return Date.now() - started
}

/** Waits for a log line written after `mark` (an index into router.logs). */
const logAfter = async (router: RunningRouter, mark: number, predicate: (line: Record<string, any>) => boolean, what: string) => {
  await eventually(() => router.logs.slice(mark).some(predicate), SLOW_MS, what)
  return router.logs.slice(mark).find(predicate)!
}

const expectAccepted = async (response: Promise<Response>) => {
  const r = await response
  expect(r.status).toBe(200)
  expect(await r.json()).toEqual({ status: "received" })
}

const byId = (receiver: Receiver, id: string) => receiver.received.filter((x) => x.json.data.id === id)

const deliveredTo = async (receiver: Receiver, id: string): Promise<Received> => {
  await receiver.waitFor((r) => r.some((x) => x.json.data.id === id), SLOW_MS)
  const got = byId(receiver, id)
  expect(got).toHaveLength(1)
  return got[0]!
}

/** A new call (participant_joined) with these SIP attributes; returns the event. */
const newCall = async (router: RunningRouter, call: Omit<SipCall, "room">, prefix = "call") => {
  const event = sipParticipantEvent("participant_joined", { room: room(prefix), ...call })
  await expectAccepted(router.post(event))
  return event
}

/** A new call that must reach `receiver` at `path` for `tenant`. */
const callReaches = async (router: RunningRouter, call: Omit<SipCall, "room">, receiver: Receiver, path: string, tenant: string) => {
  const event = await newCall(router, call)
  const got = await deliveredTo(receiver, event.id)
  expect(got.path).toBe(path)
  expect(got.json.tenant).toBe(tenant)
  expect(got.json.call.room).toBe(event.room.name)
  return event
}

/** A new call that must be acknowledged, counted and warned as unknown_domain, and never forwarded. */
const callUnroutable = async (router: RunningRouter, call: Omit<SipCall, "room">, domain: string, receivers: ReadonlyArray<Receiver>) => {
  const before = await router.metric("tenant_router_unroutable_total", { reason: "unknown_domain" })
  const event = await newCall(router, call, "unroutable")
  const warning = await logAfter(
    router,
    0,
    (l) => l.msg === "no tenant for SIP event" && l.eventId === event.id,
    `unroutable warning for ${event.id}`
  )
  expect(warning).toMatchObject({ level: "warn", reason: "unknown_domain", domain })
  expect(await router.metric("tenant_router_unroutable_total", { reason: "unknown_domain" })).toBe(before + 1)
  expect(router.logs.filter((l) => l.msg === "delivery attempt" && l.eventId === event.id)).toEqual([])
  for (const receiver of receivers) expect(byId(receiver, event.id)).toHaveLength(0)
  return event
}

const refusedEdit = (l: Record<string, any>) => l.msg === "config edit refused; the last good config stays in force"
const needsRestart = (l: Record<string, any>) => l.msg === "config edit needs a restart"
const remoteRefused = (l: Record<string, any>) => l.msg === "remote hook table refused; the last good table stays in force"

// ---------------------------------------------------------------------------

describe("config file edits while running (default reload interval)", () => {
  const R = startReceiver(DEFAULT_SECRET)
  const betaSecret = newSecret()
  const B = startReceiver(betaSecret)
  const deltaSecret = newSecret()
  const D = startReceiver(deltaSecret)
  const SHARED = "sip.shared-carrier.test"
  const N1 = "+15550100001"
  const N2 = "+15550100002"
  let router: RunningRouter
  let doc: Doc

  beforeAll(async () => {
    router = await startRouter((dir) => {
      doc = testConfig(dir, {
        sharedDomains: [SHARED],
        hooks: [{ host: "alpha.example.org", url: `${R.url}/alpha-v1` }],
        numbers: [{ number: N1, host: "alpha.example.org" }]
      })
      return doc
    })
  })

  afterAll(async () => {
    await router?.stop()
    R.stop()
    B.stop()
    D.stop()
  })

  /** alpha's current path, whichever tests ran before. */
  const alphaPath = () => new URL(doc.hooks.find((h: Doc) => h.host === "alpha.example.org").url).pathname

  test("a hook added to router.yaml receives new calls, signed with the secret the file gives it", async () => {
    await callUnroutable(router, { xToIp: "beta.example.org" }, "beta.example.org", [R, B])

    const mark = router.logs.length
    doc.hooks = [...doc.hooks, { host: "beta.example.org", url: `${B.url}/beta`, secret: betaSecret }]
    writeInPlace(router, doc)
    await takesEffect("beta.example.org in the table", async () => (await hookOf(router, "beta.example.org"))?.url === `${B.url}/beta`)

    expect(await hookOf(router, "beta.example.org")).toMatchObject({ source: "file", hasOwnSecret: true })
    const reloaded = await logAfter(router, mark, (l) => l.msg === "hooks reloaded", "hooks reloaded")
    expect(reloaded).toMatchObject({ level: "info", path: router.configPath, hooks: doc.hooks.length, numbers: doc.numbers.length })

    await callReaches(router, { xToIp: "Beta.Example.org:5060" }, B, "/beta", "beta.example.org")
    expect(B.rejected).toEqual([])
    // The hook that was there all along is untouched.
    await callReaches(router, { xToIp: "alpha.example.org" }, R, "/alpha-v1", "alpha.example.org")
  })

  test("a secret changed in the file, and nothing else: new deliveries are signed with the new secret", async () => {
    const [first, second] = [newSecret(), newSecret()]
    const before = startReceiver(first)
    doc.hooks = [...doc.hooks, { host: "epsilon.example.org", url: `${before.url}/epsilon`, secret: first }]
    writeInPlace(router, doc)
    await takesEffect("epsilon.example.org in the table", async () => (await hookOf(router, "epsilon.example.org")) !== undefined)
    await callReaches(router, { xToIp: "epsilon.example.org" }, before, "/epsilon", "epsilon.example.org")
    // The same endpoint, now verifying with the second secret only.
    const port = Number(new URL(before.url).port)
    before.stop()
    const after = startReceiver(second, [{ status: 200 }], port)
    try {
      const mark = router.logs.length
      doc.hooks = doc.hooks.map((h: Doc) => (h.host === "epsilon.example.org" ? { ...h, secret: second } : h))
      writeInPlace(router, doc)
      await logAfter(router, mark, (l) => l.msg === "hooks reloaded", "hooks reloaded")
      await callReaches(router, { xToIp: "epsilon.example.org" }, after, "/epsilon", "epsilon.example.org")
      expect(after.rejected).toEqual([])
    } finally {
      after.stop()
    }
  })

  test("a URL changed in the file: new calls go to the new URL, a call in progress keeps the old one", async () => {
    const callRoom = room("inprogress")
    const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: "alpha.example.org" })
    await expectAccepted(router.post(joined))
    const first = await deliveredTo(R, joined.id)
    expect(first.path).toBe("/alpha-v1")

    doc.hooks = doc.hooks.map((h: Doc) => (h.host === "alpha.example.org" ? { ...h, url: `${R.url}/alpha-v2` } : h))
    writeInPlace(router, doc)
    await takesEffect("alpha's new URL in the table", async () => (await hookOf(router, "alpha.example.org"))?.url === `${R.url}/alpha-v2`)

    // The call pinned before the edit carries on to the old URL.
    const track = trackEvent(callRoom)
    const left = sipParticipantEvent("participant_left", { room: callRoom, xToIp: "alpha.example.org" })
    for (const event of [track, left]) {
      await expectAccepted(router.post(event))
      const got = await deliveredTo(R, event.id)
      expect(got.path).toBe("/alpha-v1")
      expect(got.json.tenant).toBe("alpha.example.org")
      expect(got.json.type).toBe(event.event)
      expect(got.json.call).toEqual(first.json.call)
    }

    // A new call, after the edit, goes to the new URL.
    const fresh = await callReaches(router, { xToIp: "alpha.example.org" }, R, "/alpha-v2", "alpha.example.org")

    const finished = roomEvent("room_finished", callRoom)
    await expectAccepted(router.post(finished))
    expect((await deliveredTo(R, finished.id)).path).toBe("/alpha-v1")
    expect(R.received.filter((x) => x.json.call.room === callRoom && x.path !== "/alpha-v1")).toEqual([])
    expect(R.received.filter((x) => x.json.call.room === fresh.room.name && x.path !== "/alpha-v2")).toEqual([])
  })

  test("a hook removed from the file: new calls to it are unroutable (unknown_domain); a call already pinned to it carries on", async () => {
    doc.hooks = [...doc.hooks, { host: "delta.example.org", url: `${D.url}/delta`, secret: deltaSecret }]
    writeInPlace(router, doc)
    await takesEffect("delta.example.org in the table", async () => (await hookOf(router, "delta.example.org")) !== undefined)

    const callRoom = room("removed")
    const joined = sipParticipantEvent("participant_joined", { room: callRoom, xToIp: "delta.example.org" })
    await expectAccepted(router.post(joined))
    expect((await deliveredTo(D, joined.id)).path).toBe("/delta")

    doc.hooks = doc.hooks.filter((h: Doc) => h.host !== "delta.example.org")
    writeInPlace(router, doc)
    await takesEffect("delta.example.org gone from the table", async () => (await hookOf(router, "delta.example.org")) === undefined)

    await callUnroutable(router, { xToIp: "delta.example.org" }, "delta.example.org", [R, B, D])

    // The pin keeps the call's destination, so its later events still reach delta, signed so delta can verify them.
    const track = trackEvent(callRoom)
    await expectAccepted(router.post(track))
    const attempt = await logAfter(router, 0, (l) => l.msg === "delivery attempt" && l.eventId === track.id, "the pinned event's attempt")
    expect(attempt).toMatchObject({ tenant: "delta.example.org", url: `${D.url}/delta` })
    expect(D.rejected).toEqual([])
    const got = await deliveredTo(D, track.id)
    expect(got.path).toBe("/delta")
    expect(got.json.tenant).toBe("delta.example.org")
  })

  test("numbers edited in the file re-route calls on a shared domain", async () => {
    // Before: N1 → alpha, N2 unmapped.
    await callReaches(router, { xToIp: SHARED, dialled: N1 }, R, alphaPath(), "alpha.example.org")
    await callUnroutable(router, { xToIp: SHARED, dialled: N2 }, SHARED, [R, B])

    // N1 moves to a new hook (added in the same edit), N2 maps to alpha; written as people write numbers.
    doc.hooks = [...doc.hooks, { host: "gamma.example.org", url: `${R.url}/gamma` }]
    doc.numbers = [
      { number: "+1 (555) 010-0001", host: "gamma.example.org" },
      { number: "+1 555 010 0002", host: "alpha.example.org" }
    ]
    writeInPlace(router, doc)
    await takesEffect("N1 mapped to gamma", async () => (await numberOf(router, N1))?.host === "gamma.example.org")
    expect(await listNumbers(router)).toEqual([
      { number: N1, host: "gamma.example.org", source: "file" },
      { number: N2, host: "alpha.example.org", source: "file" }
    ])

    await callReaches(router, { xToIp: SHARED, dialled: N1 }, R, "/gamma", "gamma.example.org")
    await callReaches(router, { to: `<sip:${N2}@${SHARED}>`, dialled: N2 }, R, alphaPath(), "alpha.example.org")

    // A mapping removed: that number on the shared domain reaches nobody.
    doc.numbers = doc.numbers.filter((n: Doc) => n.host !== "gamma.example.org")
    writeInPlace(router, doc)
    await takesEffect("N1 unmapped", async () => (await numberOf(router, N1)) === undefined)
    await callUnroutable(router, { xToIp: SHARED, dialled: N1 }, SHARED, [R, B])
    // gamma's own domain still routes: only the number went away.
    await callReaches(router, { xToIp: "gamma.example.org" }, R, "/gamma", "gamma.example.org")
  })
})

// ---------------------------------------------------------------------------

describe("the ways editors save (file watch only: reload.interval 1h)", () => {
  // With polling effectively off, only the folder watch can notice these edits.
  const R = startReceiver(DEFAULT_SECRET)
  const HOST = "saved.example.org"
  let router: RunningRouter
  let doc: Doc

  const withUrl = (path: string): Doc => ({ ...doc, hooks: [{ host: HOST, url: `${R.url}${path}` }] })
  const urlIs = (path: string) => async () => (await hookOf(router, HOST))?.url === `${R.url}${path}`

  beforeAll(async () => {
    router = await startRouter((dir) => {
      doc = testConfig(dir, { reload: { interval: "1h" }, hooks: [{ host: HOST, url: `${R.url}/initial` }] })
      return doc
    })
  })

  afterAll(async () => {
    await router?.stop()
    R.stop()
  })

  test("a new file renamed over router.yaml is picked up, and again after the original file is gone", async () => {
    await callReaches(router, { xToIp: HOST }, R, "/initial", HOST)

    saveByRename(router, withUrl("/renamed-1"))
    await takesEffect("first rename applied", urlIs("/renamed-1"))
    await callReaches(router, { xToIp: HOST }, R, "/renamed-1", HOST)

    // router.yaml is now another inode: a watch on the old file would be dead, the folder's is not.
    saveByRename(router, withUrl("/renamed-2"))
    await takesEffect("second rename applied", urlIs("/renamed-2"))
    await callReaches(router, { xToIp: HOST }, R, "/renamed-2", HOST)
    expect(router.logs.filter(refusedEdit)).toEqual([])
  })

  test("an in-place write is picked up", async () => {
    writeInPlace(router, withUrl("/in-place"))
    await takesEffect("in-place write applied", urlIs("/in-place"))
    await callReaches(router, { xToIp: HOST }, R, "/in-place", HOST)
  })

  test("several quick successive saves end in the last content", async () => {
    // Same-length URLs (same file size) written back to back, in place and by rename, with no pause.
    for (let i = 0; i < 10; i++) {
      const next = withUrl(`/quick-${i}`)
      if (i % 2 === 0) writeInPlace(router, next)
      else saveByRename(router, next)
    }
    for (let i = 0; i < 10; i++) writeInPlace(router, withUrl(`/burst-${i}`))
    await takesEffect("the last of the burst applied", urlIs("/burst-9"))
    await callReaches(router, { xToIp: HOST }, R, "/burst-9", HOST)
    expect(await hookOf(router, HOST)).toMatchObject({ url: `${R.url}/burst-9`, source: "file" })
  })
})

// ---------------------------------------------------------------------------

describe("broken edits keep the last good table", () => {
  const R = startReceiver(DEFAULT_SECRET)
  const HOST = "steady.example.org"
  let router: RunningRouter
  let good: Doc

  beforeAll(async () => {
    router = await startRouter((dir) => {
      good = testConfig(dir, { hooks: [{ host: HOST, url: `${R.url}/good-0` }] })
      return good
    })
  })

  afterAll(async () => {
    await router?.stop()
    R.stop()
  })

  /** Every broken edit also tries a valid change, which must not leak through. */
  const attempted = () => [
    { host: HOST, url: `${R.url}/never` },
    { host: "sneaky.example.org", url: `${R.url}/sneaky` }
  ]

  let generation = 0

  test.each<[string, () => string, string | RegExp, RegExp]>([
    [
      "YAML syntax error",
      () => yaml({ ...good, hooks: attempted() }) + "\nhooks: [ {host: unclosed\n  : : -\n",
      "(file)",
      /not valid YAML/
    ],
    [
      "a bad duration",
      () => yaml({ ...good, delivery: { ...good.delivery, timeout: "soon" }, hooks: attempted() }),
      "delivery.timeout",
      /expected a duration like .*got "soon"/
    ],
    [
      "a duplicate host",
      () => yaml({ ...good, hooks: [...attempted(), { host: "Sneaky.Example.org", url: `${R.url}/twice` }] }),
      /^hooks\.\d+\.host$/,
      /duplicate host "sneaky\.example\.org"/
    ],
    [
      "a defaultCountry changed while running (the file's numbers would be read in another country than calls')",
      () => yaml({ ...good, defaultCountry: "GB", hooks: attempted() }),
      "defaultCountry",
      /changes only with a restart/
    ],
    [
      "a hook URL that is not http(s)",
      () => yaml({ ...good, hooks: [...attempted(), { host: "ftp.example.org", url: "ftp://files.example.org/in" }] }),
      "hooks.2.url",
      /expected an http or https URL/
    ]
  ])("%s: warned with the key and problem, calls keep routing, a later valid edit applies", async (_, text, key, problem) => {
    const current = `${R.url}/good-${generation}`
    const mark = router.logs.length
    // Saved atomically (by rename), so the router never reads a half-written file.
    const temp = join(dirname(router.configPath), `.broken.${++temps}.tmp`)
    writeFileSync(temp, text())
    renameSync(temp, router.configPath)
    const warning = await logAfter(router, mark, refusedEdit, "config edit refused")
    expect(warning.level).toBe("warn")
    expect(warning.path).toBe(router.configPath)
    if (typeof key === "string") expect(warning.key).toBe(key)
    else expect(warning.key).toMatch(key)
    expect(warning.problem).toMatch(problem)

    // Nothing of the refused edit is in force.
    expect(await hookOf(router, HOST)).toMatchObject({ url: current, source: "file" })
    expect(await hookOf(router, "sneaky.example.org")).toBeUndefined()
    await callReaches(router, { xToIp: HOST }, R, new URL(current).pathname, HOST)
    await callUnroutable(router, { xToIp: "sneaky.example.org" }, "sneaky.example.org", [R])
    expect(router.logs.slice(mark).filter((l) => l.msg === "hooks reloaded")).toEqual([])

    // The next valid edit is applied.
    generation++
    const next = `${R.url}/good-${generation}`
    good = { ...good, hooks: [{ host: HOST, url: next }] }
    writeInPlace(router, good)
    await takesEffect("the valid edit after a refused one", async () => (await hookOf(router, HOST))?.url === next)
    await callReaches(router, { xToIp: HOST }, R, `/good-${generation}`, HOST)
  })

  test("an edit to a key only a restart applies is logged with the key; its hook changes still apply", async () => {
    const mark = router.logs.length
    const edited = {
      ...good,
      delivery: { ...good.delivery, timeout: "2s" },
      hooks: [...good.hooks, { host: "later.example.org", url: `${R.url}/later` }]
    }
    writeInPlace(router, edited)
    const warning = await logAfter(router, mark, needsRestart, "config edit needs a restart")
    expect(warning.level).toBe("warn")
    expect(warning.path).toBe(router.configPath)
    // `keys` lists the edited keys; delivery.timeout sits under `delivery`.
    expect(String(warning.keys)).toMatch(/(^|, )delivery(\.timeout)?(,|$)/)
    expect(String(warning.keys)).not.toMatch(/hooks|numbers/)
    expect(router.logs.slice(mark).filter(refusedEdit)).toEqual([])

    await takesEffect("the hook edited next to delivery.timeout", async () => (await hookOf(router, "later.example.org")) !== undefined)
    await callReaches(router, { xToIp: "later.example.org" }, R, "/later", "later.example.org")

    // sharedDomains is read once at start too.
    const mark2 = router.logs.length
    writeInPlace(router, { ...edited, sharedDomains: ["sip.newcarrier.test"] })
    const second = await logAfter(router, mark2, (l) => needsRestart(l) && /sharedDomains/.test(String(l.keys)), "needs a restart: sharedDomains")
    expect(second.level).toBe("warn")
  })
})

// ---------------------------------------------------------------------------

describe("the config file and the admin API", () => {
  const R = startReceiver(DEFAULT_SECRET)
  const apiSecret = newSecret()
  const A = startReceiver(apiSecret)
  const HOST = "both.example.org"
  const SHARED = "sip.api-carrier.test"
  const N = "+15550200001"
  let router: RunningRouter
  let doc: Doc

  beforeAll(async () => {
    router = await startRouter((dir) => {
      doc = testConfig(dir, { sharedDomains: [SHARED], hooks: [{ host: "other.example.org", url: `${R.url}/other` }] })
      return doc
    })
  })

  afterAll(async () => {
    await router?.stop()
    R.stop()
    A.stop()
  })

  test("a host the file adds over an API hook: the file wins, the API gets 409, and removing it from the file brings the API hook back", async () => {
    const put = (url: string) => router.admin("PUT", `/v1/hooks/${HOST}`, { url, secret: apiSecret })
    expect((await put(`${A.url}/api`)).status).toBe(201)
    expect(await hookOf(router, HOST)).toMatchObject({ url: `${A.url}/api`, source: "api", hasOwnSecret: true })
    await callReaches(router, { xToIp: HOST }, A, "/api", HOST)

    doc.hooks = [...doc.hooks, { host: HOST, url: `${R.url}/file` }]
    writeInPlace(router, doc)
    await takesEffect("the file's hook over the API's", async () => (await hookOf(router, HOST))?.source === "file")
    expect((await listHooks(router)).filter((h) => h.host === HOST)).toEqual([
      { host: HOST, url: `${R.url}/file`, events: null, rateLimit: null, maxAge: null, source: "file", hasOwnSecret: false, headers: [], hasAuth: false, disabled: false, disabledAt: null }
    ])
    await callReaches(router, { xToIp: HOST }, R, "/file", HOST)

    const conflict = await put(`${A.url}/api-2`)
    expect(conflict.status).toBe(409)
    expect(((await conflict.json()) as any).error).toMatchObject({ code: "conflict", message: expect.stringContaining("config file") })
    expect((await router.admin("DELETE", `/v1/hooks/${HOST}`)).status).toBe(409)
    expect(await hookOf(router, HOST)).toMatchObject({ url: `${R.url}/file`, source: "file" })

    doc.hooks = doc.hooks.filter((h: Doc) => h.host !== HOST)
    writeInPlace(router, doc)
    await takesEffect("the API hook visible again", async () => (await hookOf(router, HOST))?.source === "api")
    expect(await hookOf(router, HOST)).toMatchObject({ url: `${A.url}/api`, source: "api", hasOwnSecret: true })
    await callReaches(router, { xToIp: HOST }, A, "/api", HOST)
    // And the API owns it again.
    expect((await put(`${A.url}/api-3`)).status).toBe(200)
    await callReaches(router, { xToIp: HOST }, A, "/api-3", HOST)
    expect(A.rejected).toEqual([])
  })

  test("a number the file adds over an API number: the file wins, the API gets 409; removing it brings the API mapping back", async () => {
    const API_HOST = "dialled.example.org"
    expect((await router.admin("PUT", `/v1/hooks/${API_HOST}`, { url: `${A.url}/dialled`, secret: apiSecret })).status).toBe(201)
    const path = `/v1/numbers/${encodeURIComponent(N)}`
    expect((await router.admin("PUT", path, { host: API_HOST })).status).toBe(201)
    expect(await numberOf(router, N)).toEqual({ number: N, host: API_HOST, source: "api" })
    await callReaches(router, { xToIp: SHARED, dialled: N }, A, "/dialled", API_HOST)

    doc.numbers = [{ number: N, host: "other.example.org" }]
    writeInPlace(router, doc)
    await takesEffect("the file's number over the API's", async () => (await numberOf(router, N))?.source === "file")
    expect(await numberOf(router, N)).toEqual({ number: N, host: "other.example.org", source: "file" })
    await callReaches(router, { xToIp: SHARED, dialled: N }, R, "/other", "other.example.org")
    expect((await router.admin("PUT", path, { host: API_HOST })).status).toBe(409)
    expect((await router.admin("DELETE", path)).status).toBe(409)

    doc.numbers = []
    writeInPlace(router, doc)
    await takesEffect("the API number visible again", async () => (await numberOf(router, N))?.source === "api")
    expect(await numberOf(router, N)).toEqual({ number: N, host: API_HOST, source: "api" })
    await callReaches(router, { xToIp: SHARED, dialled: N }, A, "/dialled", API_HOST)
    expect(A.rejected).toEqual([])
  })
})

// ---------------------------------------------------------------------------

interface SourceRequest {
  readonly at: number
  readonly ifNoneMatch: string | null
  readonly authorization: string | null
  readonly answered: number
}

/** Another system's tenant list: `{hooks, numbers}` JSON with an ETag, answering 304 to a matching If-None-Match. */
const startHookSource = () => {
  let answer: { status: number; body: string; etag: string | null } = { status: 503, body: "not yet", etag: null }
  const requests: SourceRequest[] = []
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      const ifNoneMatch = request.headers.get("if-none-match")
      const record = (status: number) =>
        requests.push({ at: Date.now(), ifNoneMatch, authorization: request.headers.get("authorization"), answered: status })
      if (answer.status === 200 && answer.etag !== null && ifNoneMatch === answer.etag) {
        record(304)
        return new Response(null, { status: 304, headers: { etag: answer.etag } })
      }
      record(answer.status)
      return new Response(answer.body, {
        status: answer.status,
        headers: { "content-type": "application/json", ...(answer.etag ? { etag: answer.etag } : {}) }
      })
    }
  })
  return {
    url: `http://127.0.0.1:${server.port}/tenants.json`,
    requests,
    serve: (status: number, body: unknown, etag: string | null) => {
      answer = { status, body: typeof body === "string" ? body : JSON.stringify(body), etag }
    },
    /** Resolves once the router has asked `n` more times after now. */
    polled: async (n = 1) => {
      const from = requests.length
      await eventually(() => requests.length >= from + n, SLOW_MS, `${n} more request(s) to the hook source`)
      return requests.slice(from)
    },
    stop: () => server.stop(true)
  }
}

describe("HTTP hook source", () => {
  const R = startReceiver(DEFAULT_SECRET)
  const source = startHookSource()
  const TOKEN = "remote-source-token-0123456789"
  const SHARED = "sip.remote-carrier.test"
  const NR = "+15550300001"
  const dir = mkdtempSync(join(tmpdir(), "router-hook-sources-"))
  let router: RunningRouter
  let doc: Doc

  const v1 = {
    hooks: [
      { host: "remote.example.org", url: `${R.url}/remote-v1` },
      { host: "both.example.org", url: `${R.url}/both-http` }
    ],
    numbers: [{ number: NR, host: "remote.example.org" }]
  }
  const v2 = {
    hooks: [
      { host: "remote.example.org", url: `${R.url}/remote-v2` },
      { host: "both.example.org", url: `${R.url}/both-http` },
      { host: "*.added.example.org", url: `${R.url}/added` }
    ],
    numbers: [{ number: NR, host: "remote.example.org" }]
  }

  const config = (d: string) => {
    doc = testConfig(d, {
      sharedDomains: [SHARED],
      remoteHooks: { url: source.url, interval: "300ms", token: TOKEN },
      hooks: [{ host: "both.example.org", url: `${R.url}/both-file` }]
    })
    return doc
  }

  /** What the endpoint last served that the router should have accepted. */
  let good: typeof v2 = v1
  let goodEtag = '"v1"'
  const serveGood = (table: typeof v2, etag: string) => {
    good = table
    goodEtag = etag
    source.serve(200, table, etag)
  }
  const remoteUrl = () => good.hooks.find((h) => h.host === "remote.example.org")!.url
  const remotePath = () => new URL(remoteUrl()).pathname

  beforeAll(async () => {
    serveGood(v1, '"v1"')
    router = await startRouter(config, dir)
    // The first poll runs in the background after start: let it land before anything is measured.
    await logAfter(router, 0, (l) => l.msg === "remote hooks loaded" || remoteRefused(l), "the first poll of the hook source")
  })

  afterAll(async () => {
    await router?.stop()
    R.stop()
    source.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test("its hooks and numbers route calls, listed with source http; the token is sent as a bearer token", async () => {
    await takesEffect("the remote table loaded", async () => (await hookOf(router, "remote.example.org")) !== undefined)
    expect(await hookOf(router, "remote.example.org")).toMatchObject({ url: `${R.url}/remote-v1`, source: "http", hasOwnSecret: false })
    expect(await numberOf(router, NR)).toEqual({ number: NR, host: "remote.example.org", source: "http" })
    const loaded = router.logs.find((l) => l.msg === "remote hooks loaded")
    expect(loaded).toMatchObject({ level: "info", url: source.url, hooks: 2, numbers: 1 })

    await callReaches(router, { xToIp: "remote.example.org" }, R, "/remote-v1", "remote.example.org")
    await callReaches(router, { xToIp: SHARED, dialled: NR }, R, "/remote-v1", "remote.example.org")

    expect(source.requests.length).toBeGreaterThan(0)
    for (const request of source.requests) expect(request.authorization).toBe(`Bearer ${TOKEN}`)
    expect(source.requests[0]!.ifNoneMatch).toBeNull()
  })

  test("later requests carry If-None-Match with the ETag; a 304 keeps the table", async () => {
    const later = await source.polled(3)
    for (const request of later) {
      expect(request.ifNoneMatch).toBe('"v1"')
      expect(request.answered).toBe(304)
      expect(request.authorization).toBe(`Bearer ${TOKEN}`)
    }
    expect(await hookOf(router, "remote.example.org")).toMatchObject({ url: `${R.url}/remote-v1`, source: "http" })
    await callReaches(router, { xToIp: "remote.example.org" }, R, "/remote-v1", "remote.example.org")
  })

  test("a host in both the file and the HTTP source uses the file's URL; removed from the file, the HTTP one", async () => {
    expect(await hookOf(router, "both.example.org")).toMatchObject({ url: `${R.url}/both-file`, source: "file" })
    expect((await listHooks(router)).filter((h) => h.host === "both.example.org")).toHaveLength(1)
    await callReaches(router, { xToIp: "both.example.org" }, R, "/both-file", "both.example.org")

    doc.hooks = []
    writeInPlace(router, doc)
    await takesEffect("the HTTP source's both.example.org", async () => (await hookOf(router, "both.example.org"))?.source === "http")
    expect(await hookOf(router, "both.example.org")).toMatchObject({ url: `${R.url}/both-http`, source: "http" })
    await callReaches(router, { xToIp: "both.example.org" }, R, "/both-http", "both.example.org")

    doc.hooks = [{ host: "both.example.org", url: `${R.url}/both-file` }]
    writeInPlace(router, doc)
    await takesEffect("the file's both.example.org again", async () => (await hookOf(router, "both.example.org"))?.source === "file")
    await callReaches(router, { xToIp: "both.example.org" }, R, "/both-file", "both.example.org")
  })

  test("the API cannot change or delete what the HTTP source defines (409)", async () => {
    const before = await hookOf(router, "remote.example.org")
    expect(before?.source).toBe("http")
    const put = await router.admin("PUT", "/v1/hooks/remote.example.org", { url: `${R.url}/hijack` })
    expect(put.status).toBe(409)
    expect(((await put.json()) as any).error).toMatchObject({ code: "conflict", message: expect.stringContaining("HTTP hook source") })
    expect((await router.admin("DELETE", "/v1/hooks/remote.example.org")).status).toBe(409)
    expect((await router.admin("PUT", `/v1/numbers/${encodeURIComponent(NR)}`, { host: "both.example.org" })).status).toBe(409)
    expect(await hookOf(router, "remote.example.org")).toEqual(before)
    await callReaches(router, { xToIp: "remote.example.org" }, R, remotePath(), "remote.example.org")
  })

  test("a change at the endpoint (new ETag) is picked up and sent as If-None-Match afterwards", async () => {
    serveGood(v2, '"v2"')
    await takesEffect("the endpoint's change", async () => (await hookOf(router, "remote.example.org"))?.url === `${R.url}/remote-v2`)
    expect(await hookOf(router, "*.added.example.org")).toMatchObject({ source: "http" })
    await callReaches(router, { xToIp: "remote.example.org" }, R, "/remote-v2", "remote.example.org")
    await callReaches(router, { xToIp: "x.added.example.org" }, R, "/added", "*.added.example.org")
    const later = await source.polled(2)
    for (const request of later) expect(request.ifNoneMatch).toBe('"v2"')
  })

  test.each<[string, number, () => unknown, RegExp]>([
    ["a body that is not JSON", 200, () => "{ hooks: [ nope", /not valid JSON/],
    ["a body nested 100 000 levels deep", 200, () => `{"hooks":${"[".repeat(100_000)}${"]".repeat(100_000)}}`, /nested deeper than 32 levels/],
    [
      "a hook with a URL that is not http(s)",
      200,
      () => ({ hooks: [{ host: "remote.example.org", url: "ftp://files.example.org/x" }] }),
      /hooks\.0\.url.*http or https/
    ],
    [
      "a duplicate host",
      200,
      () => ({
        hooks: [
          { host: "remote.example.org", url: `${R.url}/dup-1` },
          { host: "REMOTE.example.org", url: `${R.url}/dup-2` }
        ]
      }),
      /duplicate host/
    ],
    ["a 500", 500, () => ({ hooks: [] }), /answered 500/]
  ])("an invalid answer (%s) is refused and logged; the last good table and its ETag stay", async (_, status, body, problem) => {
    const mark = router.logs.length
    source.serve(status, body(), `"bad-${Math.random().toString(36).slice(2)}"`)
    const warning = await logAfter(router, mark, remoteRefused, "remote hook table refused")
    expect(warning).toMatchObject({ level: "warn", url: source.url })
    expect(warning.problem).toMatch(problem)

    // The router keeps asking with the last good ETag, not the refused answer's.
    const later = await source.polled(2)
    for (const request of later) expect(request.ifNoneMatch).toBe(goodEtag)
    expect(await hookOf(router, "remote.example.org")).toMatchObject({ url: remoteUrl(), source: "http" })
    expect((await listHooks(router)).filter((h) => h.source === "http").map((h) => h.host)).toEqual(
      good.hooks.map((h) => h.host).filter((h) => h !== "both.example.org").sort()
    )
    await callReaches(router, { xToIp: "remote.example.org" }, R, remotePath(), "remote.example.org")
    await callReaches(router, { xToIp: SHARED, dialled: NR }, R, remotePath(), "remote.example.org")
    expect(router.logs.slice(mark).filter((l) => l.msg === "remote hooks loaded")).toEqual([])

    // Back to the good table (same ETag): a 304 again, nothing reloaded.
    source.serve(200, good, goodEtag)
    await eventually(() => source.requests.at(-1)?.answered === 304, SLOW_MS, "a 304 after the good answer is back")
  })

  test("a restart with the endpoint down routes with the cached last good table", async () => {
    serveGood({ ...good, hooks: [...good.hooks, { host: "cached.example.org", url: `${R.url}/cached` }] }, '"v3"')
    await takesEffect("v3 loaded", async () => (await hookOf(router, "cached.example.org")) !== undefined)
    expect(await router.stop()).toBe(0)
    source.stop()

    router = await startRouter(config, dir)
    const warning = await logAfter(router, 0, remoteRefused, "remote hook table refused (endpoint down)")
    expect(warning).toMatchObject({ level: "warn", url: source.url })
    expect(await hookOf(router, "cached.example.org")).toMatchObject({ url: `${R.url}/cached`, source: "http" })
    expect(await hookOf(router, "remote.example.org")).toMatchObject({ url: remoteUrl(), source: "http" })
    expect(await numberOf(router, NR)).toEqual({ number: NR, host: "remote.example.org", source: "http" })
    await callReaches(router, { xToIp: "cached.example.org" }, R, "/cached", "cached.example.org")
    await callReaches(router, { xToIp: "remote.example.org" }, R, remotePath(), "remote.example.org")
    await callReaches(router, { xToIp: SHARED, dialled: NR }, R, remotePath(), "remote.example.org")
    // The file still beats the cached HTTP table.
    await callReaches(router, { xToIp: "both.example.org" }, R, "/both-file", "both.example.org")
    expect(R.rejected).toEqual([])
  })
})

describe("HTTP hook source without signing.secret", () => {
  const secret = newSecret()
  const R = startReceiver(secret)
  const source = startHookSource()
  let router: RunningRouter

  beforeAll(async () => {
    source.serve(200, { hooks: [{ host: "signed.example.org", url: `${R.url}/signed`, secret }] }, '"signed"')
    router = await startRouter((d) => {
      const { signing: _, ...rest } = testConfig(d, { remoteHooks: { url: source.url, interval: "300ms" } })
      return rest
    })
    await logAfter(router, 0, (l) => l.msg === "remote hooks loaded", "the first table loaded")
  })

  afterAll(async () => {
    await router.stop()
    R.stop()
    source.stop()
  })

  test("hooks with their own secrets are served; a table with a hook that has none is refused, naming it", async () => {
    await callReaches(router, { xToIp: "signed.example.org" }, R, "/signed", "signed.example.org")
    const mark = router.logs.length
    source.serve(200, { hooks: [{ host: "signed.example.org", url: `${R.url}/signed`, secret }, { host: "bare.example.org", url: `${R.url}/bare` }] }, '"bare"')
    const warning = await logAfter(router, mark, remoteRefused, "the unsigned table refused")
    expect(warning.problem).toBe("hooks.1.secret: required, since signing.secret is not set")
    expect(await hookOf(router, "bare.example.org")).toBeUndefined()
    await callReaches(router, { xToIp: "signed.example.org" }, R, "/signed", "signed.example.org")
  })
})

// ---------------------------------------------------------------------------

describe("API hooks and numbers across a restart while the file changed", () => {
  const R = startReceiver(DEFAULT_SECRET)
  const apiSecret = newSecret()
  const A = startReceiver(apiSecret)
  const SHARED = "sip.persist-carrier.test"
  const N_FILE_OLD = "+15550400001"
  const N_FILE_NEW = "+15550400002"
  const N_API = "+15550400003"
  const dir = mkdtempSync(join(tmpdir(), "router-hook-persist-"))
  let router: RunningRouter | undefined

  afterAll(async () => {
    await router?.stop()
    R.stop()
    A.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test("API entries are still there and the file's new content is in force", async () => {
    router = await startRouter(
      (d) =>
        testConfig(d, {
          sharedDomains: [SHARED],
          hooks: [{ host: "file.example.org", url: `${R.url}/file-v1` }],
          numbers: [{ number: N_FILE_OLD, host: "file.example.org" }]
        }),
      dir
    )
    expect((await router.admin("PUT", "/v1/hooks/api.example.org", { url: `${A.url}/api`, secret: apiSecret })).status).toBe(201)
    expect((await router.admin("PUT", `/v1/numbers/${encodeURIComponent(N_API)}`, { host: "api.example.org" })).status).toBe(201)
    await callReaches(router, { xToIp: SHARED, dialled: N_API }, A, "/api", "api.example.org")
    expect(await router.stop()).toBe(0)

    router = await startRouter(
      (d) =>
        testConfig(d, {
          sharedDomains: [SHARED],
          hooks: [
            { host: "file.example.org", url: `${R.url}/file-v2` },
            { host: "new.example.org", url: `${R.url}/new` }
          ],
          numbers: [{ number: N_FILE_NEW, host: "new.example.org" }]
        }),
      dir
    )

    const hooks = await listHooks(router)
    expect(hooks.map(({ host, url, source }) => ({ host, url, source }))).toEqual([
      { host: "api.example.org", url: `${A.url}/api`, source: "api" },
      { host: "file.example.org", url: `${R.url}/file-v2`, source: "file" },
      { host: "new.example.org", url: `${R.url}/new`, source: "file" }
    ])
    expect(hooks.find((h) => h.host === "api.example.org")?.hasOwnSecret).toBe(true)
    expect(await listNumbers(router)).toEqual([
      { number: N_FILE_NEW, host: "new.example.org", source: "file" },
      { number: N_API, host: "api.example.org", source: "api" }
    ])

    await callReaches(router, { xToIp: "file.example.org" }, R, "/file-v2", "file.example.org")
    await callReaches(router, { xToIp: "new.example.org" }, R, "/new", "new.example.org")
    // The API hook kept its URL and its secret (the receiver verifies with it).
    await callReaches(router, { xToIp: "api.example.org" }, A, "/api", "api.example.org")
    await callReaches(router, { xToIp: SHARED, dialled: N_API }, A, "/api", "api.example.org")
    await callReaches(router, { xToIp: SHARED, dialled: N_FILE_NEW }, R, "/new", "new.example.org")
    await callUnroutable(router, { xToIp: SHARED, dialled: N_FILE_OLD }, SHARED, [R, A])
    expect([...R.rejected, ...A.rejected]).toEqual([])
  })
})
