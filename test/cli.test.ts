/**
 * The CLI (src/cli/Cli.ts): its parser and formatters directly, then the real
 * `bun run src/main.ts ...` process against one real router and a real tenant.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Either } from "effect"
import { Webhook } from "standardwebhooks"
import {
  DEFAULT_ROUTER_URL,
  formatHookList,
  formatHookSet,
  formatTable,
  isCliInvocation,
  parseArgs,
  pathSegment,
  type Command
} from "../src/cli/Cli.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

const MAIN = join(import.meta.dir, "..", "src", "main.ts")
const WRONG_TOKEN = "not-the-admin-token-0123456789"
const HOOK_SECRET = "whsec_" + randomBytes(32).toString("base64")
const FILE_HOST = "file.cli.example"

// ---------------------------------------------------------------- parsing and formatting

describe("parsing arguments", () => {
  const env = { ROUTER_ADMIN_TOKEN: ADMIN_TOKEN }
  const parsed = (args: string[], fromEnv: Record<string, string> = env): Command => Either.getOrThrow(parseArgs(args, fromEnv))
  const usageError = (args: string[], fromEnv: Record<string, string> = env) => {
    const result = parseArgs(args, fromEnv)
    if (Either.isRight(result)) throw new Error(`expected a usage error for ${args.join(" ")}`)
    return result.left.message
  }

  test("admin commands, with the router from env defaults", () => {
    expect(parsed(["hooks", "list"])).toEqual({
      _tag: "Admin",
      action: { _tag: "ListHooks" },
      connection: { url: DEFAULT_ROUTER_URL, token: ADMIN_TOKEN }
    })
    expect(parsed(["hooks", "rotate-secret", "a.example"])).toMatchObject({ action: { _tag: "RotateSecret", host: "a.example" } })
    expect(parsed(["numbers", "set", "+15551230000", "a.example"])).toMatchObject({
      action: { _tag: "SetNumber", number: "+15551230000", host: "a.example" }
    })
    expect(parsed(["check-config", "router.yaml"])).toEqual({ _tag: "CheckConfig", file: "router.yaml" })
  })

  test("hooks set: every field, in both option spellings", () => {
    const command = parsed([
      ...["hooks", "set", "a.example", "--url=https://t.example/v", "--secret", HOOK_SECRET],
      ...["--events", "participant_joined, room_finished", "--rate-limit", "50/s"]
    ])
    expect(command).toMatchObject({
      action: {
        _tag: "SetHook",
        host: "a.example",
        changes: { url: "https://t.example/v", secret: HOOK_SECRET, events: ["participant_joined", "room_finished"], rateLimit: "50/s" }
      },
      connection: { url: DEFAULT_ROUTER_URL }
    })
    // Fields not given are absent, not undefined, so the router's strict decoder sees nothing.
    expect(Object.keys((parsed(["hooks", "set", "a.example", "--url", "https://t.example"]) as any).action.changes)).toEqual(["url"])
  })

  test("the router comes from --url, --router-url, then ROUTER_URL; in hooks set --url is the hook's", () => {
    expect(parsed(["hooks", "list", "--url", "http://r.example:9000/"])).toMatchObject({ connection: { url: "http://r.example:9000" } })
    const fromEnv = { ...env, ROUTER_URL: "http://env.example" }
    expect(parsed(["hooks", "list"], fromEnv)).toMatchObject({ connection: { url: "http://env.example" } })
    const byFlag = parsed(["hooks", "list", "--router-url", "http://flag.example"], fromEnv)
    expect(byFlag).toMatchObject({ connection: { url: "http://flag.example" } })
    expect(parsed(["hooks", "set", "a.example", "--url", "https://t.example", "--router-url", "http://r.example"])).toMatchObject({
      action: { changes: { url: "https://t.example" } },
      connection: { url: "http://r.example" }
    })
    const setFromEnv = parsed(["hooks", "set", "a.example", "--url", "https://t.example"], fromEnv)
    expect(setFromEnv).toMatchObject({ connection: { url: "http://env.example" } })
  })

  test("--token beats ROUTER_ADMIN_TOKEN; a blank env counts as unset", () => {
    expect(parsed(["numbers", "list", "--token", WRONG_TOKEN])).toMatchObject({ connection: { token: WRONG_TOKEN } })
    expect(usageError(["numbers", "list"], { ROUTER_ADMIN_TOKEN: "" })).toMatch(/no admin token/)
    expect(parsed(["hooks", "list"], { ...env, ROUTER_URL: "" })).toMatchObject({ connection: { url: DEFAULT_ROUTER_URL } })
  })

  test("main.ts hands these first arguments to the CLI, everything else to the server", () => {
    for (const first of ["hooks", "numbers", "check-config", "help", "--help"]) expect(isCliInvocation([first, "x"])).toBe(true)
    for (const args of [[], ["--config", "router.yaml"], ["hook"]]) expect(isCliInvocation(args)).toBe(false)
  })

  test("help wins wherever it appears", () => {
    for (const args of [["help"], ["--help"], ["hooks", "set", "--help"], ["numbers", "-h"]]) expect(parsed(args)).toEqual({ _tag: "Help" })
  })

  test("bad usage says what is wrong", () => {
    expect(usageError(["hooks"])).toMatch(/needs a command/)
    expect(usageError(["hooks", "frob"])).toMatch(/unknown command "hooks frob"/)
    expect(usageError(["frob"])).toMatch(/unknown command "frob"/)
    expect(usageError(["hooks", "get"])).toMatch(/missing HOST/)
    expect(usageError(["numbers", "set", "+15551230000"])).toMatch(/missing HOST/)
    expect(usageError(["hooks", "get", "a.example", "b.example"])).toMatch(/unexpected argument "b.example"/)
    expect(usageError(["hooks", "list", "--bogus", "1"])).toMatch(/unknown option --bogus/)
    expect(usageError(["hooks", "get", "a.example", "--secret", HOOK_SECRET])).toMatch(/unknown option --secret/)
    expect(usageError(["check-config", "f.yaml", "--token", ADMIN_TOKEN])).toMatch(/unknown option --token/)
    expect(usageError(["hooks", "set", "a.example"])).toMatch(/--url is required/)
    expect(usageError(["hooks", "list", "--url"])).toMatch(/--url needs a value/)
    expect(usageError(["hooks", "list", "--url", "--token", ADMIN_TOKEN])).toMatch(/--url needs a value/)
    expect(usageError(["hooks", "list", "--url", "a", "--url", "b"])).toMatch(/given twice/)
    expect(usageError(["hooks", "list", "-x"])).toMatch(/unknown option -x/)
    expect(usageError(["hooks", "list", "--url", "router:8080"])).toMatch(/http or https/)
    expect(usageError(["hooks", "list", "--url", "not a url"])).toMatch(/not a URL/)
  })

  test("path segments are fully percent-encoded", () => {
    expect(pathSegment("+15551230000")).toBe("%2B15551230000")
    expect(pathSegment("*.citydental.com")).toBe("%2A.citydental.com")
    expect(pathSegment("a/b?c#d")).toBe("a%2Fb%3Fc%23d")
  })
})

describe("formatting answers", () => {
  const hook = { host: "h.example", url: "https://u", source: "api", events: null, rateLimit: null, hasOwnSecret: true }

  test("tables align columns without trailing spaces", () => {
    expect(formatTable(["a", "bb"], [["ccc", "d"]])).toBe("a    bb\nccc  d")
    expect(formatHookList([])).toBe("no hooks")
    expect(formatHookList([hook, { ...hook, host: "*.w.example", events: ["room_started", "room_finished"], rateLimit: "5/s" }])).toBe(
      [
        "host         url        source  events                      rateLimit",
        "h.example    https://u  api     all                         -",
        "*.w.example  https://u  api     room_started,room_finished  5/s"
      ].join("\n")
    )
  })

  test("a generated secret is printed once with a warning to store it; an update that kept its secret prints none", () => {
    const created = formatHookSet(201, { ...hook, secret: HOOK_SECRET })
    expect(created).toMatch(/^created h\.example -> https:\/\/u$/m)
    expect(created).toContain(`secret: ${HOOK_SECRET}`)
    expect(created).toContain("never shows it again")
    expect(formatHookSet(200, hook)).toBe("updated h.example -> https://u")
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
      numbers: [{ number: "+15550000001", host: FILE_HOST }]
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
    expect(header).toEqual(["host", "url", "source", "events", "rateLimit"])
    expect(rows).toContainEqual([FILE_HOST, "https://tenant.cli.example/voice", "file", "all", "-"])
    expect(rows).toContainEqual([host, `${receiver.url}/gen2`, "api", "participant_joined,room_finished", "50/s"])
    expect(listed.stdout).not.toContain("whsec_")

    const removed = await runCli(["hooks", "rm", host, ...remote])
    expect(removed).toEqual({ code: 0, stdout: `removed ${host}\n`, stderr: "" })
    expect((await router.admin("GET", `/v1/hooks/${host}`)).status).toBe(404)
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

  test("numbers set, list and rm", async () => {
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
