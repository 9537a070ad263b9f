import { Redacted, Schema } from "effect"
import { isSealed, SEALED_PREFIX } from "./SecretBox.ts"
import { excerpt } from "./Untrusted.ts"

/**
 * A hook's own request headers and endpoint credentials, sent on every
 * delivery and test send. Both are write-only: the admin API shows header
 * names and whether there is `auth`, never a value, and no message about a
 * refused value quotes it (it may be a key).
 */

/** At most this many headers per hook. */
export const MAX_HEADERS = 32
/** Longest header name, in characters. */
export const MAX_HEADER_NAME = 128
/** Longest header value, in characters. */
export const MAX_HEADER_VALUE = 4096

/** RFC 9110 `token`: the characters a field name may have. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** RFC 9110 field value: visible characters, obs-text, spaces and tabs inside; no controls (CR, LF, NUL, ...). */
const FIELD_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own: meaningless or harmful end to end. */
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]

/** Names the router sets itself, with why a hook may not. */
const RESERVED: ReadonlyMap<string, string> = new Map([
  ...HOP_BY_HOP.map((name) => [name, "a hop-by-hop header cannot be set"] as const),
  ["host", "the router sets Host from the hook's url"],
  ["content-type", "the router sets Content-Type (application/json)"],
  ["content-length", "the router sets Content-Length"],
  ["authorization", "use the hook's auth (basic or bearer) to send Authorization"],
  ["traceparent", "the router sets traceparent (the attempt's trace)"],
  ["tracestate", "the router sets the trace context"]
])

/** Why `name` cannot be a hook header; undefined when it can. Case-insensitive. */
export const headerNameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "expected a header name, got an empty one"
  if (name.length > MAX_HEADER_NAME) return `expected a header name of at most ${MAX_HEADER_NAME} characters`
  if (!TOKEN.test(name)) return `expected a header name of letters, digits and !#$%&'*+-.^_\`|~, got ${excerpt(name)}`
  const lower = name.toLowerCase()
  if (lower.startsWith("webhook-")) return "webhook-* headers are the router's signature headers (Standard Webhooks)"
  return RESERVED.get(lower)
}

/** Why `value` cannot be a header value; undefined when it can. Never quotes the value. */
export const headerValueProblem = (value: string): string | undefined => {
  if (value.length > MAX_HEADER_VALUE) return `value too long (at most ${MAX_HEADER_VALUE} characters; the value is not shown)`
  if (!FIELD_VALUE.test(value))
    return "invalid value: only visible characters, spaces and tabs, with no leading or trailing space and no CR, LF, NUL or other controls (the value is not shown)"
  return sealedLookalike(value)
}

/** The store tells an encrypted value by its prefix: a plain one that starts so would be read as one, and fail. */
const sealedLookalike = (value: string): string | undefined =>
  isSealed(value) ? `a value may not start with "${SEALED_PREFIX}", the form of an encrypted value (the value is not shown)` : undefined

/** The first problem in a set of headers, with the header at fault (none when it is the set itself). */
export const headersProblem = (headers: Readonly<Record<string, string>>): { readonly name: string | undefined; readonly problem: string } | undefined => {
  const names = Object.keys(headers)
  if (names.length > MAX_HEADERS) return { name: undefined, problem: `expected at most ${MAX_HEADERS} headers, got ${names.length}` }
  const seen = new Set<string>()
  for (const name of names) {
    const problem = headerNameProblem(name) ?? headerValueProblem(headers[name]!)
    if (problem) return { name, problem }
    const lower = name.toLowerCase()
    if (seen.has(lower)) return { name, problem: "duplicate header name (names are case-insensitive)" }
    seen.add(lower)
  }
  return undefined
}

/** A text whose decode errors never show it. */
const hiddenText = (what: string) => Schema.String.annotations({ message: () => ({ message: `expected ${what} as a string (the value is not shown)`, override: true }) })

// Refused here, as a key: an object would take `__proto__` as its prototype, silently dropping the header.
const HeaderKey = Schema.String.pipe(Schema.filter((name) => name !== "__proto__" || "expected a header name, got \"__proto__\""))

/** Once decoded, the values are Redacted: they show as `<redacted>` wherever a hook is logged or printed. */
const redactedValues = Schema.Record({ key: Schema.String, value: Schema.Redacted(Schema.String) })

/** `{Name: value}`: headers added to every request to the hook. */
export const HookHeaders = Schema.Record({ key: HeaderKey, value: hiddenText("a header value") })
  .annotations({ message: () => ({ message: "expected an object of header names to values", override: false }) })
  .pipe(
    Schema.filter((headers) => {
      const found = headersProblem(headers)
      return found === undefined || (found.name === undefined ? found.problem : { path: [found.name], message: found.problem })
    }),
    Schema.annotations({
      identifier: "HookHeaders",
      description:
        "Headers added to every delivery and test send; never shown back. Not Host, Content-Type, Content-Length, Authorization (use auth), traceparent, tracestate, webhook-*, or hop-by-hop headers; no value (nor a basic password) may start with `enc:v1:`, the form of an encrypted value.",
      jsonSchema: { maxProperties: MAX_HEADERS, propertyNames: { pattern: TOKEN.source, maxLength: MAX_HEADER_NAME } }
    }),
    Schema.compose(redactedValues)
  )
export type HookHeaders = typeof HookHeaders.Type

const NO_CONTROLS = /^[^\x00-\x1f\x7f]*$/

const BasicAuth = Schema.Struct({
  username: hiddenText("a username").pipe(
    Schema.filter((s) => (s.length > 0 && s.length <= 256 && !s.includes(":") && NO_CONTROLS.test(s)) || "expected 1 to 256 characters, no ':' and no controls (the value is not shown)")
  ),
  password: hiddenText("a password").pipe(
    Schema.filter((s) => (s.length <= 1024 && NO_CONTROLS.test(s)) || "expected at most 1024 characters and no controls (the value is not shown)"),
    Schema.filter((s) => sealedLookalike(s) ?? true)
  )
}).annotations({ message: () => ({ message: "expected {username, password} (the value is not shown)", override: false }) })

/** RFC 6750 `b64token`: what a bearer token may be. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

const BearerToken = hiddenText("a token").pipe(
  Schema.filter(
    (s) => (s.length <= 4096 && B64TOKEN.test(s)) || "expected a bearer token: 1 to 4096 letters, digits and -._~+/ (then =), the value is not shown"
  )
)

/** Once decoded, the password and the token are Redacted. */
const redactedAuth = Schema.Struct({
  basic: Schema.optional(Schema.Struct({ username: Schema.String, password: Schema.Redacted(Schema.String) })),
  bearer: Schema.optional(Schema.Redacted(Schema.String))
})

/** `{basic: {username, password}}` or `{bearer: TOKEN}`: sent as `Authorization` on every request to the hook. */
export const HookAuth = Schema.Struct({ basic: Schema.optional(BasicAuth), bearer: Schema.optional(BearerToken) })
  .annotations({ message: () => ({ message: "expected {basic: {username, password}} or {bearer: TOKEN} (the value is not shown)", override: false }) })
  .pipe(
    Schema.filter((auth) => (auth.basic === undefined) !== (auth.bearer === undefined) || "expected exactly one of basic or bearer"),
    Schema.annotations({
      identifier: "HookAuth",
      description: "Exactly one of basic or bearer, sent as Authorization on every delivery and test send; never shown back.",
      jsonSchema: { minProperties: 1, maxProperties: 1 }
    }),
    Schema.compose(redactedAuth)
  )
export type HookAuth = typeof HookAuth.Type

const authorizations = new WeakMap<HookAuth, string>()

/** The `Authorization` value for a hook's auth (Basic: base64 of `username:password` in UTF-8), worked out once per auth. */
export const authorizationOf = (auth: HookAuth | undefined): string | undefined => {
  if (auth === undefined) return undefined
  let value = authorizations.get(auth)
  if (value === undefined) {
    value = auth.basic
      ? `Basic ${Buffer.from(`${auth.basic.username}:${Redacted.value(auth.basic.password)}`, "utf8").toString("base64")}`
      : `Bearer ${Redacted.value(auth.bearer!)}`
    authorizations.set(auth, value)
  }
  return value
}
