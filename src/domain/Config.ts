import { Duration, Either, Schema } from "effect"
import { AlertsConfig } from "./Alert.ts"
import { DurationString } from "./Duration.ts"
import { ConfigError, firstProblem } from "./Errors.ts"
import {
  Hook,
  hookSetProblem,
  hookWithoutSecret,
  HostPattern,
  isHostPattern,
  normaliseHost,
  NumberMapping,
  TargetUrl,
  targetProblem,
  targetUrlProblem,
  WebhookSecret
} from "./Hook.ts"

const Port = Schema.Int.pipe(Schema.between(0, 65535))
const Positive = Schema.Int.pipe(Schema.positive())

// Defaults live in the schema so a minimal file and a full one decode to the same shape.
const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value as never, exact: true })

// Each key's meaning is a `description` on its property signature (a required key is wrapped in
// `Schema.propertySignature` to carry one), not on its schema: the configuration reference is
// generated from these (scripts/config-reference.ts), and a schema's own description would
// replace the "Expected ..." part of its decoding errors.

const Server = Schema.Struct({
  host: withDefault(Schema.String, () => "0.0.0.0").annotations({ description: "listen address" }),
  port: withDefault(Port, () => 8080).annotations({ description: "listen port (`0` picks a free one; the `listening` log line says which)" }),
  maxBodyBytes: withDefault(Positive, () => 1_048_576).annotations({
    description: "larger webhook or admin bodies get 413, whatever their size (no more than this is ever read)"
  }),
  drainTimeout: withDefault(DurationString, () => Duration.seconds(10)).annotations({
    description: "on SIGTERM/SIGINT, how long attempts in flight may finish before the process stops"
  })
})

const LiveKit = Schema.Struct({
  apiKey: Schema.propertySignature(Schema.String.pipe(Schema.minLength(1))).annotations({
    description: "the key LiveKit signs webhooks with (`webhook.api_key` in LiveKit's config). Env `LIVEKIT_API_KEY` overrides"
  }),
  apiSecret: Schema.propertySignature(Schema.Redacted(Schema.String.pipe(Schema.minLength(1)))).annotations({
    description: "that key's secret. Env `LIVEKIT_API_SECRET` overrides"
  })
})

const Token = Schema.Redacted(Schema.String.pipe(Schema.minLength(16, { message: () => "admin tokens must be at least 16 characters" })))

const TenantToken = Schema.Struct({
  token: Schema.propertySignature(Token).annotations({ description: "the bearer token (16+ chars)" }),
  hosts: Schema.propertySignature(Schema.Array(HostPattern).pipe(Schema.minItems(1))).annotations({
    description: "the hosts and wildcards it may see and change (at least one)"
  })
})

const Admin = Schema.Struct({
  tokens: withDefault(Schema.Array(Token), () => []).annotations({
    description: "operator bearer tokens for the admin API (16+ chars): every host. Env `ROUTER_ADMIN_TOKEN` adds one. No token: the admin API answers 401"
  }),
  tenantTokens: withDefault(Schema.Array(TenantToken), () => []).annotations({
    description:
      "tenant tokens: each confined to its hosts and whatever lies under its wildcards (see [Tokens](admin-api.md#tokens))"
  }),
  docs: withDefault(Schema.Boolean, () => true).annotations({
    description:
      "serve the admin API's OpenAPI document (`/openapi.json`) and its reference (`/docs`) without a token (they describe the API, never its data); `false`: both 404"
  })
})

const Signing = Schema.Struct({
  // `decodeConfig` requires it only while some file hook has none.
  secret: Schema.optional(WebhookSecret).annotations({
    description:
      "`whsec_…` secret for hooks without their own. Required only while some hook in the file has none (a table from the HTTP source with such a hook is refused while it is unset); API hooks always get their own"
  }),
  rotationOverlap: withDefault(DurationString, () => Duration.hours(24)).annotations({
    description: "after a secret rotation, how long deliveries also carry a signature with the old secret"
  })
})

const RemoteHooks = Schema.Struct({
  url: Schema.propertySignature(TargetUrl).annotations({
    description: 'the source\'s URL (http or https, without credentials), answering `{"hooks": [...], "numbers": [...]}`'
  }),
  interval: withDefault(DurationString, () => Duration.seconds(30)).annotations({ description: "how often it is polled (with `If-None-Match`)" }),
  token: Schema.optional(Schema.Redacted(Schema.String.pipe(Schema.minLength(1)))).annotations({ description: "sent as `Authorization: Bearer …`" })
})

const CircuitBreaker = Schema.Struct({
  failureThreshold: withDefault(Positive, () => 5).annotations({
    description: "consecutive failures (timeouts, network errors, 408, 5xx) that open a tenant's circuit"
  }),
  cooldown: withDefault(DurationString, () => Duration.seconds(30)).annotations({
    description: "how long an open circuit waits before one probe; doubles after a failed probe, up to `delivery.maxBackoff` (or the cooldown itself, if longer)"
  })
})

/**
 * What the engine holds in memory per tenant: at most `lanes` calls, each with
 * at most `perLane` of its next deliveries. The rest waits in the store, so a
 * backlog costs disk, not memory.
 */
const Window = Schema.Struct({
  lanes: withDefault(Positive, () => 64).annotations({
    description:
      "per tenant, how many calls the delivery engine holds in memory; the others wait in the store (see [Delivery engine](operations.md#delivery-engine))"
  }),
  perLane: withDefault(Positive, () => 4).annotations({
    description: "per call in memory, how many of its next deliveries are held; the rest are read from the store as these go"
  })
})

/** A duration, or `0` (number or text) for off. */
const OffOrDuration = Schema.Union(
  Schema.transform(Schema.Literal(0, "0"), Schema.DurationFromSelf, { strict: true, decode: () => Duration.zero, encode: () => "0" as const }),
  DurationString
)

const Delivery = Schema.Struct({
  timeout: withDefault(DurationString, () => Duration.seconds(5)).annotations({ description: "per attempt" }),
  maxAttempts: withDefault(Positive, () => 8).annotations({ description: "including the first" }),
  initialBackoff: withDefault(DurationString, () => Duration.millis(500)).annotations({ description: "first retry delay; doubles each retry, ±jitter" }),
  maxBackoff: withDefault(DurationString, () => Duration.minutes(5)).annotations({
    description: "cap on any retry delay, including a tenant's `Retry-After`; not shorter than `delivery.initialBackoff`"
  }),
  concurrencyPerTenant: withDefault(Positive, () => 4).annotations({ description: "requests in flight to one tenant" }),
  circuitBreaker: withDefault(CircuitBreaker, () => Schema.decodeSync(CircuitBreaker)({})),
  window: withDefault(Window, () => Schema.decodeSync(Window)({})),
  disableAfter: withDefault(OffOrDuration, () => Duration.days(5)).annotations({
    description:
      "a tenant (hook host) whose attempts have all failed for this long (no 2xx since the first failure of the streak) is disabled: nothing more is sent, its deliveries end `failed` with `lastError` `disabled` until `POST /v1/hooks/{host}/enable` (see [Auto-disable](operations.md#auto-disable)); `0` never disables"
  })
})

const DAY = Duration.days(1)

const Retention = Schema.Struct({
  delivered: withDefault(DurationString, () => DAY).annotations({
    description: "how long delivered deliveries (and their attempt history) are kept"
  }),
  failed: withDefault(DurationString, () => Duration.days(7)).annotations({
    description: "how long failed deliveries are kept for inspection and replay, and expired ones (see [Freshness](#freshness-maxage)) for inspection"
  }),
  dedupe: withDefault(DurationString, () => Duration.days(2)).annotations({
    description: "how long LiveKit event ids are remembered for deduplication (at least `24h`)"
  }),
  unroutable: withDefault(DurationString, () => Duration.days(7)).annotations({ description: "how long unroutable SIP events are listed" }),
  pins: withDefault(DurationString, () => DAY).annotations({
    description: "a room pin with no event for this long is dropped (`room_finished` drops it at once)"
  }),
  interval: withDefault(DurationString, () => Duration.minutes(10)).annotations({ description: "how often the pruning runs (also once at start)" })
})

/** `redis://host:port/db` (or `rediss://` for TLS): a database number, if given, is the path. */
const RedisUrl = Schema.String.pipe(
  Schema.filter((text) => {
    const url = URL.parse(text)
    return (
      (url !== null && (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "" && /^(\/\d*)?$/.test(url.pathname)) ||
      "must be a redis://host:port/db URL"
    )
  })
)

/** Either the embedded SQLite file (`path`) or a shared Redis (`redis`); `decodeConfig` refuses both at once. */
const Store = Schema.Struct({
  path: withDefault(Schema.String, () => "./data/router.db").annotations({
    description: "SQLite database (WAL); created with its directory. `:memory:` keeps nothing across restarts (benchmarks only)"
  }),
  redis: Schema.optional(RedisUrl).annotations({
    description:
      "`redis://host:port/db` (or `rediss://`): use a shared Redis instead of SQLite, for several instances (see [Scale-out on Redis](scale-out.md)). Not together with `store.path`"
  }),
  lease: withDefault(DurationString, () => Duration.seconds(10)).annotations({
    description:
      "Redis only: how long deliveries held by an instance that stopped renewing them (it died) wait before another instance takes them over; at least `1s`"
  }),
  prefix: withDefault(Schema.String.pipe(Schema.minLength(1)), () => "sip-tenant-router:").annotations({
    description: "Redis only: prefix of every key and channel, so deployments can share a database"
  })
})

/** An OTLP/HTTP collector's base URL; the signals' paths (`/v1/traces`, `/v1/metrics`) are appended. */
const OtlpEndpoint = Schema.String.pipe(
  Schema.filter((text) => {
    const url = URL.parse(text)
    return (url !== null && (url.protocol === "http:" || url.protocol === "https:") && url.search === "" && url.hash === "") || "must be an http(s) URL"
  })
)

/** OpenTelemetry export. Without an endpoint nothing is exported, and the tracing SDK is never loaded. */
const Telemetry = Schema.Struct({
  serviceName: withDefault(Schema.String.pipe(Schema.minLength(1)), () => "sip-tenant-router").annotations({
    description: "the `service.name` of everything exported. Env `OTEL_SERVICE_NAME` overrides"
  }),
  sampleRatio: withDefault(Schema.Number.pipe(Schema.between(0, 1)), () => 1).annotations({
    description: "the share of traces recorded, from 0 to 1, decided by trace id: an event's spans are all kept or all dropped"
  }),
  otlp: withDefault(
    Schema.Struct({
      endpoint: Schema.optional(OtlpEndpoint).annotations({
        description:
          "an OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`): spans go to `/v1/traces`, metrics to `/v1/metrics` (see [Telemetry](metrics-and-logs.md#telemetry)). Without it nothing is exported, and neither the tracing SDK nor the exporters are loaded. Env `OTEL_EXPORTER_OTLP_ENDPOINT` overrides"
      }),
      protocol: withDefault(Schema.Literal("http/protobuf", "http/json"), () => "http/protobuf" as const).annotations({
        description: "or `http/json`. Env `OTEL_EXPORTER_OTLP_PROTOCOL` overrides"
      }),
      interval: withDefault(DurationString, () => Duration.seconds(10)).annotations({ description: "how often metrics are exported" })
    }),
    () => ({ protocol: "http/protobuf" as const, interval: Duration.seconds(10) })
  )
})

export const RouterConfig = Schema.Struct({
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
        description: "how often the config file is checked for edits to `hooks` and `numbers` (it is also watched)"
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
  sharedDomains: withDefault(Schema.Array(HostPattern), () => []).annotations({
    description:
      "domains that identify no tenant: route those calls by dialled number (read at start: a change needs a restart; see [Shared domains](carrier-setup.md#shared-domains))"
  }),
  numbers: withDefault(Schema.Array(NumberMapping), () => []).annotations({
    description: "dialled number → hook host, for shared domains; reloaded like `hooks`"
  }),
  hooks: withDefault(Schema.Array(Hook), () => []).annotations({
    description: "the tenants' webhooks (see [Hooks](#hooks)); reloaded while the router runs"
  })
})
export type RouterConfig = typeof RouterConfig.Type

/** Environment variables that override or extend the file (secrets usually come from here). */
export type ConfigEnv = {
  readonly LIVEKIT_API_KEY?: string | undefined
  readonly LIVEKIT_API_SECRET?: string | undefined
  readonly ROUTER_ADMIN_TOKEN?: string | undefined
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
  return { ...raw, livekit, admin, ...(Object.keys(telemetry).length > 0 ? { telemetry } : {}) }
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

const decodeRouterConfig = Schema.decodeUnknownEither(RouterConfig, { onExcessProperty: "error" })
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
  if (Either.isLeft(decoded)) return Either.left(new ConfigError(firstProblem(decoded.left, "(root)")))
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
