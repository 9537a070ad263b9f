import { Either, ParseResult, Redacted, Schema } from "effect"
import { HookAuth, HookHeaders } from "./HookHeaders.ts"
import { readE164, spellingProblem, type Country } from "./PhoneNumber.ts"
import { parseDurationMs } from "./Duration.ts"
import { parseRateLimit, type RateLimit } from "./RateLimit.ts"
import { refusedTargetHost } from "./TargetAddress.ts"
import { excerpt } from "./Untrusted.ts"

/** The LiveKit webhook events. */
export const LIVEKIT_EVENTS = [
  "room_started",
  "room_finished",
  "participant_joined",
  "participant_left",
  "participant_connection_aborted",
  "track_published",
  "track_unpublished",
  "egress_started",
  "egress_updated",
  "egress_ended",
  "ingress_started",
  "ingress_ended",
  "agent_job_started",
  "agent_job_ended"
] as const

/** The events the router derives from a call's LiveKit events (see CallEvents.ts); a hook gets them only when it lists them. */
export const CALL_EVENTS = ["call.started", "call.ended"] as const
export type CallEventType = (typeof CALL_EVENTS)[number]

/** What a hook's `events` may list: a LiveKit event, a call event, or `*` for every LiveKit event. */
export const EventName = Schema.Literal(...LIVEKIT_EVENTS, ...CALL_EVENTS, "*").annotations({
  // Without override, the error would name only the first literal of the union.
  message: (issue) => ({
    message: `expected a LiveKit event name (room_started, participant_joined, participant_left, track_published, ...), call.started, call.ended or "*", got ${typeof issue.actual === "string" ? excerpt(issue.actual) : `a ${Array.isArray(issue.actual) ? "list" : typeof issue.actual}`}`,
    override: true
  })
})
export type EventName = typeof EventName.Type

/**
 * Whether a hook's filter takes an event. No filter: every LiveKit event and no call event,
 * so tenants from before call events see nothing new; `*` stands for every LiveKit event.
 */
export const wantsEvent = (events: ReadonlyArray<EventName> | undefined, event: string): boolean => {
  const isCallEvent = (CALL_EVENTS as ReadonlyArray<string>).includes(event)
  if (events === undefined) return !isCallEvent
  return events.includes(event as EventName) || (!isCallEvent && events.includes("*"))
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/

/** True for a DNS name made of valid labels (already lower-cased). */
export const isHostname = (host: string): boolean =>
  host.length <= 253 && host.split(".").every((label) => LABEL.test(label))

/** How a host pattern is stored: trimmed, lower-case, without a trailing dot. */
export const normaliseHost = (s: string) => s.trim().toLowerCase().replace(/\.$/, "")

/** An exact host name, or `*.` and a name of at least two labels. Expects a normalised pattern. */
export const isHostPattern = (host: string) =>
  host.startsWith("*.") ? isHostname(host.slice(2)) && host.includes(".", 2) : isHostname(host)

/** Whether `name` lies under the wildcard `pattern` (`*.example.com`: any deeper subdomain, not the apex). */
export const isUnderWildcard = (name: string, pattern: string) => pattern.startsWith("*.") && name.endsWith(pattern.slice(1))

/**
 * A hook's host: an exact host name (`calls.drsmith.com`) or a wildcard
 * (`*.citydental.com`) matching any deeper subdomain. Stored lower-case.
 */
export const HostPattern = Schema.transform(Schema.String, Schema.String, {
  strict: true,
  decode: normaliseHost,
  encode: (s) => s
}).pipe(
  Schema.filter(
    (host) => isHostPattern(host) || `expected a host name like "calls.example.com" or a wildcard like "*.example.com", got ${excerpt(host)}`
  ),
  Schema.brand("HostPattern")
)
export type HostPattern = typeof HostPattern.Type

/** `whsec_` followed by base64 of 24–64 key bytes (Standard Webhooks). */
const WebhookSecretText = Schema.String.pipe(
  Schema.filter((s) => {
    if (!s.startsWith("whsec_")) return `expected a secret starting with "whsec_"`
    const body = s.slice("whsec_".length)
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return "expected base64 after whsec_"
    const bytes = Buffer.from(body, "base64").length
    return (bytes >= 24 && bytes <= 64) || `expected 24 to 64 key bytes after whsec_, got ${bytes}`
  }),
  Schema.brand("WebhookSecret")
)

/** A webhook secret, Redacted once decoded: it shows as `<redacted>` in any log line or JSON it ends up in. */
export const WebhookSecret = Schema.Redacted(WebhookSecretText)
export type WebhookSecret = typeof WebhookSecret.Type

/** A secret as it was stored: checked when it was written, so only redacted when read back. */
export const StoredSecret = Schema.Redacted(Schema.String)

/** Why a text is not an http(s) URL without credentials; undefined when it is one. */
export const targetUrlProblem = (s: string): string | undefined => {
  let url: URL
  try {
    url = new URL(s)
  } catch {
    return `expected an absolute URL, got ${excerpt(s)}`
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `expected an http or https URL, got ${excerpt(url.protocol)}`
  if (url.username || url.password) return "URL must not contain credentials"
  return undefined
}

/** An http(s) URL without credentials. */
export const TargetUrl = Schema.String.pipe(Schema.filter((s) => targetUrlProblem(s) ?? true))

/** A setting written as text, parsed once when decoded, and shown as it was written. */
const parsedText = <A extends object>(parse: (text: string) => A | undefined, expected: string) =>
  // Only a parsed setting is one (not any value), so a union such as `NullOr` encodes null as null.
  Schema.transformOrFail(Schema.String, Schema.declare((u): u is A & { readonly text: string } => typeof u === "object" && u !== null && "text" in u), {
    strict: true,
    decode: (text, _, ast) => {
      const parsed = parse(text)
      return parsed === undefined ? ParseResult.fail(new ParseResult.Type(ast, text, `expected ${expected}, got ${excerpt(text)}`)) : ParseResult.succeed({ ...parsed, text })
    },
    encode: (setting) => ParseResult.succeed(setting.text)
  })

/** `50/s`, `600/m`, `1000/h`: requests a tenant accepts per unit of time. */
export const RateLimitSetting = parsedText(parseRateLimit, 'a rate like "50/s", "600/m" or "1000/h"')
export type RateLimitSetting = RateLimit & { readonly text: string }

/** `30s`, `10m`, `1h`: how old an event may be when its attempt comes due; older ones expire unsent. */
export const MaxAge = parsedText((text) => {
  const ms = parseDurationMs(text)
  return ms !== undefined && ms > 0 ? { ms } : undefined
}, 'a duration like "30s", "10m" or "1h"')
export type MaxAge = { readonly ms: number; readonly text: string }

/**
 * What a hook holds besides its host. The descriptions serve both the config
 * reference (scripts/config-reference.ts) and the API's OpenAPI document.
 */
export const HookFields = Schema.Struct({
  url: Schema.propertySignature(TargetUrl).annotations({ description: "where the tenant's events are sent: http or https, without credentials" }),
  secret: Schema.optional(WebhookSecret).annotations({
    description:
      "`whsec_…` secret its deliveries are signed with. Without it, a hook from the config file or the HTTP source is signed with `signing.secret`; an API hook keeps its secret, or a new one gets a generated secret"
  }),
  events: Schema.optional(Schema.Array(EventName)).annotations({
    description:
      "what is forwarded: LiveKit event names, `*` (every LiveKit event), and the call events `call.started` and `call.ended`, sent only when listed. Without it: every LiveKit event and no call event. `room_started` never arrives: LiveKit sends it before any caller has pinned the room to a hook"
  }),
  rateLimit: Schema.optional(RateLimitSetting).annotations({ description: "`50/s`, `600/m` or `1000/h`: the most requests sent to the tenant per unit of time" }),
  maxAge: Schema.optional(MaxAge).annotations({
    description:
      "`30s`, `10m`, any duration above zero: an event older than that when its attempt comes due is not sent, and its delivery ends `expired`: how a voice tenant chooses freshness over completeness. Without it nothing expires, and an outage only delays (see [Freshness](#freshness-maxage))"
  }),
  headers: Schema.optional(HookHeaders).annotations({
    description: "`{X-Api-Key: \"…\"}`: headers added to every delivery and test send (at most 32); write-only"
  }),
  auth: Schema.optional(HookAuth).annotations({
    description: "`{basic: {username, password}}` or `{bearer: TOKEN}`, sent as `Authorization` on every delivery and test send; write-only"
  })
})

export const Hook = Schema.Struct({
  host: Schema.propertySignature(HostPattern).annotations({
    description: "an exact host (`calls.drsmith.com`) or a wildcard (`*.citydental.com`: any deeper subdomain, not the apex); unique"
  }),
  ...HookFields.fields
})
export type Hook = typeof Hook.Type

/** A number as the router keeps it: E.164 (`+15557654321`), a number the phone-number metadata finds possible. */
export const E164 = Schema.String.pipe(
  Schema.filter((s) => Either.getOrUndefined(readE164(s, undefined)) === s || `expected an E.164 number like "+15557654321", got ${excerpt(s)}`),
  Schema.brand("E164")
)
export type E164 = typeof E164.Type

/** A number as written, read in `country`: its E.164 form, or why it is none (in a sentence). */
export const readNumber = (text: string, country: Country | undefined): Either.Either<E164, string> => readE164(text, country) as Either.Either<E164, string>

/**
 * A number in a request, as written; the handler reads it in `defaultCountry`.
 * Text that spells no number in any country is refused here, so a path
 * parameter is judged before the body, as every other one is.
 */
export const NumberText = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(64),
  Schema.filter((text) => spellingProblem(text) ?? true)
).annotations({
  description: "a phone number in any common spelling: `+15557654321`, `+1 (555) 765-4321`, `tel:+1-555-765-4321`, or national (`(555) 765-4321`) when `defaultCountry` is set"
})

/**
 * A number as written (`+1 (555) 765-4321`, `tel:+1-555-765-4321`, or national,
 * `(555) 765-4321`, read in `country`), kept in E.164. Without a country a
 * national spelling is refused: the schema is made for the country in force.
 */
export const dialledNumber = (country: Country | undefined) =>
  Schema.transformOrFail(Schema.String, E164, {
    strict: true,
    decode: (text, _, ast) => Either.match(readNumber(text, country), { onLeft: (problem) => ParseResult.fail(new ParseResult.Type(ast, text, problem)), onRight: ParseResult.succeed }),
    encode: ParseResult.succeed
  })

/** Shared domains identify no tenant: the dialled number does, through these. */
export const numberMapping = (country: Country | undefined) =>
  Schema.Struct({
    number: Schema.propertySignature(dialledNumber(country)).annotations({
      description: "the dialled number (`sip.trunkPhoneNumber`) in any common spelling (a national one read in `defaultCountry`), kept in E.164"
    }),
    host: Schema.propertySignature(HostPattern).annotations({ description: "the hook host its calls go to: a host that one of the hooks beside it matches" })
  })
export const NumberMapping = numberMapping(undefined)
export type NumberMapping = typeof NumberMapping.Type

/** What one source (the config file, the HTTP source) contributes to the table; national numbers are read in `country`. */
export const hookSet = (country: Country | undefined) =>
  Schema.Struct({
    hooks: Schema.optionalWith(Schema.Array(Hook), { default: () => [] }),
    numbers: Schema.optionalWith(Schema.Array(numberMapping(country)), { default: () => [] })
  })
export const HookSet = hookSet(undefined)
export type HookSet = typeof HookSet.Type

export const emptyHookSet: HookSet = { hooks: [], numbers: [] }

/**
 * Where a hook or number came from, in order of precedence: the config file,
 * then the HTTP source, then the admin API. The API cannot change what the
 * other two define.
 */
export type HookOrigin = "file" | "http" | "api"

/** An API hook as stored, with the secret it replaced while tenants roll over. */
export const StoredHook = Schema.Struct({
  ...Hook.fields,
  previousSecret: Schema.optional(WebhookSecret),
  /** Until when (ms) deliveries carry a signature with `previousSecret` too. */
  previousSecretUntil: Schema.optional(Schema.Number)
})
export interface StoredHook extends Schema.Schema.Type<typeof StoredHook> {}

export interface ActiveHook extends StoredHook {
  readonly source: HookOrigin
}

/** `signing.secret` as in force (it reloads with the file), and the secret it replaced while that rotation overlaps. */
export interface DefaultSigning {
  readonly secret: WebhookSecret | undefined
  readonly previousSecret?: WebhookSecret | undefined
  readonly previousSecretUntil?: number | undefined
}

const overlapping = (signer: { readonly previousSecret?: Redacted.Redacted | undefined; readonly previousSecretUntil?: number | undefined }, now: number) =>
  signer.previousSecret !== undefined && (signer.previousSecretUntil ?? 0) > now ? [signer.previousSecret] : []

// A rotation seen from an instance whose file lags could name the same secret twice: one signature each.
const distinct = (secrets: ReadonlyArray<Redacted.Redacted>) =>
  secrets.filter((secret, i) => secrets.findIndex((other) => Redacted.value(other) === Redacted.value(secret)) === i)

/**
 * The secrets a delivery is signed with: the hook's own (or the default), then
 * the one it replaced while the rotation overlaps. Empty only for a delivery
 * stored under a default secret the config no longer has.
 */
export const signingSecrets = (hook: StoredHook | undefined, defaults: DefaultSigning, now: number): ReadonlyArray<Redacted.Redacted> =>
  hook?.secret !== undefined
    ? distinct([hook.secret, ...overlapping(hook, now)])
    : // Signed with the default: its rotation, and the hook's own last secret while that overlaps.
      distinct([...(defaults.secret === undefined ? [] : [defaults.secret, ...overlapping(defaults, now)]), ...(hook ? overlapping(hook, now) : [])])

/**
 * What a delivery is signed with now. While the hook still points where the
 * delivery goes, its current secrets, so a call follows the tenant's rotations;
 * once it was removed or moved, the call's pinned destination, as it was (or,
 * pinned without a secret of its own, the default and its rotation).
 */
export const deliverySecrets = (
  hook: StoredHook | undefined,
  delivery: { readonly url: string; readonly secret: Redacted.Redacted | null },
  defaults: DefaultSigning,
  now: number
): ReadonlyArray<Redacted.Redacted> => {
  if (hook?.url === delivery.url) return signingSecrets(hook, defaults, now)
  if (delivery.secret !== null) return [delivery.secret]
  return defaults.secret === undefined ? [] : distinct([defaults.secret, ...overlapping(defaults, now)])
}

/** The index of the first hook with no secret of its own: it is signed with `signing.secret`, which must then be set. */
export const hookWithoutSecret = (set: Pick<HookSet, "hooks">): number | undefined => {
  const index = set.hooks.findIndex((hook) => hook.secret === undefined)
  return index === -1 ? undefined : index
}

export interface ActiveNumber extends NumberMapping {
  readonly source: HookOrigin
}

/** Registration-time target check; names are checked again when a delivery resolves them. */
export const targetProblem = (url: string, allowPrivateTargets: boolean): string | undefined =>
  allowPrivateTargets ? undefined : refusedTargetHost(new URL(url))

/**
 * Whether a hook of `hooks` matches `host` as routing does (the host itself, or
 * a wildcard it lies under): one set lookup per label, however many hooks.
 */
export const hostsMatcher = (hooks: ReadonlyArray<Pick<Hook, "host">>) => {
  const hosts = new Set(hooks.map((hook) => hook.host as string))
  return (host: string) => {
    if (hosts.has(host)) return true
    for (let dot = host.indexOf("."); dot !== -1; dot = host.indexOf(".", dot + 1)) if (hosts.has(`*${host.slice(dot)}`)) return true
    return false
  }
}

/** The first problem in a set of hooks: duplicate hosts or numbers, refused targets, numbers no hook of the set matches; with the key at fault. */
export const hookSetProblem = (
  set: HookSet,
  allowPrivateTargets: boolean
): { readonly key: string; readonly problem: string } | undefined => {
  const seen = new Set<string>()
  for (const [i, hook] of set.hooks.entries()) {
    if (seen.has(hook.host)) return { key: `hooks.${i}.host`, problem: `duplicate host "${hook.host}"` }
    seen.add(hook.host)
    const refused = targetProblem(hook.url, allowPrivateTargets)
    if (refused) return { key: `hooks.${i}.url`, problem: `${refused} (set security.allowPrivateTargets to allow it)` }
  }
  const numbers = new Set<string>()
  const matched = hostsMatcher(set.hooks)
  for (const [i, mapping] of set.numbers.entries()) {
    if (numbers.has(mapping.number)) return { key: `numbers.${i}.number`, problem: `duplicate number "${mapping.number}"` }
    numbers.add(mapping.number)
    // Its calls would be unmapped, silently: a number must name a host its own set's hooks match.
    if (!matched(mapping.host)) return { key: `numbers.${i}.host`, problem: `no hook matches "${mapping.host}": add its hook beside the number, or map ${mapping.number} to a host one matches` }
  }
  return undefined
}
