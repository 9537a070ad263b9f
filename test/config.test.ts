import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Duration, Either, Schema, Redacted } from "effect"
import fc from "fast-check"
import { decodeConfig, parseConfigText, RouterConfig } from "../src/domain/Config.ts"
import { parseDurationMs } from "../src/domain/Duration.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, startRouter, testConfig } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ROOT = join(import.meta.dir, "..")
const minimal = { livekit: { apiKey: "APIk", apiSecret: "s" }, signing: { secret: DEFAULT_SECRET } }

const problemOf = (raw: unknown, env = {}) => {
  const decoded = decodeConfig(raw, env)
  if (Either.isRight(decoded)) throw new Error("expected a config error")
  return decoded.left
}

describe("hooks decoded without the schema", () => {
  // Hosts and URLs in every state: valid, odd spellings, invalid; plus hooks with more fields or wrong types.
  const host = fc.oneof(
    fc.constantFrom("calls.drsmith.com", " Calls.DrSmith.COM. ", "*.citydental.com", "*.com", "a..b", "-x.example.com", "", "*.", "x_y.example.com"),
    fc.domain(),
    fc.string({ maxLength: 12 })
  )
  const url = fc.oneof(
    fc.constantFrom("https://api.example.com/voice", "http://127.0.0.1:9000/v", "ftp://x.example.com/", "https://u:p@x.example.com/", "not a url", ""),
    fc.webUrl()
  )
  const hook = fc.oneof(
    { weight: 6, arbitrary: fc.record({ host, url }) },
    fc.record({ host, url, events: fc.constantFrom(["participant_joined"], ["nope"]) }),
    fc.record({ host, url, extra: fc.constant(1) }),
    fc.record({ host: fc.integer(), url }),
    fc.constant(null)
  )

  test("decode exactly as the schema alone would, including the first problem", () => {
    const schemaOnly = Schema.decodeUnknownEither(RouterConfig, { onExcessProperty: "error" })
    fc.assert(
      fc.property(fc.array(hook, { maxLength: 6 }), (hooks) => {
        const raw = { ...minimal, security: { allowPrivateTargets: true }, hooks }
        const fast = decodeConfig(raw)
        const reference = schemaOnly(raw)
        if (Either.isLeft(reference)) return Either.isLeft(fast)
        // Valid by the schema: the same hooks (duplicates are the consistency check's to refuse, in both).
        return Either.isLeft(fast) ? fast.left.key.startsWith("hooks.") && fast.left.problem.startsWith("duplicate") : Bun.deepEquals(fast.right.hooks, reference.right.hooks)
      }),
      { numRuns: 500 }
    )
  })

  test("a bad hook among many quick ones is still named by its index", () => {
    const hooks = Array.from({ length: 50 }, (_, i) => ({ host: `calls.t${i}.example.com`, url: `https://t${i}.example.com/v` }))
    hooks[37] = { host: "calls.t37.example.com", url: "ftp://t37.example.com/" }
    expect(problemOf({ ...minimal, hooks })).toMatchObject({ key: "hooks.37.url" })
  })
})

describe("durations", () => {
  test("units", () => {
    expect(parseDurationMs("250ms")).toBe(250)
    expect(parseDurationMs("5s")).toBe(5000)
    expect(parseDurationMs("2m")).toBe(120_000)
    expect(parseDurationMs("1h")).toBe(3_600_000)
    expect(parseDurationMs("1.5s")).toBe(1500)
    for (const bad of ["", "5", "s", "5 s", "-5s", "5sec", "5S", "1e3ms", "five seconds"]) expect(parseDurationMs(bad)).toBeUndefined()
  })

  test("any whole number of any unit decodes to that many milliseconds", () => {
    const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const
    fc.assert(
      fc.property(fc.nat(100_000), fc.constantFrom(...(Object.keys(units) as Array<keyof typeof units>)), (n, unit) => {
        const config = decodeConfig({ ...minimal, delivery: { timeout: `${n}${unit}`, maxBackoff: "1000h" } })
        return Either.isRight(config) && Duration.toMillis(config.right.delivery.timeout) === n * units[unit]
      })
    )
  })
})

describe("decoding", () => {
  test("a minimal file gets every documented default", () => {
    const config = Either.getOrThrow(decodeConfig(minimal))
    expect(config.server).toEqual({ host: "0.0.0.0", port: 8080, maxBodyBytes: 1_048_576, drainTimeout: Duration.seconds(10), maxWebhooksWaiting: 256 })
    expect(config.store.path).toBe("./data/router.db")
    expect(config.security.allowPrivateTargets).toBe(false)
    expect(config.admin.tokens).toEqual([])
    expect(Duration.toMillis(config.delivery.timeout)).toBe(5000)
    expect(config.delivery.maxAttempts).toBe(8)
    expect(Duration.toMillis(config.delivery.initialBackoff)).toBe(500)
    expect(Duration.toMillis(config.delivery.maxBackoff)).toBe(300_000)
    expect(config.delivery.concurrencyPerTenant).toBe(4)
    expect(config.delivery.circuitBreaker).toEqual({ failureThreshold: 5, cooldown: Duration.seconds(30) })
    expect(Object.fromEntries(Object.entries(config.retention).map(([k, v]) => [k, Duration.toMillis(v)]))).toEqual({
      delivered: 86_400_000,
      failed: 7 * 86_400_000,
      dedupe: 2 * 86_400_000,
      unroutable: 7 * 86_400_000,
      pins: 86_400_000,
      interval: 600_000
    })
    expect(config.hooks).toEqual([])
  })

  test("the shipped default config decodes", async () => {
    const text = await Bun.file(join(ROOT, "config/router.yaml")).text()
    expect(Either.isRight(parseConfigText(text))).toBe(true)
  })

  test("hosts are lower-cased and trailing dots dropped", () => {
    const config = Either.getOrThrow(decodeConfig({ ...minimal, hooks: [{ host: "Calls.DrSmith.COM.", url: "https://x.example/" }] }))
    expect(config.hooks[0]!.host as string).toBe("calls.drsmith.com")
  })

  test("env overrides LiveKit credentials and adds an admin token", () => {
    const config = Either.getOrThrow(
      decodeConfig(
        { ...minimal, admin: { tokens: [ADMIN_TOKEN] } },
        { LIVEKIT_API_KEY: "APIenv", LIVEKIT_API_SECRET: "env-secret", ROUTER_ADMIN_TOKEN: "token-from-env-0123456789" }
      )
    )
    expect({ ...config.livekit, apiSecret: Redacted.value(config.livekit.apiSecret) }).toEqual({ apiKey: "APIenv", apiSecret: "env-secret" })
    expect(config.admin.tokens.map(Redacted.value)).toEqual([ADMIN_TOKEN, "token-from-env-0123456789"])
  })

  test("a bad value from the environment is blamed on its variable, not on a key the file does not have", () => {
    const problem = (raw: unknown, env: Record<string, string>) => Either.getLeft(decodeConfig(raw, env)).pipe((left) => (left._tag === "Some" ? left.value : undefined))
    expect(problem({ ...minimal, admin: { tokens: [ADMIN_TOKEN] } }, { ROUTER_ADMIN_TOKEN: "tiny-token-15ch" })).toMatchObject({
      key: "ROUTER_ADMIN_TOKEN (env)",
      problem: expect.stringMatching(/16/)
    })
    expect(problem(minimal, { ROUTER_ADMIN_TOKEN: "tiny-token-15ch" })?.key).toBe("ROUTER_ADMIN_TOKEN (env)")
    // The file's own short token is still the file's.
    expect(problem({ ...minimal, admin: { tokens: ["short"] } }, { ROUTER_ADMIN_TOKEN: ADMIN_TOKEN })?.key).toBe("admin.tokens.0")
    expect(problem(minimal, { OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://collector" })?.key).toBe("OTEL_EXPORTER_OTLP_ENDPOINT (env)")
  })

  test("env supplies credentials the file leaves out", () => {
    const config = decodeConfig({ signing: minimal.signing }, { LIVEKIT_API_KEY: "APIenv", LIVEKIT_API_SECRET: "env-secret" })
    expect(Either.isRight(config)).toBe(true)
  })

  const bad: Array<[string, unknown, string, RegExp]> = [
    ["not a mapping", ["a"], "(root)", /mapping/],
    ["missing livekit", { signing: minimal.signing }, "livekit.apiKey", /missing/],
    ["missing api secret", { ...minimal, livekit: { apiKey: "k" } }, "livekit.apiSecret", /missing/],
    ["unknown top-level key", { ...minimal, hookz: [] }, "hookz", /unexpected/],
    ["unknown nested key", { ...minimal, server: { prot: 1 } }, "server.prot", /unexpected/],
    ["port out of range", { ...minimal, server: { port: 70000 } }, "server.port", /between/],
    ["negative body limit", { ...minimal, server: { maxBodyBytes: -1 } }, "server.maxBodyBytes", /positive/],
    ["bad duration", { ...minimal, delivery: { timeout: "soon" } }, "delivery.timeout", /duration/],
    ["zero attempts", { ...minimal, delivery: { maxAttempts: 0 } }, "delivery.maxAttempts", /positive/],
    ["backoff cap below start", { ...minimal, delivery: { initialBackoff: "10s", maxBackoff: "1s" } }, "delivery.maxBackoff", /initialBackoff/],
    ["signing secret without prefix", { ...minimal, signing: { secret: "abc" } }, "signing.secret", /whsec_/],
    ["signing secret too short", { ...minimal, signing: { secret: "whsec_" + Buffer.alloc(8).toString("base64") } }, "signing.secret", /24 to 64/],
    ["short admin token", { ...minimal, admin: { tokens: ["short"] } }, "admin.tokens.0", /16/],
    ["hook host not a hostname", { ...minimal, hooks: [{ host: "bad host", url: "https://x.example" }] }, "hooks.0.host", /host name/],
    ["hook url not http", { ...minimal, hooks: [{ host: "a.example", url: "ftp://x.example" }] }, "hooks.0.url", /http/],
    ["hook url with credentials", { ...minimal, hooks: [{ host: "a.example", url: "https://u:p@x.example" }] }, "hooks.0.url", /credentials/],
    ["hook maxAge not a duration", { ...minimal, hooks: [{ host: "a.example", url: "https://x.example", maxAge: "soon" }] }, "hooks.0.maxAge", /duration/],
    ["hook maxAge of zero", { ...minimal, hooks: [{ host: "a.example", url: "https://x.example", maxAge: "0s" }] }, "hooks.0.maxAge", /duration/],
    ["hook unknown event", { ...minimal, hooks: [{ host: "a.example", url: "https://x.example", events: ["call_started"] }] }, "hooks.0.events.0", /participant_joined.*call\.started, call\.ended or "\*"/],
    ["duplicate hook host", { ...minimal, hooks: [{ host: "a.example", url: "https://x.example" }, { host: "A.example", url: "https://y.example" }] }, "hooks.1.host", /duplicate/],
    ["number that is no phone number", { ...minimal, numbers: [{ number: "call me", host: "a.example" }] }, "numbers.0.number", /expected a phone number/],
    ["shared domain not a host", { ...minimal, sharedDomains: ["not a host"] }, "sharedDomains.0", /host name/],
    ["alert url on loopback", { ...minimal, alerts: { url: "http://127.0.0.1:9000/alerts" } }, "alerts.url", /^url host 127\.0\.0\.1 is a loopback address \(set security\.allowPrivateTargets to allow it\)$/],
    ["alert url on a private network", { ...minimal, alerts: { url: "https://10.1.2.3/alerts" } }, "alerts.url", /10\.1\.2\.3 is a private/],
    ["alert url not http", { ...minimal, alerts: { url: "ftp://ops.example/alerts" } }, "alerts.url", /http/],
    ["alerts without any secret", { livekit: minimal.livekit, alerts: { url: "https://ops.example/alerts" } }, "alerts.secret", /^required while signing\.secret is not set/],
    ["alert secret without prefix", { ...minimal, alerts: { url: "https://ops.example/alerts", secret: "abc" } }, "alerts.secret", /whsec_/],
    ["unknown alert type", { ...minimal, alerts: { url: "https://ops.example/alerts", events: ["tenant.failing", "tenant.down"] } }, "alerts.events.1", /^expected an alert type \(tenant\.failing, .*\), got "tenant\.down"$/],
    ["unroutable window not a duration", { ...minimal, alerts: { url: "https://ops.example/alerts", unroutableWindow: "hourly" } }, "alerts.unroutableWindow", /duration/],
    ["unroutable window of zero", { ...minimal, alerts: { url: "https://ops.example/alerts", unroutableWindow: "0s" } }, "alerts.unroutableWindow", /^must be longer than 0$/],
    ["unroutable window past the dedupe retention", { ...minimal, alerts: { url: "https://ops.example/alerts", unroutableWindow: "3d" } }, "alerts.unroutableWindow", /retention\.dedupe/],
    ["unknown alerts key", { ...minimal, alerts: { url: "https://ops.example/alerts", hooks: [] } }, "alerts.hooks", /unexpected/],
    [
      "no signing secret while a hook has none of its own",
      { livekit: minimal.livekit, hooks: [{ host: "a.example", url: "https://x.example", secret: DEFAULT_SECRET }, { host: "b.example", url: "https://y.example" }] },
      "signing.secret",
      /required while a hook has no secret of its own \(hooks\.1: b\.example\)/
    ]
  ]
  for (const [name, raw, key, problem] of bad) {
    test(`rejects ${name}, naming ${key}`, () => {
      const error = problemOf(raw)
      expect(error.key).toBe(key)
      expect(error.problem).toMatch(problem)
    })
  }

  test("alerts: unroutableWindow defaults to 1h; alerts.secret alone is enough; private targets when allowed", () => {
    const defaults = Either.getOrThrow(decodeConfig({ ...minimal, alerts: { url: "https://ops.example/alerts" } }))
    expect(defaults.alerts).toEqual({ url: "https://ops.example/alerts", unroutableWindow: Duration.hours(1) })
    const own = Either.getOrThrow(decodeConfig({ livekit: minimal.livekit, alerts: { url: "https://ops.example/alerts", secret: DEFAULT_SECRET, events: ["delivery.failed"], unroutableWindow: "10m" } }))
    expect({ ...own.alerts, secret: own.alerts?.secret && (Redacted.value(own.alerts.secret) as string) }).toEqual({
      url: "https://ops.example/alerts",
      secret: DEFAULT_SECRET,
      events: ["delivery.failed"],
      unroutableWindow: Duration.minutes(10)
    })
    expect(Either.isRight(decodeConfig({ ...minimal, security: { allowPrivateTargets: true }, alerts: { url: "http://127.0.0.1:9000/alerts" } }))).toBe(true)
    expect(Either.getOrThrow(decodeConfig(minimal)).alerts).toBeUndefined()
  })

  test("a hook's maxAge is kept as written, and read once", () => {
    const decoded = decodeConfig({ ...minimal, hooks: [{ host: "a.example", url: "https://x.example", maxAge: "30s" }] })
    expect(Either.isRight(decoded) && decoded.right.hooks[0]!.maxAge).toEqual({ text: "30s", ms: 30_000 })
  })

  test("signing.secret may be left out when every hook has a secret of its own, or there are no hooks", () => {
    const own = { host: "a.example", url: "https://x.example", secret: DEFAULT_SECRET }
    for (const raw of [{ livekit: minimal.livekit }, { livekit: minimal.livekit, hooks: [own] }]) {
      const decoded = decodeConfig(raw)
      expect(Either.isRight(decoded) && decoded.right.signing.secret).toBeUndefined()
    }
  })

  test("YAML syntax errors are reported as such", () => {
    const result = parseConfigText("server: [unclosed")
    expect(Either.isLeft(result) && result.left.problem).toMatch(/YAML/)
  })
})

describe("starting the process", () => {
  const run = async (args: string[], env: Record<string, string> = {}) => {
    const proc = Bun.spawn(["bun", "run", join(ROOT, "src/main.ts"), ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ROUTER_CONFIG: "", ...env }
    })
    const code = await proc.exited
    return { code, stderr: await new Response(proc.stderr).text() }
  }
  const dir = mkdtempSync(join(tmpdir(), "router-config-"))

  test("a bad config exits non-zero with the key and the problem", async () => {
    const path = join(dir, "bad.yaml")
    writeFileSync(path, Bun.YAML.stringify({ ...testConfig(dir), delivery: { timeout: "forever" } }))
    const { code, stderr } = await run(["--config", path])
    expect(code).not.toBe(0)
    expect(stderr).toContain("delivery.timeout")
    expect(stderr).toContain("forever")
  })

  test("a missing file exits non-zero and names it", async () => {
    const { code, stderr } = await run(["--config", join(dir, "nope.yaml")])
    expect(code).not.toBe(0)
    expect(stderr).toContain("nope.yaml")
  })

  // main runs the router without building the command line when the arguments only ask for it: what the command line refuses stays its usage error.
  test("--config naming a directory, or a blank ROUTER_CONFIG, is the command line's usage error (exit 2); a missing file is the router's (exit 1)", async () => {
    const directory = await run(["--config", dir])
    expect(directory.code).toBe(2)
    expect(directory.stderr).toStartWith(`error: Expected path '${dir}' to be a regular file`)
    const blank = await run(["serve"], { ROUTER_CONFIG: "" })
    expect(blank.code).toBe(2)
    expect(blank.stderr).toStartWith("error: serve needs --config FILE (or ROUTER_CONFIG)")
    const missing = await run(["serve", "--config", join(dir, "nope.yaml")])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toStartWith(`config: (file): cannot read ${join(dir, "nope.yaml")}`)
  })

  test("no config at all prints usage", async () => {
    const { code, stderr } = await run([])
    expect(code).not.toBe(0)
    expect(stderr).toContain("--config")
  })

  test("ROUTER_CONFIG names the file when --config is absent", async () => {
    const path = join(dir, "bad-env.yaml")
    writeFileSync(path, "livekit: {apiKey: k}\n")
    const { code, stderr } = await run([], { ROUTER_CONFIG: path })
    expect(code).not.toBe(0)
    expect(stderr).toContain("livekit.apiSecret")
  })

  test("a good config starts and SIGTERM stops it cleanly", async () => {
    const router = await startRouter()
    expect((await fetch(`${router.url}/healthz`)).status).toBe(200)
    expect(await router.stop("SIGTERM")).toBe(0)
  })
})

describe("secrets are Redacted once decoded", () => {
  test("no secret of the config, its hooks or their credentials shows when the decoded config is printed or serialised", () => {
    const secrets = {
      apiSecret: "livekit-api-secret-value",
      token: "operator-token-0123456789",
      tenantToken: "tenant-token-0123456789",
      signing: DEFAULT_SECRET,
      hookSecret: "whsec_" + Buffer.alloc(32, 9).toString("base64"),
      alertSecret: "whsec_" + Buffer.alloc(32, 5).toString("base64"),
      remoteToken: "remote-source-token",
      header: "x-api-key-value",
      password: "basic-password-value",
      bearer: "bearer-token-value"
    }
    const config = Either.getOrThrow(
      decodeConfig({
        livekit: { apiKey: "APIk", apiSecret: secrets.apiSecret },
        admin: { tokens: [secrets.token], tenantTokens: [{ token: secrets.tenantToken, hosts: ["a.example"] }] },
        signing: { secret: secrets.signing },
        remoteHooks: { url: "https://hooks.example/table", token: secrets.remoteToken },
        alerts: { url: "https://ops.example/alerts", secret: secrets.alertSecret },
        hooks: [
          { host: "a.example", url: "https://a.example/voice", secret: secrets.hookSecret, headers: { "X-Api-Key": secrets.header } },
          { host: "b.example", url: "https://b.example/voice", auth: { basic: { username: "router", password: secrets.password } } },
          { host: "c.example", url: "https://c.example/voice", auth: { bearer: secrets.bearer } }
        ]
      })
    )
    const printed = [JSON.stringify(config), String(config.hooks[0]!.secret), Bun.inspect(config, { depth: 10 })].join("\n")
    for (const secret of Object.values(secrets)) expect(printed).not.toContain(secret)
    expect(Redacted.value(config.hooks[0]!.secret!) as string).toBe(secrets.hookSecret)
  })
})
