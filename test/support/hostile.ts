/**
 * Helpers for the hostile-input suite (test/hostile.test.ts): how an answer is
 * judged, generators of hostile requests as small printable "recipes" (so a
 * shrunk counterexample stays readable even when the request it builds is
 * 100 KB), and a raw HTTP/1.1 client for request targets `fetch` would
 * normalise (`..`, `%2e%2e`).
 */
import { createHash } from "node:crypto"
import fc from "fast-check"
import { AccessToken } from "livekit-server-sdk"
import { API_KEY, API_SECRET } from "./livekit.ts"

// ---------------------------------------------------------------- fast-check parameters

/**
 * Bounded runs; `FC_SEED` (and `FC_PATH`, both printed by fast-check on a
 * failure) replay one. The time limit also bounds shrinking: whatever
 * counterexample was reached by then is still reported.
 */
export const fcParams = <T = unknown>(numRuns: number, timeLimitMs = 20_000): fc.Parameters<T> => ({
  numRuns,
  interruptAfterTimeLimit: timeLimitMs,
  ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_SEED && process.env.FC_PATH ? { path: process.env.FC_PATH } : {})
})

// ---------------------------------------------------------------- answers

export interface Answer {
  readonly status: number
  readonly contentType: string
  readonly text: string
  /** Header names and values, for the secret check. */
  readonly headerText: string
}

export const answerOf = async (response: Response): Promise<Answer> => ({
  status: response.status,
  contentType: response.headers.get("content-type") ?? "",
  text: await response.text(),
  headerText: [...response.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n")
})

/** One line for an error message: status, type and the start of the body. */
export const show = (a: Answer) => `${a.status} [${a.contentType}] ${JSON.stringify(a.text.length > 300 ? a.text.slice(0, 300) + "…" : a.text)}`

export const MAX_MESSAGE = 512

export interface ErrorBody {
  readonly code: string
  readonly message: string
}

/** The documented error body, exactly `{"error":{"code","message"}}`, or a description of what is wrong with it. */
export const errorBodyOf = (a: Answer): ErrorBody | string => {
  if (!a.contentType.toLowerCase().startsWith("application/json")) return `content-type is ${JSON.stringify(a.contentType)}, not application/json`
  let json: any
  try {
    json = JSON.parse(a.text)
  } catch {
    return "body is not JSON"
  }
  const keys = (v: unknown) => (v && typeof v === "object" && !Array.isArray(v) ? Object.keys(v).sort().join(",") : "")
  if (keys(json) !== "error") return `body keys are [${keys(json)}], not [error]`
  if (keys(json.error) !== "code,message") return `error keys are [${keys(json.error)}], not [code,message]`
  const { code, message } = json.error
  if (typeof code !== "string" || code === "") return "error.code is not a non-empty string"
  if (typeof message !== "string" || message === "") return "error.message is not a non-empty string"
  if (message.length > MAX_MESSAGE) return `error.message is ${message.length} characters (> ${MAX_MESSAGE})`
  return { code, message }
}

/** Labelled secrets; a `whsec_` secret's key part alone is as secret as the whole. */
export const secretNeedles = (secrets: Record<string, string>) =>
  Object.entries(secrets).flatMap(([label, secret]) =>
    secret.startsWith("whsec_") ? [[label, secret] as const, [label, secret.slice("whsec_".length)] as const] : [[label, secret] as const]
  )

/**
 * Problems with an answer that hold for EVERY request: no 5xx but 503, every
 * 4xx in the documented JSON shape with a bounded message, never an HTML page,
 * never a secret.
 */
export const universalProblems = (a: Answer, needles: ReadonlyArray<readonly [string, string]>): string[] => {
  const problems: string[] = []
  if (a.status >= 500 && a.status !== 503) problems.push(`status ${a.status}`)
  if (a.status >= 400 && a.status < 500) {
    const body = errorBodyOf(a)
    if (typeof body === "string") problems.push(`4xx ${body}`)
  }
  if (/<!doctype html|<html/i.test(a.text)) problems.push("an HTML page")
  for (const [label, needle] of needles) if (a.text.includes(needle) || a.headerText.includes(needle)) problems.push(`leaks ${label}`)
  return problems
}

/** Fails (for fast-check to report and shrink) with what was sent and what came back. */
export const fail = (what: string, problems: ReadonlyArray<string>, a?: Answer): never => {
  throw new Error(`${what}: ${problems.join("; ")}${a ? ` — got ${show(a)}` : ""}`)
}

// ---------------------------------------------------------------- LiveKit signatures over bytes

/** As `signAsLiveKit`, but over exact bytes (bodies that are not valid UTF-8). */
export const signBytesAsLiveKit = (body: Uint8Array, key = API_KEY, secret = API_SECRET): Promise<string> => {
  const token = new AccessToken(key, secret, { ttl: "5m" })
  token.sha256 = createHash("sha256").update(body).digest("base64")
  return token.toJwt()
}

// ---------------------------------------------------------------- JSON recipes

/**
 * A JSON value as a recipe. `deep` and `huge` are built as text, never as
 * objects: JSON.stringify of 50 000 levels would overflow the test's own stack.
 */
export type Val =
  | { readonly t: "json"; readonly v: unknown }
  | { readonly t: "huge"; readonly char: string; readonly n: number }
  | { readonly t: "deep"; readonly shape: "array" | "object"; readonly n: number }
  /** A JSON string with a raw (unescaped) control character: not valid JSON. */
  | { readonly t: "rawControl"; readonly code: number }
  /** Replaced at build time by the context (e.g. the sink's URL). */
  | { readonly t: "ctx"; readonly key: string }

export type Ctx = Readonly<Record<string, string>>

export const valText = (v: Val, ctx: Ctx = {}): string => {
  switch (v.t) {
    case "json":
      return JSON.stringify(v.v) ?? "null"
    case "huge":
      return JSON.stringify(v.char.repeat(v.n))
    case "deep":
      return v.shape === "array" ? "[".repeat(v.n) + "]".repeat(v.n) : '{"a":'.repeat(v.n) + "1" + "}".repeat(v.n)
    case "rawControl":
      return `"x${String.fromCharCode(v.code)}y"`
    case "ctx":
      return JSON.stringify(ctx[v.key] ?? "")
  }
}

/** An object as ordered fields (duplicates allowed: the last wins in JSON.parse). */
export const objectText = (fields: ReadonlyArray<readonly [string, Val]>, ctx: Ctx = {}) =>
  `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${valText(v, ctx)}`).join(",")}}`

export const json = (v: unknown): Val => ({ t: "json", v })

/** Strings that tend to break things: NUL, escapes, unicode, surrogates, SQL and path fragments. */
export const nastyString = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\\",
    '"',
    "'; DROP TABLE hooks; --",
    "../../etc/passwd",
    "%00",
    "%2F",
    "\ud800",
    "\udfff\ud800",
    "💥",
    "é",
    "\u202e",
    "\r\n",
    "null",
    "undefined",
    "__proto__",
    "constructor",
    "NaN",
    "1e309",
    "-0",
    "0x10"
  ),
  fc.string({ maxLength: 30 }),
  fc.fullUnicodeString({ maxLength: 20 })
)

/** Values of every JSON type, small, plus non-finite-ish numbers that JSON can carry. */
export const anyJson = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1e20, -1e308, 1.5, 2 ** 53 + 1, [], {}, [[]], { a: {} }),
  nastyString
)

/** A hostile value of any kind: small JSON, a huge string, a deep nesting (depth bounded by the caller's body limit). */
export const hostileVal = (opts: { maxDeep: number; maxHuge: number }): fc.Arbitrary<Val> =>
  fc.oneof(
    { weight: 5, arbitrary: anyJson.map(json) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("huge" as const), char: fc.constantFrom("a", "é", "\u0000", "💥", "\\", '"'), n: fc.integer({ min: 1, max: opts.maxHuge }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("deep" as const), shape: fc.constantFrom("array" as const, "object" as const), n: fc.integer({ min: 1, max: opts.maxDeep }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("rawControl" as const), code: fc.integer({ min: 0, max: 31 }) }) }
  )

// ---------------------------------------------------------------- path parameters

/** A valid host name of up to 253 characters: labels of 1–63 letters/digits/hyphens, not starting or ending with a hyphen. */
export const validLongHost = fc
  .array(fc.integer({ min: 1, max: 63 }), { minLength: 2, maxLength: 8 })
  .chain((lengths) =>
    fc.tuple(...lengths.map((n, i) => label(n, i === lengths.length - 1))).map((labels) => {
      // Drop labels from the front until the name fits 253 characters (two labels always do).
      const parts = [...labels]
      while (parts.join(".").length > 253) parts.shift()
      return parts.join(".")
    })
  )

function label(n: number, last: boolean) {
  const inner = fc.stringOf(fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-"), { minLength: Math.max(0, n - 2), maxLength: Math.max(0, n - 2) })
  const edge = fc.constantFrom(...(last ? "abcdefghijklmnopqrstuvwxyz" : "abcdefghijklmnopqrstuvwxyz0123456789"))
  return n === 1 ? edge : fc.tuple(edge, inner, edge).map(([a, b, c]) => a + b + c)
}

/** A host of exactly 253 characters (the DNS limit). */
export const host253 = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.com`

/** A path parameter as a recipe; `encode` says whether it is percent-encoded as a client library would. */
export type Param =
  | { readonly t: "text"; readonly v: string; readonly encode: boolean }
  | { readonly t: "huge"; readonly piece: string; readonly n: number }

/** Pieces for long parameters; each stays inside one path segment. */
export const HUGE_PIECES = ["a", "a.", "%2F", "%00", "..", "%2e", "*.", "é", "%E2%82%AC", "-", "%25", "+1"] as const

/** Long parameters repeat whole pieces (never a cut %XX), to at least `n` characters. */
/** Lone surrogates cannot be percent-encoded (UTF-8 has no bytes for them); a client sends U+FFFD instead. */
export const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")

export const encodeParam = (s: string) => encodeURIComponent(wellFormed(s))

export const paramText = (p: Param) => {
  if (p.t === "text") return p.encode ? encodeParam(p.v) : p.v
  const piece = encodeSegment(p.piece)
  return piece.repeat(Math.ceil(p.n / piece.length))
}

/** Characters a URL path segment cannot carry raw are encoded; existing %XX sequences are kept. */
const encodeSegment = (s: string) => s.replace(/[^A-Za-z0-9%.\-_~*+!$&'(),;=:@]/gu, (c) => encodeURIComponent(c))

export const hostileParam = (known: ReadonlyArray<string>): fc.Arbitrary<Param> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ t: fc.constant("text" as const), v: fc.constantFrom(...known), encode: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant("text" as const), v: fc.oneof(fc.domain(), validLongHost), encode: fc.boolean() }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("text" as const),
        v: fc.oneof(
          nastyString,
          fc.constantFrom("..", ".", "%2e%2e", "a%2Fb", "%2F..%2F", "a/b", "%00", "a%00.example.com", "%", "%zz", "%%", "*", "*.*", "+15557654321", "0", "-1", "1e3", "9".repeat(40), "%2A.example.com", "a..b", "x?y=1", "x#frag", "calls.drsmith.com.", "CALLS.DRSMITH.COM")
        ),
        encode: fc.boolean()
      })
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("huge" as const), piece: fc.constantFrom(...HUGE_PIECES), n: fc.integer({ min: 100, max: 10_240 }) }) }
  )

// ---------------------------------------------------------------- Authorization headers

export type Auth =
  | { readonly t: "none" }
  | { readonly t: "token"; readonly who: string }
  /** A near miss of a real token: prefix, extension, case, scheme. */
  | { readonly t: "variant"; readonly who: string; readonly how: "prefix" | "suffix" | "upper" | "noScheme" | "basic" | "doubleBearer" | "tab" | "trailingSpace" | "lowerScheme" }
  /** A LiveKit-style JWT (valid for the webhook, not for the admin API), or one made with a wrong secret. */
  | { readonly t: "jwt"; readonly secret: "livekit" | "wrong" }
  | { readonly t: "header"; readonly v: string }
  | { readonly t: "huge"; readonly char: string; readonly n: number }

/** Header-safe text: fetch refuses CR, LF, NUL and characters above U+00FF. */
const headerText = fc.stringOf(fc.char().filter((c) => c >= " " && c <= "~"), { maxLength: 60 })

export const hostileAuth = (who: ReadonlyArray<string>): fc.Arbitrary<Auth> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ t: fc.constant("token" as const), who: fc.constantFrom(...who) }) },
    { weight: 1, arbitrary: fc.constant({ t: "none" as const }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("variant" as const),
        who: fc.constantFrom(...who),
        how: fc.constantFrom("prefix" as const, "suffix" as const, "upper" as const, "noScheme" as const, "basic" as const, "doubleBearer" as const, "tab" as const, "trailingSpace" as const, "lowerScheme" as const)
      })
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("jwt" as const), secret: fc.constantFrom("livekit" as const, "wrong" as const) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("header" as const),
        v: fc.oneof(headerText, headerText.map((s) => `Bearer ${s}`), fc.constantFrom("", "Bearer", "Bearer ", "Bearer  ", "bearer", "Basic", "Digest x", "Bearer null", "Bearer undefined", "Bearer \t"))
      })
    },
    // Up to 8 KiB: above Bun's own header limit the connection is refused before the router sees it.
    { weight: 1, arbitrary: fc.record({ t: fc.constant("huge" as const), char: fc.constantFrom("a", "=", ".", " "), n: fc.integer({ min: 256, max: 8192 }) }) }
  )

/**
 * Who a request with this Authorization is: a caller's name, "nobody" (must be
 * 401), or undefined where the contract leaves it open (a tab or a trailing
 * blank around a real token).
 */
export const authorisedAs = (auth: Auth): string | undefined => {
  if (auth.t === "token") return auth.who
  if (auth.t === "variant") {
    if (auth.how === "lowerScheme") return auth.who // the scheme is case-insensitive
    if (auth.how === "tab" || auth.how === "trailingSpace") return undefined
  }
  return "nobody"
}

const variantHeader = (token: string, how: Extract<Auth, { t: "variant" }>["how"]) => {
  switch (how) {
    case "prefix":
      return `Bearer ${token.slice(0, -1)}`
    case "suffix":
      return `Bearer ${token}x`
    case "upper":
      return `Bearer ${token.toUpperCase()}`
    case "noScheme":
      return token
    case "basic":
      return `Basic ${Buffer.from(`admin:${token}`).toString("base64")}`
    case "doubleBearer":
      return `Bearer Bearer ${token}`
    case "tab":
      return `Bearer\t${token}`
    case "trailingSpace":
      return `Bearer ${token} `
    case "lowerScheme":
      return `bearer ${token}`
  }
}

export const authHeader = async (auth: Auth, tokens: Readonly<Record<string, string>>): Promise<string | undefined> => {
  switch (auth.t) {
    case "none":
      return undefined
    case "token":
      return `Bearer ${tokens[auth.who]}`
    case "variant":
      return variantHeader(tokens[auth.who]!, auth.how)
    case "jwt":
      return `Bearer ${auth.secret === "livekit" ? await signBytesAsLiveKit(new Uint8Array()) : await signBytesAsLiveKit(new Uint8Array(), API_KEY, "a-wrong-secret-0123456789abcdef")}`
    case "header":
      return auth.v
    case "huge":
      return `Bearer ${auth.char.repeat(auth.n)}`
  }
}

// ---------------------------------------------------------------- bodies

/** A request body as a recipe. `big` bodies are `n` bytes, sent with a Content-Length or as a chunked stream. */
export type Body =
  | { readonly t: "none" }
  | { readonly t: "text"; readonly text: string }
  | { readonly t: "value"; readonly v: Val }
  | { readonly t: "object"; readonly fields: ReadonlyArray<readonly [string, Val]> }
  | { readonly t: "bytes"; readonly bytes: ReadonlyArray<number> }
  | { readonly t: "big"; readonly n: number; readonly chunked: boolean; readonly shape: "json" | "junk" }

export type Built = { readonly text?: string; readonly bytes?: Uint8Array; readonly stream?: () => ReadableStream<Uint8Array>; readonly size: number }

export const buildBody = (body: Body, ctx: Ctx = {}): Built => {
  switch (body.t) {
    case "none":
      return { size: 0 }
    case "text":
      return { text: body.text, size: Buffer.byteLength(body.text) }
    case "value": {
      const text = valText(body.v, ctx)
      return { text, size: Buffer.byteLength(text) }
    }
    case "object": {
      const text = objectText(body.fields, ctx)
      return { text, size: Buffer.byteLength(text) }
    }
    case "bytes": {
      const bytes = Uint8Array.from(body.bytes)
      return { bytes, size: bytes.length }
    }
    case "big": {
      const text = body.shape === "json" ? `{"url":"${"a".repeat(Math.max(0, body.n - 10))}"}`.slice(0, Math.max(body.n, 0)) : "x".repeat(body.n)
      const padded = text.length < body.n ? text + " ".repeat(body.n - text.length) : text
      return body.chunked ? { stream: () => chunkedStream(padded), size: body.n } : { text: padded, size: body.n }
    }
  }
}

/** A body with no Content-Length: the server learns its size only by reading it. */
export const chunkedStream = (text: string, chunk = 16_384) => {
  const bytes = new TextEncoder().encode(text)
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < bytes.length; i += chunk) controller.enqueue(bytes.slice(i, i + chunk))
      controller.close()
    }
  })
}

export const fetchBody = (built: Built): string | Uint8Array | ReadableStream<Uint8Array> | undefined => built.stream?.() ?? built.bytes ?? built.text

/** Broken JSON: truncations of valid documents, stray tokens, raw control characters, BOMs, comments. */
export const brokenJsonText = fc.oneof(
  fc.constantFrom(
    "{",
    "}",
    "{nope",
    '{"url": ',
    '{"url": "x"',
    '{"url": "x",}',
    "{'url': 'x'}",
    '{"url": "x"} trailing',
    '{"url": "x"}{"url": "y"}',
    "\ufeff{}",
    "/* c */ {}",
    "NaN",
    "Infinity",
    "undefined",
    '{"a": 01}',
    '{"a": 1e}',
    '{"a": "\\x41"}',
    '{"a": "\\ud800"}',
    '{"a":"\u0000"}',
    "\u0000",
    "[1,2,]",
    "[[[[[[[[[[",
    "]]]]",
    '"unterminated'
  ),
  fc.string({ maxLength: 40 }),
  fc.json().map((s) => s.slice(0, Math.max(0, s.length - 1)))
)

// ---------------------------------------------------------------- a raw HTTP/1.1 client

/**
 * Sends one request with exactly the given request target (fetch would
 * normalise `..` and `%2e%2e`) and reads the answer until the server closes.
 */
export const rawHttp = (port: number, method: string, target: string, headers: Record<string, string> = {}, body = ""): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const timer = setTimeout(() => reject(new Error(`raw ${method} ${target}: no answer in 5 s`)), 5_000)
    const head =
      `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
      "\r\n"
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socket.write(head + body)
        },
        data(_socket, data) {
          chunks.push(Buffer.from(data))
        },
        close() {
          clearTimeout(timer)
          try {
            resolve(parseRawAnswer(Buffer.concat(chunks)))
          } catch (error) {
            reject(error)
          }
        },
        error(_socket, error) {
          clearTimeout(timer)
          reject(error)
        }
      }
    }).catch(reject)
  })

const parseRawAnswer = (raw: Buffer): Answer => {
  const split = raw.indexOf("\r\n\r\n")
  if (split < 0) throw new Error(`no HTTP answer: ${JSON.stringify(raw.toString("latin1").slice(0, 200))}`)
  const [statusLine, ...lines] = raw.subarray(0, split).toString("latin1").split("\r\n")
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]))
  let body = raw.subarray(split + 4)
  if ((headers["transfer-encoding"] ?? "").includes("chunked")) body = dechunk(body)
  return {
    status: Number(statusLine!.split(" ")[1]),
    contentType: headers["content-type"] ?? "",
    text: body.toString("utf8"),
    headerText: lines.join("\n")
  }
}

const dechunk = (body: Buffer) => {
  const out: Buffer[] = []
  let at = 0
  while (at < body.length) {
    const eol = body.indexOf("\r\n", at)
    if (eol < 0) break
    const size = parseInt(body.subarray(at, eol).toString("latin1"), 16)
    if (!size) break
    out.push(body.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(out)
}
