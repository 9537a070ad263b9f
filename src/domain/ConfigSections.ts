import { Duration, Schema } from "effect"
import { DurationString } from "./Duration.ts"
import { HostPattern, TargetUrl, WebhookSecret } from "./Hook.ts"
import { keyTextProblem } from "./SecretBox.ts"

// The sections of the config file, one schema each; Config.ts puts them together and checks
// what a schema cannot express.

const Port = Schema.Int.pipe(Schema.between(0, 65535))
const Positive = Schema.Int.pipe(Schema.positive())

// Defaults live in the schema so a minimal file and a full one decode to the same shape.
export const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value as never, exact: true })

// Each key's meaning is a `description` on its property signature (a required key is wrapped in
// `Schema.propertySignature` to carry one), not on its schema: the configuration reference is
// generated from these (scripts/config-reference.ts), and a schema's own description would
// replace the "Expected ..." part of its decoding errors.

export const Server = Schema.Struct({
  host: withDefault(Schema.String, () => "0.0.0.0").annotations({ description: "listen address" }),
  port: withDefault(Port, () => 8080).annotations({ description: "listen port (`0` picks a free one; the `listening` log line says which)" }),
  maxBodyBytes: withDefault(Positive, () => 1_048_576).annotations({
    description: "larger webhook or admin bodies get 413, whatever their size (no more than this is ever read)"
  }),
  drainTimeout: withDefault(DurationString, () => Duration.seconds(10)).annotations({
    description: "on SIGTERM/SIGINT, how long attempts in flight may finish before the process stops"
  }),
  maxWebhooksWaiting: withDefault(Positive, () => 256).annotations({
    description:
      "webhooks being read or waiting for the store at once; beyond this LiveKit gets 503 with `Retry-After: 1` before the body is read, so a burst past capacity cannot grow memory or latency without bound (see [Overload](operations.md#overload))"
  })
})

export const LiveKit = Schema.Struct({
  apiKey: Schema.propertySignature(Schema.String.pipe(Schema.minLength(1))).annotations({
    description: "the key LiveKit signs webhooks with (`webhook.api_key` in LiveKit's config). Env `LIVEKIT_API_KEY` overrides"
  }),
  apiSecret: Schema.propertySignature(Schema.Redacted(Schema.String.pipe(Schema.minLength(1)))).annotations({
    description: "that key's secret. Env `LIVEKIT_API_SECRET` overrides"
  })
})

const Token = Schema.Redacted(Schema.String.pipe(Schema.minLength(16, { message: () => "admin tokens must be at least 16 characters" })))

/** An origin a page may frame the console from: scheme and host (and port), nothing a CSP would read as another directive. */
const FrameAncestor = Schema.String.pipe(
  Schema.pattern(/^https?:\/\/(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/, { message: () => "an origin such as https://app.example.com" })
)

const TenantToken = Schema.Struct({
  token: Schema.propertySignature(Token).annotations({ description: "the bearer token (16+ chars)" }),
  hosts: Schema.propertySignature(Schema.Array(HostPattern).pipe(Schema.minItems(1))).annotations({
    description: "the hosts and wildcards it may see and change (at least one)"
  })
})

export const Admin = Schema.Struct({
  tokens: withDefault(Schema.Array(Token), () => []).annotations({
    description: "operator bearer tokens for the admin API (16+ chars): every host. Env `ROUTER_ADMIN_TOKEN` adds one. No token: the admin API answers 401. Reloaded while the router runs"
  }),
  tenantTokens: withDefault(Schema.Array(TenantToken), () => []).annotations({
    description:
      "tenant tokens: each confined to its hosts and whatever lies under its wildcards (see [Tokens](admin-api.md#tokens)); reloaded while the router runs. Tokens can also be made and revoked through the API (`POST /v1/tokens`)"
  }),
  metricsToken: Schema.optional(Token).annotations({
    description:
      "a bearer token `/metrics` then requires (16+ chars; Prometheus sends it with `authorization` in its scrape config). Without it `/metrics`, whose labels name every tenant, answers anyone who can reach the port (see [Hardening](edge-hardening.md))"
  }),
  docs: withDefault(Schema.Boolean, () => true).annotations({
    description:
      "serve the admin API's OpenAPI document (`/openapi.json`) and its reference (`/docs`) without a token (they describe the API, never its data); `false`: both 404"
  }),
  console: withDefault(Schema.Boolean, () => true).annotations({
    description: "serve the console and tenant portal at `/console/` (see [Console](console.md)); `false`: it 404s, and the API still takes sessions"
  }),
  sessionTtl: withDefault(DurationString, () => Duration.hours(8)).annotations({
    description: "how long a console session lasts after sign-in (its cookie expires with it; sign-out ends it sooner)"
  }),
  portalLinkTtl: withDefault(DurationString, () => Duration.minutes(15)).annotations({
    description: "how long a tenant portal link (`POST /v1/tenants/{host}/portal-links`) can be opened, once"
  }),
  secureCookies: withDefault(Schema.Boolean, () => false).annotations({
    description:
      "mark session cookies `Secure` on every request: set it when TLS ends at a proxy in front of the router (a request that reaches the router over https, or with `X-Forwarded-Proto: https`, gets `Secure` anyway)"
  }),
  portalFrameAncestors: withDefault(Schema.Array(FrameAncestor), () => []).annotations({
    description:
      "origins that may show the console in a frame (`https://app.example.com`), for embedding the tenant portal in your own product; empty: no page may frame it"
  })
})

export const Signing = Schema.Struct({
  // `decodeConfig` requires it only while some file hook has none.
  secret: Schema.optional(WebhookSecret).annotations({
    description:
      "`whsec_…` secret for hooks without their own, and alerts without `alerts.secret`. Required only while some hook in the file has none (a table from the HTTP source with such a hook is refused while it is unset); API hooks always get their own. Reloaded while the router runs (it cannot be removed then); a change overlaps like a rotation"
  }),
  rotationOverlap: withDefault(DurationString, () => Duration.hours(24)).annotations({
    description:
      "after a secret changes (`rotate-secret`, or a hook's `secret` or `signing.secret` edited in the config file or the HTTP source, while running or between runs), how long deliveries also carry a signature with the old one (see [Rotating secrets](tenants.md#rotating-secrets))"
  })
})

export const RemoteHooks = Schema.Struct({
  url: Schema.propertySignature(TargetUrl).annotations({
    description: 'the source\'s URL (http or https, without credentials), answering `{"hooks": [...], "numbers": [...]}`'
  }),
  interval: withDefault(DurationString, () => Duration.seconds(30)).annotations({ description: "how often it is polled (with `If-None-Match`)" }),
  token: Schema.optional(Schema.Redacted(Schema.String.pipe(Schema.minLength(1)))).annotations({ description: "sent as `Authorization: Bearer …`" })
})

const CircuitBreaker = Schema.Struct({
  failureThreshold: withDefault(Positive, () => 5).annotations({
    description: "consecutive failures (timeouts, network errors, 408, 5xx) that open a tenant's circuit; keep it below `maxAttempts`"
  }),
  cooldown: withDefault(DurationString, () => Duration.seconds(30)).annotations({
    description: "how long an open circuit waits before one probe; doubles after a failed probe (which spends no attempt of the delivery it probed), up to `delivery.maxBackoff` (or the cooldown itself, if longer)"
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

export const Delivery = Schema.Struct({
  timeout: withDefault(DurationString, () => Duration.seconds(5)).annotations({ description: "per attempt" }),
  maxAttempts: withDefault(Positive, () => 8).annotations({
    description:
      "attempts a delivery may spend, including the first, while its tenant answers; an outage (an open circuit) spends none, its probes included, so a tenant that is down waits until it is back or `disableAfter` disables it (see [Outages](operations.md#outages-pause-delivery-they-do-not-spend-it))"
  }),
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

export const DAY = Duration.days(1)

export const Retention = Schema.Struct({
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

/** A key of `store.encryptionKey`: base64 of 32 bytes, Redacted once decoded; no message about a refused one quotes it. */
const EncryptionKey = Schema.Redacted(
  Schema.String.annotations({ message: () => ({ message: "expected base64 of 32 random bytes, as a string (the key is not shown)", override: true }) }).pipe(
    Schema.filter((text) => keyTextProblem(text) ?? true)
  )
)

/** One key, or a list whose first encrypts and all decrypt; decoded as the list (one key: a list of one, named by its position 0). */
const EncryptionKeys = Schema.transform(
  Schema.Unknown,
  Schema.Array(EncryptionKey)
    .annotations({ message: () => ({ message: "expected a key, or a list of keys (the keys are not shown)", override: false }) })
    .pipe(Schema.minItems(1, { message: () => "expected at least one key" })),
  { strict: false, decode: (given) => (typeof given === "string" ? [given] : given), encode: (keys) => keys }
)

/** Either the embedded SQLite file (`path`) or a shared Redis (`redis`); `decodeConfig` refuses both at once. */
export const Store = Schema.Struct({
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
  }),
  encryptionKey: Schema.optional(EncryptionKeys).annotations({
    description:
      "base64 of 32 random bytes (`openssl rand -base64 32`), or a list of them: hook secrets, credentials and header values, and the secrets copied into pins and deliveries, are stored encrypted with the first (AES-256-GCM), and read with whichever one they name, so a list rotates keys (see [Encryption at rest](operations.md#encryption-at-rest)). A store holding encrypted values does not start without their key. Env `ROUTER_ENCRYPTION_KEY` (comma-separated for a list) overrides"
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
export const Telemetry = Schema.Struct({
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
