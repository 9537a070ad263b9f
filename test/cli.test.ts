/**
 * The CLI (src/cli/Cli.ts): its formatters directly, then the real
 * `bun run src/main.ts ...` process against one real router and a real tenant.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Webhook } from "standardwebhooks"
import { formatCall, formatHookList, formatHookSet, formatTable, formatUnroutableDomains } from "../src/cli/Format.ts"
import { HookCreated } from "../src/domain/HookViews.ts"
import { roomEvent, sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const MAIN = join(import.meta.dir, "..", "src", "main.ts")
const WRONG_TOKEN = "not-the-admin-token-0123456789"
const HOOK_SECRET = "whsec_" + randomBytes(32).toString("base64")
const FILE_HOST = "file.cli.example"

// ---------------------------------------------------------------- formatting

describe("formatting answers", () => {
  const hook = { host: "h.example", url: "https://u", source: "api", events: null, rateLimit: null, maxAge: null, hasOwnSecret: true, headers: [], hasAuth: false, disabled: false, disabledAt: null } as const

  test("tables align columns without trailing spaces; a hook's row shows its maxAge, header names and whether it is disabled", () => {
    expect(formatTable(["a", "bb"], [["ccc", "d"]])).toBe("a    bb\nccc  d")
    expect(formatHookList([])).toBe("no hooks")
    const wild = { ...hook, host: "*.w.example", events: ["room_started", "room_finished"], rateLimit: "5/s", maxAge: "30s", headers: ["X-Api-Key", "X-Tenant"], disabled: true }
    expect(formatHookList([hook, wild])).toBe(
      [
        "host         url        source  events                      rateLimit  maxAge  headers             disabled",
        "h.example    https://u  api     all                         -          -       -                   no",
        "*.w.example  https://u  api     room_started,room_finished  5/s        30s     X-Api-Key,X-Tenant  yes"
      ].join("\n")
    )
  })

  test("a generated secret is printed once with a warning to store it; an update that kept its secret prints none", () => {
    // A created hook is what the client decodes from a 201; an update is the plain view of a 200.
    const created = formatHookSet(new HookCreated({ ...hook, secret: HOOK_SECRET }))
    expect(created).toMatch(/^created h\.example -> https:\/\/u$/m)
    expect(created).toContain(`secret: ${HOOK_SECRET}`)
    expect(created).toContain("never shows it again")
    expect(formatHookSet(hook)).toBe("updated h.example -> https://u")
    expect(formatHookSet({ ...hook, cleared: [] })).toBe("updated h.example -> https://u")
    expect(formatHookSet({ ...hook, cleared: ["maxAge", "headers"] })).toBe(
      "updated h.example -> https://u\ncleared: maxAge, headers (hooks set replaces the whole hook; hooks update h.example changes only what it is given)"
    )
  })

  test("a call: its record, then one line per timeline entry, whatever its kind", () => {
    const at = (s: number) => `2026-01-01T03:00:0${s}.000Z`
    const ofDelivery = { deliveryId: 7, eventId: "EV_1", eventType: "participant_joined" }
    const text = formatCall({
      room: "r", roomSid: "RM_r", tenant: "t.example", status: "ended", domain: "t.example", from: "+15550001111", to: "+15557654321", sipCallId: "SCL_r",
      startedAt: at(0), endedAt: at(9), durationSeconds: 9, endedBy: "participant_left", disconnectReason: null,
      routing: { rule: "wildcard", pattern: "*.example", source: "sip.h.to", reason: null },
      deliveries: { pending: 0, delivered: 1, failed: 1, expired: 1 },
      sip: null,
      timeline: [
        { kind: "event", at: at(0), eventId: "EV_1", eventType: "participant_joined", createdAt: at(0), lagMs: 12 },
        { kind: "attempt", at: at(1), ...ofDelivery, attempt: 1, status: 503, error: null, latencyMs: 4 },
        { kind: "attempt", at: at(2), ...ofDelivery, attempt: 2, status: null, error: "timeout", latencyMs: 1000 },
        { kind: "expired", at: at(3), ...ofDelivery, deliveryId: 8 },
        { kind: "disabled", at: at(4), ...ofDelivery, deliveryId: 9 }
      ]
    })
    expect(text).toMatch(/^routing: +wildcard \*\.example \(from sip\.h\.to\)$/m)
    expect(text).toMatch(/^duration: +9s$/m)
    expect(text).toMatch(/^deliveries: +1 delivered, 1 failed, 1 expired$/m)
    expect(text.split("\n\n")[1]!.split("\n")).toEqual([
      "at                        kind      type                detail",
      `${at(0)}  event     participant_joined  EV_1, lag 12ms`,
      `${at(1)}  attempt   participant_joined  delivery 7 #1: 503 in 4ms`,
      `${at(2)}  attempt   participant_joined  delivery 7 #2: timeout in 1000ms`,
      `${at(3)}  expired   participant_joined  delivery 8: older than the hook's maxAge, not sent`,
      `${at(4)}  disabled  participant_joined  delivery 9: the tenant was disabled, not sent`
    ])
  })

  test("unroutable domains: a row per domain and reason, then each hint on a line naming its domain", () => {
    const group = { domain: "calls.drsmith.net", reason: "unknown_domain", count: 3, firstSeen: "2026-01-01T00:00:00.000Z", lastSeen: "2026-01-01T01:00:00.000Z", sampleEventId: "EV_9" } as const
    expect(formatUnroutableDomains([])).toBe("no unroutable events")
    expect(formatUnroutableDomains([{ ...group, hints: ["add a hook for it"] }, { ...group, domain: null, reason: "missing_header", hints: [] }]).split("\n")).toEqual([
      "lastSeen                  reason          domain             count  firstSeen                 sampleEventId",
      "2026-01-01T01:00:00.000Z  unknown_domain  calls.drsmith.net  3      2026-01-01T00:00:00.000Z  EV_9",
      "2026-01-01T01:00:00.000Z  missing_header  -                  3      2026-01-01T00:00:00.000Z  EV_9",
      "calls.drsmith.net: add a hook for it"
    ])
  })
})

// ---------------------------------------------------------------- the real process

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI to completion with nothing inherited from this shell's router settings. */
const runCli = async (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> => {
  const proc = Bun.spawn(["bun", "run", MAIN, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: "", LIVEKIT_API_KEY: "", LIVEKIT_API_SECRET: "", ...env }
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  // Whatever happened, no token may be echoed back.
  for (const token of [ADMIN_TOKEN, WRONG_TOKEN]) expect(stdout + stderr).not.toContain(token)
  return { code, stdout, stderr }
}

const closedPort = () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() })
  const port = server.port!
  server.stop(true)
  return port
}

describe("the CLI against a running router", () => {
  let router: RunningRouter
  let receiver: Receiver
  /** Flags naming this router, for every command but `hooks set`. */
  let remote: string[]
  /** The same for `hooks set`, where --url is the hook's. */
  let remoteForSet: string[]

  beforeAll(async () => {
    receiver = startReceiver(HOOK_SECRET)
    router = await startRouter({
      hooks: [{ host: FILE_HOST, url: "https://tenant.cli.example/voice" }],
      numbers: [{ number: "+15550000001", host: FILE_HOST }],
      // A tenant that keeps failing is disabled within a second or so (for hooks enable).
      delivery: { maxAttempts: 100, disableAfter: "1s", circuitBreaker: { failureThreshold: 1000 } }
    })
    remote = ["--url", router.url, "--token", ADMIN_TOKEN]
    remoteForSet = ["--router-url", router.url, "--token", ADMIN_TOKEN]
  })
  afterAll(async () => {
    await router?.stop()
    receiver?.stop()
  })

  test("hooks set creates with a generated secret shown once, then updates; get and list agree", async () => {
    const host = "gen.cli.example"
    const created = await runCli(["hooks", "set", host, "--url", `${receiver.url}/gen`, ...remoteForSet])
    expect(created.code).toBe(0)
    expect(created.stdout).toContain(`created ${host} -> ${receiver.url}/gen`)
    const secrets = created.stdout.match(/whsec_[A-Za-z0-9+/=]+/g) ?? []
    expect(secrets).toHaveLength(1)
    expect(created.stdout).toMatch(/store this secret now/i)

    const updated = await runCli([
      ...["hooks", "set", host, "--url", `${receiver.url}/gen2`, "--secret", HOOK_SECRET],
      ...["--events", "participant_joined,room_finished", "--rate-limit", "50/s", ...remoteForSet]
    ])
    expect(updated.code).toBe(0)
    expect(updated.stdout.trim()).toBe(`updated ${host} -> ${receiver.url}/gen2`)

    const got = await runCli(["hooks", "get", host, ...remote])
    expect(got.code).toBe(0)
    expect(got.stdout).toMatch(new RegExp(`^url: +${receiver.url}/gen2$`, "m"))
    expect(got.stdout).toMatch(/^source: +api$/m)
    expect(got.stdout).toMatch(/^events: +participant_joined,room_finished$/m)
    expect(got.stdout).toMatch(/^rateLimit: +50\/s$/m)
    expect(got.stdout).toMatch(/^own secret: +yes$/m)
    expect(got.stdout).not.toContain("whsec_")

    const listed = await runCli(["hooks", "list", ...remote])
    expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: "" })
    const [header, ...rows] = listed.stdout.trim().split("\n").map((line) => line.split(/\s+/))
    expect(header).toEqual(["host", "url", "source", "events", "rateLimit", "maxAge", "headers", "disabled"])
    expect(rows).toContainEqual([FILE_HOST, "https://tenant.cli.example/voice", "file", "all", "-", "-", "-", "no"])
    expect(rows).toContainEqual([host, `${receiver.url}/gen2`, "api", "participant_joined,room_finished", "50/s", "-", "-", "no"])
    expect(listed.stdout).not.toContain("whsec_")

    const removed = await runCli(["hooks", "rm", host, ...remote])
    expect(removed).toEqual({ code: 0, stdout: `removed ${host}\n`, stderr: "" })
    expect((await router.admin("GET", `/v1/hooks/${host}`)).status).toBe(404)
  })

  test("hooks update changes only what it is given and says what --clear removed; hooks set says what it cleared", async () => {
    const host = "update.cli.example"
    const apiKey = `key-${randomBytes(8).toString("hex")}`
    const created = await router.admin("PUT", `/v1/hooks/${host}`, {
      url: `${receiver.url}/upd-old`,
      secret: HOOK_SECRET,
      events: ["participant_joined"],
      rateLimit: "50/s",
      maxAge: "10m",
      headers: { "X-Api-Key": apiKey },
      auth: { bearer: "cli-bearer-token" }
    })
    expect(created.status).toBe(201)

    const moved = await runCli(["hooks", "update", host, "--url", `${receiver.url}/upd-new`, ...remoteForSet])
    expect(moved).toEqual({ code: 0, stdout: `updated ${host} -> ${receiver.url}/upd-new\n`, stderr: "" })
    expect(await (await router.admin("GET", `/v1/hooks/${host}`)).json()).toMatchObject({
      url: `${receiver.url}/upd-new`,
      events: ["participant_joined"],
      rateLimit: "50/s",
      maxAge: "10m",
      headers: ["X-Api-Key"],
      hasAuth: true,
      hasOwnSecret: true
    })
    // The next call goes to the new URL, signed with the same secret (the receiver verifies it), with the headers and auth.
    const room = `cli-update-${Date.now().toString(36)}`
    expect((await router.post(sipParticipantEvent("participant_joined", { room, xToIp: host }))).status).toBe(200)
    await receiver.waitFor((received) => received.some((r) => r.json?.call?.room === room))
    const delivered = receiver.received.find((r) => r.json?.call?.room === room)!
    expect(delivered.path).toBe("/upd-new")
    expect(delivered.headers["x-api-key"]).toBe(apiKey)
    expect(delivered.headers["authorization"]).toBe("Bearer cli-bearer-token")

    const cleared = await runCli(["hooks", "update", host, "--clear", "maxAge,headers", "--rate-limit", "600/m", ...remoteForSet])
    expect(cleared).toEqual({ code: 0, stdout: `updated ${host} -> ${receiver.url}/upd-new\ncleared: maxAge, headers\n`, stderr: "" })
    const listed = await runCli(["hooks", "list", ...remote])
    const [header, ...rows] = listed.stdout.trim().split("\n").map((line) => line.split(/\s+/))
    expect(header).toEqual(["host", "url", "source", "events", "rateLimit", "maxAge", "headers", "disabled"])
    expect(rows).toContainEqual([host, `${receiver.url}/upd-new`, "api", "participant_joined", "600/m", "-", "-", "no"])

    // set replaces the whole hook: what it was not given goes, and it says so.
    const set = await runCli(["hooks", "set", host, "--url", `${receiver.url}/upd-set`, ...remoteForSet])
    expect(set.code).toBe(0)
    expect(set.stdout).toBe(
      `updated ${host} -> ${receiver.url}/upd-set\ncleared: events, rateLimit, auth (hooks set replaces the whole hook; hooks update ${host} changes only what it is given)\n`
    )

    // Refusals: a file hook (409, exit 1); nothing to change, or a field both given and cleared (usage, exit 2).
    const file = await runCli(["hooks", "update", FILE_HOST, "--max-age", "30s", ...remoteForSet])
    expect({ code: file.code, stdout: file.stdout }).toEqual({ code: 1, stdout: "" })
    expect(file.stderr.trim()).toMatch(new RegExp(`^error: 409 conflict: .*${FILE_HOST} is defined in the config file`))
    const unknown = await runCli(["hooks", "update", "nobody.cli.example", "--max-age", "30s", ...remoteForSet])
    expect({ code: unknown.code, stderr: unknown.stderr.trim() }).toEqual({ code: 1, stderr: "error: 404 not_found: no hook for nobody.cli.example" })
    const nothing = await runCli(["hooks", "update", host, ...remoteForSet])
    expect({ code: nothing.code, stdout: nothing.stdout }).toEqual({ code: 2, stdout: "" })
    expect(nothing.stderr).toStartWith("error: hooks update needs a change")
    const both = await runCli(["hooks", "update", host, "--events", "room_finished", "--clear", "events", ...remoteForSet])
    expect(both.code).toBe(2)
    expect(both.stderr).toStartWith("error: hooks update: events both given and cleared")
    expect(((await (await router.admin("GET", `/v1/hooks/${host}`)).json()) as { url: string }).url).toBe(`${receiver.url}/upd-set`)
  })

  test("hooks list shows a disabled hook; hooks enable enables it, and says how to resend what failed meanwhile", async () => {
    const host = "dead.hooks.cli.example"
    expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: `http://127.0.0.1:${closedPort()}/voice` })).status).toBe(201)
    expect((await router.post(sipParticipantEvent("participant_joined", { room: `cli-dead-${Date.now().toString(36)}`, xToIp: host }))).status).toBe(200)
    await eventually(async () => ((await (await router.admin("GET", `/v1/hooks/${host}`)).json()) as { disabled: boolean }).disabled, 15_000, "the hook to be disabled")
    const rowOf = async () => (await runCli(["hooks", "list", ...remote])).stdout.split("\n").find((line) => line.startsWith(`${host} `))?.split(/\s+/).at(-1)
    expect(await rowOf()).toBe("yes")

    const enabled = await runCli(["hooks", "enable", host, ...remote])
    expect(enabled).toEqual({
      code: 0,
      stdout: `enabled ${host}: new deliveries flow again.\nThose that failed while it was disabled are resent by: tenants recover ${host} --since TIME\n`,
      stderr: ""
    })
    expect(await rowOf()).toBe("no")
    const unknown = await runCli(["hooks", "enable", "nobody.cli.example", ...remote])
    expect({ code: unknown.code, stderr: unknown.stderr.trim() }).toEqual({ code: 1, stderr: "error: 404 not_found: no hook for nobody.cli.example" })
  })

  test("a wildcard host survives the trip through the path", async () => {
    const set = await runCli(["hooks", "set", "*.wild.cli.example", "--url", "https://wild.cli.example/", ...remoteForSet])
    expect(set.stdout).toContain("created *.wild.cli.example")
    expect((await router.admin("GET", "/v1/hooks/%2A.wild.cli.example")).status).toBe(200)
    expect((await runCli(["hooks", "rm", "*.wild.cli.example", ...remote])).code).toBe(0)
    expect((await router.admin("GET", "/v1/hooks/%2A.wild.cli.example")).status).toBe(404)
  })

  /** Setup goes straight to the API: only the command under test runs as a process. */
  const putHook = async (host: string, url: string) =>
    expect((await router.admin("PUT", `/v1/hooks/${host}`, { url, secret: HOOK_SECRET })).status).toBeLessThan(300)

  test("hooks test reaches a real tenant; a closed port is reported and exits 1", async () => {
    const host = "test.cli.example"
    await putHook(host, `${receiver.url}/test`)
    const delivered = await runCli(["hooks", "test", host, ...remote])
    expect(delivered.code).toBe(0)
    expect(delivered.stdout).toMatch(/^delivered: +yes$/m)
    expect(delivered.stdout).toMatch(/^status: +200$/m)
    expect(delivered.stdout).toMatch(/^latency: +\d+ms$/m)
    await receiver.waitFor((received) => received.some((r) => r.path === "/test" && r.json.type === "router.test"))

    const deadUrl = `http://127.0.0.1:${closedPort()}/voice`
    await putHook(host, deadUrl)
    const failed = await runCli(["hooks", "test", host, ...remote])
    expect(failed.code).toBe(1)
    expect(failed.stdout).toMatch(/^delivered: +no$/m)
    expect(failed.stdout).toMatch(/^status: +-$/m)
    expect(failed.stdout).toMatch(/^error: +\S/m)
  })

  test("hooks rotate-secret prints the new secret and how long the old one signs", async () => {
    const host = "rotate.cli.example"
    await putHook(host, `${receiver.url}/rotate`)
    const rotated = await runCli(["hooks", "rotate-secret", host, ...remote])
    expect(rotated.code).toBe(0)
    const newSecret = rotated.stdout.match(/whsec_[A-Za-z0-9+/=]+/)?.[0]
    expect(newSecret).toBeDefined()
    expect(newSecret).not.toBe(HOOK_SECRET)
    const until = rotated.stdout.match(/until (\S+)\.$/m)?.[1]
    expect(Date.parse(until ?? "")).toBeGreaterThan(Date.now())

    // The receiver still verifies with the old secret; the same delivery carries the new one's signature too.
    expect((await runCli(["hooks", "test", host, ...remote])).code).toBe(0)
    await receiver.waitFor((received) => received.some((r) => r.path === "/rotate"))
    const delivery = receiver.received.find((r) => r.path === "/rotate")!
    expect(() => new Webhook(newSecret!).verify(delivery.body, delivery.headers)).not.toThrow()
  })

  test("numbers set, list and rm; a host no hook matches, or a national number without the router's defaultCountry, is the router's 400", async () => {
    const unhooked = await runCli(["numbers", "set", "+1 555 123 0000", "num.cli.example", ...remote])
    expect(unhooked).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: 400 bad_request: host: no hook matches num.cli.example: add its hook first (PUT /v1/hooks/num.cli.example), or map +15551230000 to a host one matches\n"
    })
    const national = await runCli(["numbers", "set", "(555) 123-0000", FILE_HOST, ...remote])
    expect(national.code).toBe(1)
    expect(national.stderr).toBe('error: 400 bad_request: number: "(555) 123-0000" is a national number: write it with + and its country code, or set defaultCountry\n')
    for (const host of ["num.cli.example", "num2.cli.example"]) {
      expect((await router.admin("PUT", `/v1/hooks/${host}`, { url: "https://tenant.cli.example/voice" })).status).toBe(201)
    }

    const created = await runCli(["numbers", "set", "+15551230000", "num.cli.example", ...remote])
    expect(created).toEqual({ code: 0, stdout: "created +15551230000 -> num.cli.example\n", stderr: "" })
    const updated = await runCli(["numbers", "set", "+15551230000", "num2.cli.example", ...remote])
    expect(updated.stdout).toBe("updated +15551230000 -> num2.cli.example\n")
    const listed = await runCli(["numbers", "list", ...remote])
    expect(listed.code).toBe(0)
    expect(listed.stdout).toMatch(/^number +host +source$/m)
    expect(listed.stdout).toMatch(/^\+15551230000 +num2\.cli\.example +api$/m)
    expect(listed.stdout).toMatch(new RegExp(`^\\+15550000001 +${FILE_HOST} +file$`, "m"))
    expect((await runCli(["numbers", "rm", "+15551230000", ...remote])).stdout).toBe("removed +15551230000\n")
    const { numbers } = (await (await router.admin("GET", "/v1/numbers")).json()) as { numbers: Array<{ number: string }> }
    expect(numbers.map((entry) => entry.number)).toEqual(["+15550000001"])
    for (const host of ["num.cli.example", "num2.cli.example"]) expect((await router.admin("DELETE", `/v1/hooks/${host}`)).status).toBe(204)
  })

  test("the router's errors are printed as status, code and message, exit 1", async () => {
    const conflict = await runCli(["hooks", "set", FILE_HOST, "--url", "https://elsewhere.example/", ...remoteForSet])
    expect(conflict.code).toBe(1)
    expect(conflict.stdout).toBe("")
    expect(conflict.stderr.trim()).toMatch(new RegExp(`^error: 409 conflict: .*${FILE_HOST} is defined in the config file`))

    const unauthorized = await runCli(["hooks", "list", "--url", router.url, "--token", WRONG_TOKEN])
    expect(unauthorized.code).toBe(1)
    expect(unauthorized.stderr.trim()).toBe("error: 401 unauthorized: a valid admin bearer token is required")
  })

  test("ROUTER_URL and ROUTER_ADMIN_TOKEN work like the flags", async () => {
    const { code, stdout } = await runCli(["hooks", "get", FILE_HOST], { ROUTER_URL: router.url, ROUTER_ADMIN_TOKEN: ADMIN_TOKEN })
    expect(code).toBe(0)
    expect(stdout).toMatch(/^source: +file$/m)
    expect(stdout).toMatch(/^own secret: +no/m)
  })

  test("explain prints the decision, a line per attribute and the hints; exit 0 when routed, 1 when not", async () => {
    const routed = await runCli(["explain", "--x-to-ip", FILE_HOST, "--number", "+15550000001"], { ROUTER_URL: router.url, ROUTER_ADMIN_TOKEN: ADMIN_TOKEN })
    expect({ code: routed.code, stderr: routed.stderr }).toEqual({ code: 0, stderr: "" })
    expect(routed.stdout).toMatch(/^routed: +yes$/m)
    expect(routed.stdout).toMatch(new RegExp(`^tenant: +${FILE_HOST}$`, "m"))
    expect(routed.stdout).toMatch(/^rule: +exact$/m)
    expect(routed.stdout).toMatch(new RegExp(`^sip\\.h\\.x-to-ip +"${FILE_HOST}" +${FILE_HOST} +matched$`, "m"))
    expect(routed.stdout).toMatch(/^sip\.h\.to +- +- +skipped$/m)
    expect(routed.stdout).not.toContain("hints:")

    const missed = await runCli(["explain", "--to", "<sip:+15550000001@file.cli.exampel>", "--number", "+15550000001", ...remote])
    expect({ code: missed.code, stderr: missed.stderr }).toEqual({ code: 1, stderr: "" })
    expect(missed.stdout).toMatch(/^routed: +no \(unknown_domain\)$/m)
    expect(missed.stdout).toMatch(/^tenant: +-$/m)
    expect(missed.stdout).toMatch(/^sip\.h\.to +"<sip:\+15550000001@file\.cli\.exampel>" +file\.cli\.exampel +no_hook$/m)
    expect(missed.stdout).toContain(`hints:\n- "file.cli.exampel" is 2 edits from the hook ${FILE_HOST}:`)
    expect(missed.stdout.match(/^- /gm)).toHaveLength(1)
  })

  test("a router that is not there is named, exit 1", async () => {
    const url = `http://127.0.0.1:${closedPort()}`
    const { code, stdout, stderr } = await runCli(["numbers", "list", "--url", url, "--token", ADMIN_TOKEN])
    expect(code).toBe(1)
    expect(stdout).toBe("")
    expect(stderr).toContain(`cannot reach the router at ${url}`)
  })
})

describe("check-config and usage, without a router", () => {
  const dir = mkdtempSync(join(tmpdir(), "cli-config-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const configFile = (name: string, doc: Record<string, unknown>) => {
    const path = join(dir, name)
    writeFileSync(path, Bun.YAML.stringify(doc))
    return path
  }
  const hook = (host: string) => ({ host, url: `https://${host}/voice` })

  test("a good file: ok with its counts, exit 0", async () => {
    const doc = testConfig(dir, { hooks: [hook("a.example"), hook("b.example")], numbers: [{ number: "+15550000001", host: "a.example" }] })
    const path = configFile("good.yaml", doc)
    expect(await runCli(["check-config", path])).toEqual({ code: 0, stdout: `ok: ${path} (2 hooks, 1 number)\n`, stderr: "" })
  })

  const bad: Array<[string, Record<string, unknown> | undefined, string]> = [
    ["bad duration", testConfig(dir, { delivery: { timeout: "soon" } }), "config: delivery.timeout: "],
    ["duplicate host", testConfig(dir, { hooks: [hook("a.example"), hook("A.example")] }), `config: hooks.1.host: duplicate host`],
    ["unknown key", { ...testConfig(dir), hookz: [] }, "config: hookz: "],
    ["missing file", undefined, "config: (file): cannot read "]
  ]
  for (const [name, doc, message] of bad) {
    test(`${name}: names the key, exit 1`, async () => {
      const path = doc ? configFile(`${name.replace(/ /g, "-")}.yaml`, doc) : join(dir, "nope.yaml")
      const { code, stdout, stderr } = await runCli(["check-config", path])
      expect({ code, stdout }).toEqual({ code: 1, stdout: "" })
      expect(stderr.startsWith(message)).toBe(true)
      expect(stderr.split("\n").filter(Boolean)).toHaveLength(1)
    })
  }

  test("bad usage prints the usage on stderr, exit 2; help prints it on stdout, exit 0", async () => {
    // The parser's tests cover every message; these check the process: stderr, usage and exit 2.
    for (const args of [["hooks", "frob"], ["hooks", "get"], ["numbers", "list", "--bogus", "1"]]) {
      const { code, stdout, stderr } = await runCli(args, { ROUTER_ADMIN_TOKEN: ADMIN_TOKEN })
      expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: "" })
      expect(stderr).toMatch(/^error: /)
      expect(stderr).toContain("usage: bun run src/main.ts COMMAND")
    }
    const help = await runCli(["--help"])
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: "" })
    expect(help.stdout).toContain("hooks set HOST --url URL")
    expect(help.stdout).toContain("check-config FILE")
  })
})

describe("every command's --help, completions and typed validation, without a router", () => {
  const COMMANDS = [
    [],
    ["serve"],
    ["help"],
    ["check-config"],
    ...["list", "get", "set", "update", "rm", "test", "rotate-secret", "enable"].map((verb) => ["hooks", verb]),
    ...["list", "set", "rm"].map((verb) => ["numbers", verb]),
    ...["list", "get", "retry"].map((verb) => ["deliveries", verb]),
    ["tenants", "recover"],
    ["unroutable", "list"],
    ["explain"],
    ["unroutable", "domains"],
    ["calls", "list"],
    ["calls", "show"],
    ...["create", "list", "revoke"].map((verb) => ["tokens", verb]),
    ["listen"]
  ]

  test(
    "--help on every command: its usage, description and options on stdout, exit 0",
    async () => {
      const runs = await Promise.all(COMMANDS.map((command) => runCli([...command, "--help"])))
      runs.forEach(({ code, stdout, stderr }, i) => {
        const command = COMMANDS[i]!
        expect({ command, code, stderr }).toEqual({ command, code: 0, stderr: "" })
        for (const section of ["USAGE", "DESCRIPTION"]) expect(stdout).toContain(section)
        if (command.length > 0) expect(stdout).toContain(`$ ${command.at(-1)}`)
      })
      expect(runs[0]!.stdout).toContain("usage: bun run src/main.ts COMMAND")
      expect(runs[COMMANDS.findIndex((c) => c.join(" ") === "hooks set")]!.stdout).toMatch(/--rate-limit/)
      expect(runs[COMMANDS.findIndex((c) => c.join(" ") === "hooks update")]!.stdout).toMatch(/--clear/)
    },
    // A process per command, all at once, on two shared cores.
    90_000
  )

  test("--completions bash prints a completion script for the commands", async () => {
    const { code, stdout, stderr } = await runCli(["--completions", "bash"])
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
    expect(stdout).toContain("complete -F")
    for (const word of ["hooks", "numbers", "deliveries", "tenants", "unroutable", "rotate-secret", "calls"]) expect(stdout).toContain(word)
  })

  test(
    "values are checked before anything is sent: a bad one is a usage error naming it, exit 2",
    async () => {
      const cases: Array<[string[], string]> = [
        [["hooks", "get", "bad..host"], "error: HOST: expected a host name"],
        [["hooks", "set", "a.example", "--url", "ftp://t.example/"], "error: --url: expected an http or https URL"],
        [["hooks", "set", "a.example", "--url", "https://t.example/", "--events", "participant_joined,nope"], "error: --events: expected a LiveKit event name"],
        [["hooks", "set", "a.example", "--url", "https://t.example/", "--rate-limit", "fast"], "error: --rate-limit: expected a rate"],
        [["hooks", "update", "a.example", "--clear", "maxAge,url"], 'error: --clear: expected one of events, rateLimit, maxAge, headers or auth, got "url"'],
        [["hooks", "update", "a.example", "--url", "ftp://t.example/"], "error: --url: expected an http or https URL"],
        [["deliveries", "list", "--limit", "0"], "error: --limit: expected a whole number from 1 to 1000"],
        [["deliveries", "get", "0x10"], "error: ID: expected a whole number"],
        [["tenants", "recover", "a.example", "--since", "2026-02-30"], "error: --since: expected an ISO-8601 time"],
        [["tenants", "recover", "a.example"], "error: "],
        [["deliveries", "list", "--status", "lost"], "error: "],
        [["deliveries", "list", "--event-type", "nope"], "error: "],
        [["deliveries", "list", "--domain", "not a domain"], "error: --domain: expected a domain"],
        [["calls", "list", "--until", "2026-02-30"], "error: --until: expected an ISO-8601 time"],
        [["calls", "list", "--cursor", "!!"], "error: --cursor: expected a nextCursor"],
        [["calls", "list", "--status", "lost"], "error: "],
        [["calls", "show"], "error: "],
        [["hooks", "list", "--url", "router:8080"], "error: the router URL: must be http or https"],
        [["hooks", "list", "--url", "not a url"], "error: the router URL: not a URL"],
        [["listen", "--tenant", "a.example", "--forward-to", "ftp://app.example/"], "error: --forward-to: expected an http or https URL"],
        [["listen", "--tenant", "bad..host", "--forward-to", "http://127.0.0.1:3000/"], "error: --tenant: "],
        [["listen", "--forward-to", "http://127.0.0.1:3000/"], "error: "]
      ]
      const runs = await Promise.all(cases.map(([args]) => runCli(args, { ROUTER_ADMIN_TOKEN: ADMIN_TOKEN })))
      runs.forEach(({ code, stdout, stderr }, i) => {
        const [args, message] = cases[i]!
        expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: "" })
        expect(stderr.startsWith(message)).toBe(true)
        expect(stderr).toContain("usage: bun run src/main.ts COMMAND")
      })
      // Without a token anywhere (blank counts as unset) an admin command cannot run.
      expect((await runCli(["hooks", "list"])).code).toBe(2)
    },
    60_000
  )
})

describe("deliveries, tenants and unroutable against a running router", () => {
  const DEAD_HOST = "dead.cli.example"
  let router: RunningRouter
  let remote: string[]

  beforeAll(async () => {
    router = await startRouter({
      hooks: [{ host: DEAD_HOST, url: `http://127.0.0.1:${closedPort()}/voice` }],
      // The retried delivery fails again at once, rather than waiting for the tenant's circuit to close.
      delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { failureThreshold: 100 } }
    })
    remote = ["--url", router.url, "--token", ADMIN_TOKEN]
  })
  afterAll(async () => {
    await router?.stop()
  })

  const failedIds = async () => {
    const page = (await (await router.admin("GET", `/v1/deliveries?status=failed&tenant=${DEAD_HOST}`)).json()) as { items: Array<{ id: number }> }
    return page.items.map((item) => item.id)
  }

  test(
    "a failed delivery is listed, shown with its attempts, retried and recovered; an unroutable event is listed",
    async () => {
      expect((await router.post(sipParticipantEvent("participant_joined", { room: "cli-dead-room", xToIp: DEAD_HOST }))).status).toBe(200)
      expect((await router.post(sipParticipantEvent("participant_joined", { room: "cli-lost-room", xToIp: "nobody.cli.example" }))).status).toBe(200)
      await eventually(async () => (await failedIds()).length === 1, 15_000, "the delivery to fail")
      const [id] = await failedIds()

      const listed = await runCli(["deliveries", "list", "--status", "failed", "--tenant", DEAD_HOST, "--limit", "10", ...remote])
      expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: "" })
      expect(listed.stdout).toMatch(/^id +status +tenant +type +attempts +lastStatus +createdAt$/m)
      expect(listed.stdout).toMatch(new RegExp(`^${id} +failed +${DEAD_HOST} +participant_joined +3 `, "m"))

      const shown = await runCli(["deliveries", "get", String(id), ...remote])
      expect(shown.code).toBe(0)
      expect(shown.stdout).toMatch(/^status: +failed$/m)
      expect(shown.stdout).toMatch(/^attempt +at +status +latency$/m)
      expect(shown.stdout.match(/^[123] +\d{4}-/gm)).toHaveLength(3)

      expect(await runCli(["deliveries", "retry", String(id), ...remote])).toEqual({
        code: 0,
        stdout: `requeued delivery ${id} (${DEAD_HOST}, participant_joined)\n`,
        stderr: ""
      })
      await eventually(async () => (await failedIds()).length === 1, 15_000, "the retried delivery to fail again")
      const recovered = await runCli(["tenants", "recover", DEAD_HOST, "--since", "2020-01-01", ...remote])
      expect(recovered).toEqual({ code: 0, stdout: `requeued 1 failed deliveries of ${DEAD_HOST} created since 2020-01-01T00:00:00.000Z\n`, stderr: "" })

      const missing = await runCli(["deliveries", "get", "999999", ...remote])
      expect({ code: missing.code, stdout: missing.stdout, stderr: missing.stderr.trim() }).toEqual({ code: 1, stdout: "", stderr: "error: 404 not_found: no delivery 999999" })

      const unroutable = await runCli(["unroutable", "list", "--limit", "5", ...remote])
      expect(unroutable.code).toBe(0)
      expect(unroutable.stdout).toMatch(/^at +reason +domain +type +dialled +eventId$/m)
      expect(unroutable.stdout).toMatch(/ unknown_domain +nobody\.cli\.example +participant_joined /)
    },
    60_000
  )
})

describe("calls, call filters and unroutable domains against a running router", () => {
  const HOST = "calls.cli.example"
  let router: RunningRouter
  let receiver: Receiver
  let remote: string[]
  const room = `cli-call-${Date.now().toString(36)}`
  const lostRoom = `cli-lost-${Date.now().toString(36)}`
  const startedAt = Date.now() - 300_000
  const join = { ...sipParticipantEvent("participant_joined", { room, xToIp: HOST }), createdAt: String(Math.floor(startedAt / 1000)) }
  const left = { ...sipParticipantEvent("participant_left", { room, xToIp: HOST }), createdAt: String(Math.floor(startedAt / 1000) + 95) }

  beforeAll(async () => {
    receiver = startReceiver(HOOK_SECRET)
    router = await startRouter({ hooks: [{ host: HOST, url: `${receiver.url}/voice`, secret: HOOK_SECRET }] })
    remote = ["--url", router.url, "--token", ADMIN_TOKEN]
    for (const event of [join, left, roomEvent("room_finished", room)]) expect((await router.post(event)).status).toBe(200)
    expect((await router.post(sipParticipantEvent("participant_joined", { room: lostRoom, xToIp: "nobody.cli.example" }))).status).toBe(200)
    await receiver.waitFor((received) => received.length === 3)
  })
  afterAll(async () => {
    await router?.stop()
    receiver?.stop()
  })

  const ok = async (args: ReadonlyArray<string>) => {
    const run = await runCli([...args, ...remote])
    expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: "" })
    return run.stdout
  }

  test(
    "calls list: filters as flags, a page at a time; calls show: the record, then the timeline a line per entry",
    async () => {
      await eventually(async () => (await ok(["calls", "list", "--tenant", HOST])).includes("3 delivered"), 10_000, "the call's deliveries")
      const listed = await ok(["calls", "list", "--tenant", HOST])
      expect(listed).toMatch(/^startedAt +status +tenant +from +to +duration +deliveries +room$/m)
      expect(listed).toMatch(new RegExp(`^\\S+ +ended +${HOST} +\\+15550001111 +\\+15557654321 +95s +3 delivered +${room}$`, "m"))
      expect(listed).not.toContain(lostRoom)

      const unrouted = await ok(["calls", "list", "--status", "unrouted", "--number", "+1 (555) 765-4321", "--domain", "Nobody.CLI.example"])
      expect(unrouted).toMatch(new RegExp(`^\\S+ +unrouted \\(unknown_domain\\) +- +.* +- +none +${lostRoom}$`, "m"))

      const first = await ok(["calls", "list", "--limit", "1"])
      const cursor = /^more: --cursor (\S+)$/m.exec(first)?.[1]
      expect(cursor).toBeDefined()
      const second = await ok(["calls", "list", "--limit", "1", "--cursor", cursor!])
      expect(second).not.toContain("more:")
      expect([first, second].filter((page) => page.includes(room))).toHaveLength(1)
      expect([first, second].filter((page) => page.includes(lostRoom))).toHaveLength(1)
      expect(await ok(["calls", "list", "--since", "2000-01-01", "--until", "2000-01-02"])).toBe("no calls\n")

      const shown = await ok(["calls", "show", room])
      for (const line of [`room: +${room}`, "status: +ended", `tenant: +${HOST}`, `routing: +exact ${HOST} \\(from sip\\.h\\.x-to-ip\\)`, "duration: +95s", "endedBy: +participant_left", "deliveries: +3 delivered"]) {
        expect(shown).toMatch(new RegExp(`^${line}$`, "m"))
      }
      expect(shown).toMatch(/^at +kind +type +detail$/m)
      expect(shown).toMatch(new RegExp(`^\\S+ +event +participant_joined +${join.id}, lag \\d+ms$`, "m"))
      expect(shown).toMatch(/^\S+ +attempt +participant_left +delivery \d+ #1: 200 in \d+ms$/m)
      expect(shown.split("\n\n")[1]!.trim().split("\n")).toHaveLength(1 + 3 + 3)

      const missing = await runCli(["calls", "show", "no-such-room", ...remote])
      expect({ code: missing.code, stdout: missing.stdout, stderr: missing.stderr.trim() }).toEqual({ code: 1, stdout: "", stderr: 'error: 404 not_found: no call "no-such-room"' })
    },
    60_000
  )

  test(
    "deliveries list by room, event type, event id and domain; unroutable domains",
    async () => {
      const byRoom = await ok(["deliveries", "list", "--room", room, "--event-type", "participant_left"])
      expect(byRoom.trim().split("\n")).toHaveLength(2)
      expect(byRoom).toMatch(new RegExp(`^\\d+ +delivered +${HOST} +participant_left +1 +200 `, "m"))
      const byId = await ok(["deliveries", "list", "--domain", HOST.toUpperCase(), "--event-id", join.id])
      expect(byId).toMatch(new RegExp(`^\\d+ +delivered +${HOST} +participant_joined `, "m"))
      expect(byId.trim().split("\n")).toHaveLength(2)
      expect(await ok(["deliveries", "list", "--room", lostRoom])).toBe("no deliveries\n")

      const domains = await ok(["unroutable", "domains"])
      expect(domains).toMatch(/^lastSeen +reason +domain +count +firstSeen +sampleEventId$/m)
      expect(domains).toMatch(/^\S+ +unknown_domain +nobody\.cli\.example +1 +\S+ +EV_\S+$/m)
    },
    60_000
  )
})
