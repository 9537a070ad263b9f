import { describe, expect, setDefaultTimeout, test } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either, Option } from "effect"
import fc from "fast-check"
import type { ActiveHook, HostPattern } from "../src/domain/Hook.ts"
import { normaliseE164 } from "../src/domain/PhoneNumber.ts"
import { compileTable, matchHost } from "../src/hooks/HookTable.ts"
import { domainFromAttributes } from "../src/ingest/DomainExtractor.ts"
import { decideSip, sharedDomainMatcher, type SipRules } from "../src/ingest/SipDecision.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const hook = (host: string): ActiveHook => ({ host: host as HostPattern, url: `https://${host.replace("*.", "star.")}/voice`, source: "file" })
const table = compileTable(
  [hook("calls.drsmith.com"), hook("*.citydental.com")],
  [{ number: "+15557654321" as never, host: "calls.drsmith.com" as HostPattern, source: "file" }]
)
const isShared = sharedDomainMatcher(["sip.carrier.net"])
const rules: SipRules = { isShared, defaultCountry: undefined }

const headerValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(""),
  fc.constantFrom("calls.drsmith.com", "a.citydental.com", "unknown.example", "sip.carrier.net", "203.0.113.7", "bad host", "<sip:x@"),
  fc.constantFrom("calls.drsmith.com", "sip.carrier.net", "b.citydental.com").map((host) => `"Caller" <sip:+15550001@${host}:5060>;tag=x`)
)
const number = fc.constantFrom(undefined, "+15557654321", "+1 (555) 765-4321", "+15550000000", "not a number", "(555) 765-4321", "1 555 765 4321")
const attributesOf = (xToIp: string | undefined, to: string | undefined, dialled: string | undefined) =>
  Object.fromEntries(
    [
      ["sip.h.x-to-ip", xToIp],
      ["sip.h.to", to],
      ["sip.trunkPhoneNumber", dialled]
    ].filter((entry): entry is [string, string] => entry[1] !== undefined)
  )

describe("decideSip", () => {
  test("the domain decides unless it is shared or absent; then the dialled number does, read in the default country; the steps say which", () => {
    fc.assert(
      fc.property(headerValue, headerValue, number, fc.constantFrom(undefined, "US" as const), (xToIp, to, dialled, defaultCountry) => {
        const attributes = attributesOf(xToIp, to, dialled)
        const decision = decideSip(attributes, table, { isShared, defaultCountry })
        const domain = domainFromAttributes(attributes)
        const byDomain = Either.isRight(domain) && !isShared(domain.right)
        const mapped = Option.flatMap(Option.fromNullable(dialled), (raw) => normaliseE164(raw, defaultCountry)).pipe(Option.map((n) => table.numbers.get(n)?.host))
        const expected = byDomain ? matchHost(table, domain.right) : Option.getOrUndefined(mapped) && matchHost(table, Option.getOrUndefined(mapped)!)
        expect(decision.hook).toBe(expected)
        expect(decision.domain).toBe(Either.getOrNull(domain))
        expect(decision.steps.map((s) => s.source)).toEqual(["sip.h.x-to-ip", "sip.h.to", "sip.trunkPhoneNumber"])
        const matched = decision.steps.filter((s) => s.outcome === "matched")
        expect(matched.map((s) => s.source)).toEqual(decision.hook ? [decision.source!] : [])
        expect(decision.reason === undefined).toBe(decision.hook !== undefined)
        if (decision.hook) expect(decision.rule).toBe(decision.source === "sip.trunkPhoneNumber" ? "number" : decision.hook.host.startsWith("*.") ? "wildcard" : "exact")
      })
    )
  })

  test("a worked example of each rule", () => {
    expect(decideSip({ "sip.h.x-to-ip": "calls.drsmith.com" }, table, rules)).toMatchObject({ rule: "exact", pattern: "calls.drsmith.com", source: "sip.h.x-to-ip" })
    expect(decideSip({ "sip.h.to": "<sip:a@b.citydental.com>" }, table, rules)).toMatchObject({ rule: "wildcard", pattern: "*.citydental.com", source: "sip.h.to" })
    const shared = decideSip({ "sip.h.x-to-ip": "sip.carrier.net", "sip.trunkPhoneNumber": "+1 555 765 4321" }, table, rules)
    expect(shared).toMatchObject({ rule: "number", pattern: "+15557654321", source: "sip.trunkPhoneNumber", domain: "sip.carrier.net" })
    expect(shared.steps.map((s) => s.outcome)).toEqual(["skipped", "skipped", "matched"])
  })

  test("a national dialled number routes only under a default country; without one it is unparseable, not guessed", () => {
    const national = { "sip.h.x-to-ip": "sip.carrier.net", "sip.trunkPhoneNumber": "(555) 765-4321" }
    expect(decideSip(national, table, { isShared, defaultCountry: "US" })).toMatchObject({ rule: "number", pattern: "+15557654321" })
    const refused = decideSip(national, table, rules)
    expect(refused.hook).toBeUndefined()
    expect(refused.steps.at(-1)).toMatchObject({ source: "sip.trunkPhoneNumber", value: "(555) 765-4321", domain: null, outcome: "unparseable" })
    // Read in another country, the same digits are another number, which no one mapped.
    expect(decideSip(national, table, { isShared, defaultCountry: "GB" }).steps.at(-1)).toMatchObject({ domain: "+445557654321", outcome: "no_hook" })
  })
})
