/**
 * Numbers as carriers and people write them, through the real router: national
 * spellings read in `defaultCountry` (and refused without one), the envelope's
 * numbers in E.164, and the checks that keep a mapping pointing at a hook.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startCapture, verifies, type Capture } from "./support/capture.ts"
import { sipParticipantEvent } from "./support/livekit.ts"
import { ADMIN_TOKEN, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const MAIN = join(import.meta.dir, "..", "src/main.ts")
const SHARED = "sip.carrier.example"
/** Generous: two shared cores, several router processes. */
const WAIT = 20_000

const secretOf = () => "whsec_" + randomBytes(32).toString("base64")
const numberPath = (number: string) => `/v1/numbers/${encodeURIComponent(number)}`

const runCli = async (args: ReadonlyArray<string>) => {
  const proc = Bun.spawn(["bun", "run", MAIN, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: "", LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "" }
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}

let rooms = 0
/** A SIP call to the shared domain, dialling `dialled` from `caller`, as LiveKit would post it. */
const callFrom = async (router: RunningRouter, caller: string, dialled: string) => {
  const room = `room-numbers-${Date.now().toString(36)}-${++rooms}`
  const event = sipParticipantEvent("participant_joined", { room, xToIp: SHARED, dialled })
  const attributes = { ...event.participant.attributes, "sip.phoneNumber": caller }
  const response = await router.post({ ...event, participant: { ...event.participant, attributes } })
  expect(response.status).toBe(200)
  return room
}

const errorOf = async (response: Response) => ({ status: response.status, error: ((await response.json()) as { error: { code: string; message: string } }).error })

describe("a router with defaultCountry: US", () => {
  const HOST = "calls.drsmith.example"
  const SECRET = secretOf()
  let router: RunningRouter
  let capture: Capture

  beforeAll(async () => {
    capture = startCapture()
    router = await startRouter({
      defaultCountry: "US",
      sharedDomains: [SHARED],
      hooks: [{ host: HOST, url: `${capture.url}/drsmith`, secret: SECRET }],
      // The file may write its numbers as the operator's customers do.
      numbers: [{ number: "(555) 123-0001", host: HOST }]
    })
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
  })

  test("the file's national number is kept in E.164", async () => {
    const listed = (await (await router.admin("GET", "/v1/numbers")).json()) as { numbers: unknown[] }
    expect(listed.numbers).toEqual([{ number: "+15551230001", host: HOST, source: "file" }])
  })

  test("a national sip.trunkPhoneNumber routes by its mapping; call.from and call.to are E.164, the event in data keeps them as sent", async () => {
    for (const [caller, dialled] of [
      ["(555) 123-0002", "5551230001"],
      ["+1 555 123 0002", "tel:+15551230001"],
      ["1-555-123-0002", "+1 (555) 123-0001"]
    ] as const) {
      const room = await callFrom(router, caller, dialled)
      const delivery = await capture.forRoom(room)
      expect(verifies(SECRET, delivery)).toBe(true)
      expect(delivery.json.tenant).toBe(HOST)
      expect(delivery.json.call).toMatchObject({ room, from: "+15551230002", to: "+15551230001", domain: SHARED })
      expect(delivery.json.data.participant.attributes["sip.trunkPhoneNumber"]).toBe(dialled)
      expect(delivery.json.data.participant.attributes["sip.phoneNumber"]).toBe(caller)
    }
  })

  test("a number that reads as none stays as sent in call.from", async () => {
    const room = await callFrom(router, "anonymous", "555 123 0001")
    const delivery = await capture.forRoom(room)
    expect(verifies(SECRET, delivery)).toBe(true)
    expect(delivery.json.call).toMatchObject({ from: "anonymous", to: "+15551230001" })
  })

  test("the API and the CLI read national numbers in the router's country; ?number= does too", async () => {
    const created = await router.admin("PUT", numberPath("(555) 123-0010"), { host: HOST })
    expect(created.status).toBe(201)
    expect(await created.json()).toEqual({ number: "+15551230010", host: HOST, source: "api" })
    expect(await (await router.admin("GET", numberPath("555.123.0010"))).json()).toEqual({ number: "+15551230010", host: HOST, source: "api" })

    const set = await runCli(["numbers", "set", "555 123 0011", HOST, "--url", router.url, "--token", ADMIN_TOKEN])
    expect(set).toEqual({ code: 0, stdout: `created +15551230011 -> ${HOST}\n`, stderr: "" })
    const rm = await runCli(["numbers", "rm", "(555) 123-0011", "--url", router.url, "--token", ADMIN_TOKEN])
    expect(rm.code).toBe(0)
    expect((await router.admin("GET", numberPath("+15551230011"))).status).toBe(404)

    const room = await callFrom(router, "(555) 123-0003", "5551230001")
    await capture.forRoom(room)
    await eventually(
      async () => {
        const page = (await (await router.admin("GET", `/v1/calls?number=${encodeURIComponent("(555) 123-0003")}`)).json()) as { items: Array<{ room: string }> }
        return page.items.some((call) => call.room === room)
      },
      WAIT,
      "the call listed by its caller's national number"
    )
  })

  test("a call to an unmapped number is logged with the number it dialled", async () => {
    const room = await callFrom(router, "+15551230002", "(555) 999-0000")
    await eventually(
      async () => router.logs.some((line) => line.msg === "no tenant for SIP event" && line.room === room),
      WAIT,
      "the unroutable warning"
    )
    expect(router.logs.find((line) => line.msg === "no tenant for SIP event" && line.room === room)).toMatchObject({ domain: SHARED, number: "+15559990000" })
  })
})

describe("mappings must name a hook; only operators hand numbers out", () => {
  const FILE_HOST = "file.numbers.example"
  let router: RunningRouter
  let capture: Capture
  let dir = ""
  const config = (hooks: Array<Record<string, unknown>>) => ({ sharedDomains: [SHARED], hooks, numbers: [] })

  beforeAll(async () => {
    capture = startCapture()
    dir = mkdtempSync(join(tmpdir(), "router-mappings-"))
    router = await startRouter(config([{ host: FILE_HOST, url: `${capture.url}/file` }]), dir)
    for (const host of ["api.numbers.example", "*.clinics.example"]) {
      expect((await router.admin("PUT", `/v1/hooks/${encodeURIComponent(host)}`, { url: `${capture.url}/api` })).status).toBe(201)
    }
  })
  afterAll(async () => {
    await router?.stop()
    capture?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  test("PUT naming a host no hook matches → 400 naming it; a host a wildcard hook matches is one", async () => {
    expect(await errorOf(await router.admin("PUT", numberPath("+15552220001"), { host: "nobody.numbers.example" }))).toEqual({
      status: 400,
      error: {
        code: "bad_request",
        message: "host: no hook matches nobody.numbers.example: add its hook first (PUT /v1/hooks/nobody.numbers.example), or map +15552220001 to a host one matches"
      }
    })
    expect((await router.admin("GET", numberPath("+15552220001"))).status).toBe(404)
    expect((await router.admin("PUT", numberPath("+15552220001"), { host: "north.clinics.example" })).status).toBe(201)
    expect((await router.admin("PUT", numberPath("+15552220002"), { host: FILE_HOST })).status).toBe(201)
  })

  test("removing the hook that is the last match of mapped numbers → 409 naming them; once they move, it goes", async () => {
    expect((await router.admin("PUT", numberPath("+15552220003"), { host: "api.numbers.example" })).status).toBe(201)
    expect(await errorOf(await router.admin("DELETE", "/v1/hooks/api.numbers.example"))).toEqual({
      status: 409,
      error: {
        code: "conflict",
        message: "api.numbers.example is the only hook for the numbers mapped to it (+15552220003): remove or move them first (DELETE or PUT /v1/numbers/{number})"
      }
    })
    expect((await router.admin("GET", "/v1/hooks/api.numbers.example")).status).toBe(200)
    expect((await router.admin("PUT", numberPath("+15552220003"), { host: FILE_HOST })).status).toBe(200)
    expect((await router.admin("DELETE", "/v1/hooks/api.numbers.example")).status).toBe(204)
  })

  test("a file edit that drops the hook an API number names is applied, and the stranded number is logged", async () => {
    writeFileSync(router.configPath, Bun.YAML.stringify(testConfig(dir, config([]))))
    await eventually(
      async () => router.logs.some((line) => line.msg === "numbers mapped to a host no hook matches: their calls are unmapped"),
      WAIT,
      "the warning about the stranded numbers"
    )
    const warning = router.logs.find((line) => line.msg === "numbers mapped to a host no hook matches: their calls are unmapped")!
    expect(warning.numbers).toBe(`+15552220002 -> ${FILE_HOST} (api), +15552220003 -> ${FILE_HOST} (api)`)
  })
})

describe("the config file's numbers, checked like the API's", () => {
  const dir = mkdtempSync(join(tmpdir(), "numbers-config-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const hook = { host: "a.example", url: "https://a.example/voice" }
  const check = (name: string, overrides: Record<string, unknown>) => {
    const path = join(dir, `${name}.yaml`)
    writeFileSync(path, Bun.YAML.stringify(testConfig(dir, overrides)))
    return runCli(["check-config", path])
  }

  test.each<[string, Record<string, unknown>, string]>([
    [
      "a national number without defaultCountry",
      { hooks: [hook], numbers: [{ number: "(555) 123-0001", host: "a.example" }] },
      'config: numbers.0.number: "(555) 123-0001" is a national number: write it with + and its country code, or set defaultCountry\n'
    ],
    [
      "a number naming a host no hook of the file matches",
      { hooks: [hook], numbers: [{ number: "+15551230001", host: "a.example" }, { number: "+15551230002", host: "b.example" }] },
      'config: numbers.1.host: no hook matches "b.example": add its hook beside the number, or map +15551230002 to a host one matches\n'
    ],
    ["a defaultCountry that is no country", { defaultCountry: "USA" }, 'config: defaultCountry: expected an ISO 3166 country code such as "US", "GB" or "DE", got "USA"\n']
  ])("%s: check-config names the key, exit 1", async (name, overrides, stderr) => {
    expect(await check(name.replace(/ /g, "-"), overrides)).toEqual({ code: 1, stdout: "", stderr })
  })

  test("with defaultCountry the same file is good, and a router refuses the bad one at start", async () => {
    const good = await check("national-gb", { defaultCountry: "GB", hooks: [hook], numbers: [{ number: "020 7946 0958", host: "a.example" }] })
    expect(good.code).toBe(0)
    await expect(startRouter({ hooks: [hook], numbers: [{ number: "+15551230001", host: "b.example" }] })).rejects.toThrow(
      'config: numbers.0.host: no hook matches "b.example"'
    )
  })
})
