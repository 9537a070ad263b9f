import { Duration, Either, Schema } from "effect"
import { AlertsConfig } from "./Alert.ts"
import { Admin, DAY, Delivery, LiveKit, RemoteHooks, Retention, Server, Signing, Store, Telemetry, withDefault } from "./ConfigSections.ts"
import { DurationString } from "./Duration.ts"
import { ConfigError, firstProblem } from "./Errors.ts"
import { Hook, hookSetProblem, hookWithoutSecret, HostPattern, isHostPattern, normaliseHost, numberMapping, targetProblem, targetUrlProblem } from "./Hook.ts"
import { isCountry, type Country } from "./PhoneNumber.ts"
import { excerpt } from "./Untrusted.ts"

const DefaultCountry = Schema.String.pipe(
  Schema.filter(isCountry, { message: (issue) => `expected an ISO 3166 country code such as "US", "GB" or "DE", got ${excerpt(String(issue.actual))}` })
)

/** The config's schema, reading national spellings in `numbers` as numbers of `country` (the file's `defaultCountry`). */
const routerConfig = (country: Country | undefined) => Schema.Struct({
  server: withDefault(Server, () => Schema.decodeSync(Server)({})),
  livekit: LiveKit,
  admin: withDefault(Admin, () => Schema.decodeSync(Admin)({})),
  signing: withDefault(Signing, () => Schema.decodeSync(Signing)({})),
  store: withDefault(Store, () => Schema.decodeSync(Store)({})),
  security: withDefault(
    Schema.Struct({
      allowPrivateTargets: withDefault(Schema.Boolean, () => false).annotations({
        description:
          "allow hook URLs that are or resolve to loopback, private, link-local, CGNAT, multicast or unspecified addresses (see [Safe targets](operations.md#safe-targets))"
      })
    }),
    () => ({ allowPrivateTargets: false })
  ),
  delivery: withDefault(Delivery, () => Schema.decodeSync(Delivery)({})),
  retention: withDefault(Retention, () => Schema.decodeSync(Retention)({})),
  reload: withDefault(
    Schema.Struct({
      interval: withDefault(DurationString, () => Duration.seconds(2)).annotations({
        description: "how often the config file is checked for edits to `hooks`, `numbers`, `signing.secret` and the admin tokens (it is also watched)"
      })
    }),
    () => ({ interval: Duration.seconds(2) })
  ),
  remoteHooks: Schema.optional(RemoteHooks).annotations({
    description: "an HTTP source of hooks and numbers, for platforms whose tenant list lives elsewhere (see [The hook table](#the-hook-table))"
  }),
  alerts: Schema.optional(AlertsConfig).annotations({
    description:
      "operational alerts (`tenant.failing`, `delivery.failed`, ...), sent signed to one endpoint (see [Operational alerts](alerts.md)). Without it no alert is made"
  }),
  telemetry: withDefault(Telemetry, () => Schema.decodeSync(Telemetry)({})),
  defaultCountry: Schema.optional(DefaultCountry).annotations({
    description:
      "ISO 3166 code (`US`, `GB`, ...) of the country whose national spellings of numbers are read: `(555) 123-0010` in `numbers`, the admin API and the CLI, and a carrier's national `sip.trunkPhoneNumber` and `sip.phoneNumber`. Without it a number needs `+` and its country code: a national one is refused (and a call's is left as sent). Read at start: an edit while running is refused until a restart"
  }),
  sharedDomains: withDefault(Schema.Array(HostPattern), () => []).annotations({
    description:
      "domains that identify no tenant: route those calls by dialled number (read at start: a change needs a restart; see [Shared domains](carrier-setup.md#shared-domains))"
  }),
  numbers: withDefault(Schema.Array(numberMapping(country)), () => []).annotations({
    description: "dialled number → hook host, for shared domains; each names a host one of `hooks` matches; reloaded like `hooks`"
  }),
  hooks: withDefault(Schema.Array(Hook), () => []).annotations({
    description: "the tenants' webhooks (see [Hooks](#hooks)); reloaded while the router runs"
  })
})
export const RouterConfig = routerConfig(undefined)
export type RouterConfig = typeof RouterConfig.Type

/** Environment variables that override or extend the file (secrets usually come from here). */
export type ConfigEnv = {
  readonly LIVEKIT_API_KEY?: string | undefined
  readonly LIVEKIT_API_SECRET?: string | undefined
  readonly ROUTER_ADMIN_TOKEN?: string | undefined
  readonly ROUTER_ENCRYPTION_KEY?: string | undefined
} & Record<string, string | undefined>

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Applies env overrides to the raw document, before decoding, so they are validated like the file. */
const applyEnv = (raw: Record<string, unknown>, env: ConfigEnv): Record<string, unknown> => {
  const livekit = isRecord(raw.livekit) ? { ...raw.livekit } : {}
  if (env.LIVEKIT_API_KEY) livekit.apiKey = env.LIVEKIT_API_KEY
  if (env.LIVEKIT_API_SECRET) livekit.apiSecret = env.LIVEKIT_API_SECRET
  const admin = isRecord(raw.admin) ? { ...raw.admin } : {}
  if (env.ROUTER_ADMIN_TOKEN) admin.tokens = [...(Array.isArray(admin.tokens) ? admin.tokens : []), env.ROUTER_ADMIN_TOKEN]
  // OpenTelemetry's standard variables, so the router is configured like any other instrumented service.
  const telemetry = isRecord(raw.telemetry) ? { ...raw.telemetry } : {}
  const otlp = isRecord(telemetry.otlp) ? { ...telemetry.otlp } : {}
  if (env.OTEL_SERVICE_NAME) telemetry.serviceName = env.OTEL_SERVICE_NAME
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) otlp.endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT
  if (env.OTEL_EXPORTER_OTLP_PROTOCOL) otlp.protocol = env.OTEL_EXPORTER_OTLP_PROTOCOL
  if (Object.keys(otlp).length > 0) telemetry.otlp = otlp
  const store = env.ROUTER_ENCRYPTION_KEY ? { ...(isRecord(raw.store) ? raw.store : {}), encryptionKey: env.ROUTER_ENCRYPTION_KEY.split(",").map((key) => key.trim()) } : raw.store
  return { ...raw, livekit, admin, ...(Object.keys(telemetry).length > 0 ? { telemetry } : {}), ...(store === undefined ? {} : { store }) }
}

/** The keys the environment sets in place of the file, by the variable that does. */
const FROM_ENV: ReadonlyArray<readonly [key: string, variable: string]> = [
  ["livekit.apiKey", "LIVEKIT_API_KEY"],
  ["livekit.apiSecret", "LIVEKIT_API_SECRET"],
  ["telemetry.serviceName", "OTEL_SERVICE_NAME"],
  ["telemetry.otlp.endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"],
  ["telemetry.otlp.protocol", "OTEL_EXPORTER_OTLP_PROTOCOL"],
  ["store.encryptionKey", "ROUTER_ENCRYPTION_KEY"]
]

/**
 * A problem with a value the environment gave is named by its variable: the
 * key it lands on (`admin.tokens.2` for ROUTER_ADMIN_TOKEN, appended after the
 * file's) may not be in the file at all.
 */
const blameEnv = (problem: { readonly key: string; readonly problem: string }, raw: Record<string, unknown>, env: ConfigEnv) => {
  const fileTokens = isRecord(raw.admin) && Array.isArray(raw.admin.tokens) ? raw.admin.tokens.length : 0
  const variable =
    env.ROUTER_ADMIN_TOKEN && problem.key === `admin.tokens.${fileTokens}`
      ? "ROUTER_ADMIN_TOKEN"
      : FROM_ENV.find(([key, name]) => env[name] && (problem.key === key || problem.key.startsWith(`${key}.`)))?.[1]
  if (variable === undefined) return problem
  // A list's key is named by its place in the variable's list, counted from 1.
  const place = variable === "ROUTER_ENCRYPTION_KEY" ? /^store\.encryptionKey\.(\d+)/.exec(problem.key)?.[1] : undefined
  return { key: `${variable} (env)`, problem: place === undefined ? problem.problem : `key ${Number(place) + 1} of the list: ${problem.problem}` }
}

/** Alerts need a secret to be signed with, a target hooks could have, and a window to count in. */
const alertsProblem = ({ alerts, signing, security, retention }: RouterConfig): ConfigError | undefined => {
  if (alerts === undefined) return undefined
  if (alerts.secret === undefined && signing.secret === undefined) {
    return new ConfigError({ key: "alerts.secret", problem: "required while signing.secret is not set: alerts are always signed" })
  }
  const refused = targetProblem(alerts.url, security.allowPrivateTargets)
  if (refused) return new ConfigError({ key: "alerts.url", problem: `${refused} (set security.allowPrivateTargets to allow it)` })
  if (Duration.lessThanOrEqualTo(alerts.unroutableWindow, Duration.zero)) {
    return new ConfigError({ key: "alerts.unroutableWindow", problem: "must be longer than 0" })
  }
  // A window's alert is made once because its id is remembered; past retention.dedupe it would be made again.
  if (Duration.greaterThan(alerts.unroutableWindow, retention.dedupe)) {
    return new ConfigError({ key: "alerts.unroutableWindow", problem: "must not be longer than retention.dedupe, for which alert ids are remembered" })
  }
  return undefined
}

/** Rejects what the schema cannot express: hooks nothing can sign for, duplicate hosts or numbers, refused targets, inverted backoff. */
const checkConsistency = (config: RouterConfig): ConfigError | undefined => {
  const unsigned = config.signing.secret === undefined ? hookWithoutSecret(config) : undefined
  if (unsigned !== undefined) {
    const { host } = config.hooks[unsigned]!
    return new ConfigError({
      key: "signing.secret",
      problem: `required while a hook has no secret of its own (hooks.${unsigned}: ${host}); set it, or give every hook a secret`
    })
  }
  const inSet = hookSetProblem(config, config.security.allowPrivateTargets)
  if (inSet) return new ConfigError(inSet)
  const alerts = alertsProblem(config)
  if (alerts) return alerts
  if (Duration.lessThan(config.delivery.maxBackoff, config.delivery.initialBackoff)) {
    return new ConfigError({ key: "delivery.maxBackoff", problem: "must not be shorter than delivery.initialBackoff" })
  }
  // Leases are renewed every third of their length: shorter than a second would be renewing all the time.
  if (Duration.lessThan(config.store.lease, Duration.seconds(1))) {
    return new ConfigError({ key: "store.lease", problem: "must be at least 1s" })
  }
  // LiveKit retries an event for well under a minute, but a redelivery after a restore or replay must still be caught.
  if (Duration.lessThan(config.retention.dedupe, DAY)) {
    return new ConfigError({ key: "retention.dedupe", problem: "must be at least 24h, so retried events are still recognised" })
  }
  return undefined
}

/** The store keys that only one kind of store understands; checked on the raw document, before defaults hide what was written. */
const storeKindProblem = (store: unknown): ConfigError | undefined => {
  if (!isRecord(store)) return undefined
  if (store.redis === undefined) {
    const stray = ["lease", "prefix"].find((key) => key in store)
    return stray ? new ConfigError({ key: `store.${stray}`, problem: "only applies with store.redis" }) : undefined
  }
  return "path" in store ? new ConfigError({ key: "store", problem: "set either store.path (SQLite) or store.redis, not both" }) : undefined
}

const decoders = new Map<Country | undefined, ReturnType<typeof decoderFor>>()
const decoderFor = (country: Country | undefined) => Schema.decodeUnknownEither(routerConfig(country), { onExcessProperty: "error" })
/** The decoder for the file's `defaultCountry` (a wrong one is reported by the schema, and reads no national number). */
const decodeRouterConfig = (document: Record<string, unknown>) => {
  const country = typeof document.defaultCountry === "string" && isCountry(document.defaultCountry) ? document.defaultCountry : undefined
  const decode = decoders.get(country) ?? decoderFor(country)
  decoders.set(country, decode)
  return decode(document)
}
const decodeHook = Schema.decodeUnknownEither(Hook, { onExcessProperty: "error" })

/**
 * A platform's file may hold 100 000 hooks, and the schema costs microseconds
 * each: a hook that is just a host and a URL is checked with the schema's own
 * predicates, anything else by the schema. Undefined as soon as one is wrong,
 * so the schema decodes the file again and names the key at fault.
 */
const quickHooks = (items: ReadonlyArray<unknown>): Array<Hook> | undefined => {
  const hooks: Array<Hook> = []
  for (const item of items) {
    if (isRecord(item) && typeof item.host === "string" && typeof item.url === "string" && Object.keys(item).length === 2) {
      const host = normaliseHost(item.host)
      if (!isHostPattern(host) || targetUrlProblem(item.url) !== undefined) return undefined
      hooks.push({ host: host as HostPattern, url: item.url })
    } else {
      const hook = decodeHook(item)
      if (Either.isLeft(hook)) return undefined
      hooks.push(hook.right)
    }
  }
  return hooks
}

/** Decodes a parsed YAML document into a config, naming the offending key on failure. */
export const decodeConfig = (raw: unknown, env: ConfigEnv = {}): Either.Either<RouterConfig, ConfigError> => {
  if (!isRecord(raw)) return Either.left(new ConfigError({ key: "(root)", problem: "expected a YAML mapping" }))
  const storeProblem = storeKindProblem(raw.store)
  if (storeProblem) return Either.left(storeProblem)
  const document = applyEnv(raw, env)
  const hooks = Array.isArray(document.hooks) ? quickHooks(document.hooks) : undefined
  const decoded = decodeRouterConfig(hooks ? { ...document, hooks: [] } : document)
  if (Either.isLeft(decoded)) return Either.left(new ConfigError(blameEnv(firstProblem(decoded.left, "(root)"), raw, env)))
  const config = hooks ? { ...decoded.right, hooks } : decoded.right
  const problem = checkConsistency(config)
  return problem ? Either.left(problem) : Either.right(config)
}

/** Parses YAML text (Bun's native parser) and decodes it. */
export const parseConfigText = (text: string, env: ConfigEnv = {}): Either.Either<RouterConfig, ConfigError> => {
  let raw: unknown
  try {
    raw = Bun.YAML.parse(text)
  } catch (error) {
    return Either.left(new ConfigError({ key: "(file)", problem: `not valid YAML: ${(error as Error).message}` }))
  }
  return decodeConfig(raw, env)
}
