import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { Either, Schema, Redacted } from "effect"
import { authorizationOf, headerNameProblem, headersProblem, headerValueProblem, HookHeaders, MAX_HEADERS, MAX_HEADER_VALUE } from "../src/domain/HookHeaders.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split("")
const RESERVED = ["host", "content-type", "content-length", "authorization", "traceparent", "tracestate", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]

const tokenName = fc.array(fc.constantFrom(...TOKEN_CHARS), { minLength: 1, maxLength: 40 }).map((cs) => cs.join(""))
const isReserved = (name: string) => RESERVED.includes(name.toLowerCase()) || name.toLowerCase().startsWith("webhook-")
const randomCase = (name: string) => fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((up) => [...name].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join(""))

describe("hook header validation", () => {
  test("names: any token that is not reserved is accepted; a name with any other character is refused", () => {
    fc.assert(fc.property(tokenName, (name) => expect(headerNameProblem(name) === undefined).toBe(!isReserved(name))))
    fc.assert(
      fc.property(tokenName, fc.constantFrom(" ", ":", "\r", "\n", "\0", "(", "\"", "é", "/"), tokenName, (a, bad, b) => {
        expect(headerNameProblem(a + bad + b)).toBeString()
      })
    )
  })

  test("names: reserved names and webhook-* are refused in any letter case", () => {
    fc.assert(fc.property(fc.constantFrom(...RESERVED, "webhook-id", "webhook-signature", "webhook-anything").chain(randomCase), (name) => expect(headerNameProblem(name)).toBeString()))
  })

  test("values: a value is accepted exactly when fetch would send it unchanged, and a problem never quotes it", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (value) => {
        const problem = headerValueProblem(value)
        let sendable: boolean
        try {
          // Headers trims surrounding whitespace and refuses CR, LF, NUL and non-Latin-1.
          sendable = new Headers({ x: value }).get("x") === value && !/[\x00-\x08\x0a-\x1f\x7f]/.test(value)
        } catch {
          sendable = false
        }
        expect(problem === undefined).toBe(sendable)
        if (problem !== undefined && value.length > 3) expect(problem).not.toContain(value)
      }),
      { numRuns: 2000 }
    )
    expect(headerValueProblem("x".repeat(MAX_HEADER_VALUE))).toBeUndefined()
    expect(headerValueProblem("x".repeat(MAX_HEADER_VALUE + 1))).toBeString()
  })

  test("sets: case-insensitive duplicates and more than the bounded count are refused; the schema names the header", () => {
    fc.assert(
      fc.property(tokenName.filter((n) => !isReserved(n) && n.toLowerCase() !== n.toUpperCase()), (name) => {
        expect(headersProblem({ [name.toLowerCase()]: "a", [name.toUpperCase()]: "b" })?.name).toBe(name.toUpperCase())
      })
    )
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-H${i}`, "v"]))
    expect(headersProblem(many(MAX_HEADERS))).toBeUndefined()
    expect(headersProblem(many(MAX_HEADERS + 1))?.name).toBeUndefined()
    const decoded = Schema.decodeUnknownEither(HookHeaders)({ "X-Ok": "fine", "X-Bad": "line\nbreak-secret" })
    expect(Either.isLeft(decoded) && JSON.stringify(decoded.left)).not.toContain("break-secret")
    // JSON.parse makes `__proto__` an own key; decoded strictly (as config, API and HTTP source are), it is refused rather than dropped.
    expect(Either.isLeft(Schema.decodeUnknownEither(HookHeaders, { onExcessProperty: "error" })(JSON.parse('{"__proto__": "x"}')))).toBe(true)
  })

  test("auth: Basic is base64 of username:password in UTF-8; bearer is sent as given", () => {
    fc.assert(
      fc.property(fc.string().filter((s) => !s.includes(":")), fc.string(), (username, password) => {
        const header = authorizationOf({ basic: { username, password: Redacted.make(password) } })!
        expect(header.startsWith("Basic ")).toBe(true)
        expect(Buffer.from(header.slice(6), "base64").toString("utf8")).toBe(`${username}:${password}`)
      })
    )
    expect(authorizationOf({ bearer: Redacted.make("abc.def") })).toBe("Bearer abc.def")
    expect(authorizationOf(undefined)).toBeUndefined()
  })
})
