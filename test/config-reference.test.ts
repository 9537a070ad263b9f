/**
 * The configuration reference in docs/configuration.md is generated from the
 * config schema (scripts/config-reference.ts): it must be the one the schema
 * generates now, list every key once, and show the defaults a config decodes to.
 */
import { expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Duration, Either } from "effect"
import { decodeConfig } from "../src/domain/Config.ts"
import { configKeys, REFERENCE_PATH, referenceIn, renderReference, renderValue } from "../scripts/config-reference.ts"
import { DEFAULT_SECRET } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const committed = referenceIn(await Bun.file(REFERENCE_PATH).text()) ?? ""

/** The table's rows as key → default cell. */
const rows = committed
  .split("\n")
  .map((line) => /^\| `([^`]+)` \| ([^|]+) \|/.exec(line))
  .filter((match) => match !== null)
  .map((match) => ({ key: match[1]!, default: match[2]!.trim() }))
const defaultOf = new Map(rows.map((row) => [row.key, row.default]))

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !Duration.isDuration(value)

/**
 * Every value of a decoded config as [key, value], in the reference's key
 * spelling (`hooks[].url`). Objects are followed down until a key the table
 * documents as a whole (a hook's `headers`), so nothing decoded goes unlisted.
 */
const leavesOf = (value: unknown, key: string): Array<[string, unknown]> => {
  const documentedBelow = rows.some((row) => row.key.startsWith(`${key}.`) || row.key.startsWith(`${key}[].`))
  if (key !== "" && !documentedBelow) return [[key, value]]
  const prefix = key === "" ? "" : `${key}.`
  if (Array.isArray(value)) return value.length === 0 ? [[key, value]] : value.flatMap((item) => leavesOf(item, `${key}[]`))
  if (isPlainObject(value)) return Object.entries(value).flatMap(([name, child]) => leavesOf(child, prefix + name))
  return [[key, value]]
}

const decoded = (raw: unknown) => {
  const config = decodeConfig(raw)
  if (Either.isLeft(config)) throw new Error(`${config.left.key}: ${config.left.problem}`)
  return config.right
}

test("docs/configuration.md holds the reference the schema generates now", () => {
  expect(committed, "the configuration reference in docs/configuration.md is stale: run `bun run docs`").toBe(renderReference())
})

test("every key of the schema is in the reference exactly once", () => {
  const keys = configKeys().map((k) => k.key)
  expect(keys.length).toBeGreaterThan(50)
  for (const key of keys) expect({ key, rows: rows.filter((row) => row.key === key).length }).toEqual({ key, rows: 1 })
  expect(rows.map((row) => row.key).sort()).toEqual([...keys].sort())
})

test("every default in the reference is what a minimal config decodes to", () => {
  const leaves = leavesOf(decoded({ livekit: { apiKey: "APIk", apiSecret: "s" } }), "").filter(([key]) => !key.startsWith("livekit."))
  expect(leaves.length).toBeGreaterThan(30)
  for (const [key, value] of leaves) expect({ key, default: defaultOf.get(key) }).toEqual({ key, default: `\`${renderValue(value)}\`` })
})

test("every value of a config with every optional section is under a key the reference lists", () => {
  const full = decoded({
    livekit: { apiKey: "APIk", apiSecret: "s" },
    admin: { tokens: ["operator-token-0123456789"], tenantTokens: [{ token: "tenant-token-0123456789", hosts: ["calls.drsmith.com"] }], metricsToken: "metrics-token-0123456789" },
    signing: { secret: DEFAULT_SECRET },
    store: { redis: "redis://127.0.0.1:6379/0", lease: "5s" },
    remoteHooks: { url: "https://hooks.example.com/table", token: "remote-token" },
    alerts: { url: "https://ops.example.com/alerts", secret: DEFAULT_SECRET, events: ["tenant.failing"] },
    telemetry: { otlp: { endpoint: "http://127.0.0.1:4318" } },
    sharedDomains: ["sip.voiceplatform.example"],
    numbers: [{ number: "+15557654321", host: "calls.drsmith.com" }],
    hooks: [
      {
        host: "calls.drsmith.com",
        url: "https://api.drsmith.example/voice",
        secret: DEFAULT_SECRET,
        events: ["*", "call.started"],
        rateLimit: "50/s",
        maxAge: "30s",
        headers: { "X-Api-Key": "key" },
        auth: { bearer: "token" }
      }
    ]
  })
  const unlisted = leavesOf(full, "")
    .map(([key]) => key)
    .filter((key) => !defaultOf.has(key))
  expect(unlisted).toEqual([])
})
