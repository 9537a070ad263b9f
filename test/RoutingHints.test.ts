import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Option } from "effect"
import fc from "fast-check"
import { isHostname, type ActiveHook, type E164, type HostPattern } from "../src/domain/Hook.ts"
import { normaliseE164 } from "../src/domain/PhoneNumber.ts"
import { compileTable, matchHost, matchNumber } from "../src/hooks/HookTable.ts"
import { hintsFor, hooksNamed, observedIn, type DisabledSince, type Observed } from "../src/ingest/RoutingHints.ts"
import { decideSip, sharedDomainMatcher } from "../src/ingest/SipDecision.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const hook = (host: string): ActiveHook => ({ host: host as HostPattern, url: `https://${host.replace("*.", "star.")}/voice`, source: "file" })
const HOOKS = ["calls.drsmith.com", "*.citydental.com", "sip.acme-clinic.org"]
const table = compileTable(HOOKS.map(hook), [
  { number: "+15557654321" as E164, host: "calls.drsmith.com" as HostPattern, source: "file" },
  { number: "+442071234567" as E164, host: "sip.acme-clinic.org" as HostPattern, source: "file" },
  { number: "+15550000001" as E164, host: "gone.example.com" as HostPattern, source: "api" }
])
const isShared = sharedDomainMatcher(["sip.carrier.net"])
const routing = { table, isShared, defaultCountry: undefined }
const enabled: DisabledSince = () => null

/** What the router sees of calls to `domain` dialling `dialled`, and where it sends them. */
const seen = (domain: string | null, dialled: ReadonlyArray<string> = []): Observed => ({
  domain,
  dialled,
  routedTo:
    domain !== null && !isShared(domain)
      ? matchHost(table, domain)
      : dialled.flatMap((number) => Option.toArray(normaliseE164(number, undefined))).map((number) => matchNumber(table, number)).find((found) => found !== undefined)
})
const hints = (observed: Observed, disabledSince = enabled) => hintsFor(observed, routing, disabledSince)

/** A hostname label of the letters in `alphabet`. */
const label = (alphabet: string, min = 1) => fc.stringOf(fc.constantFrom(...alphabet), { minLength: min, maxLength: 12 })

/** One edit: a character inserted, removed or replaced. */
const edit = (name: string, at: number, kind: number, char: string) => {
  const i = at % (name.length + 1)
  return kind === 0 ? name.slice(0, i) + char + name.slice(i) : kind === 1 ? name.slice(0, i) + name.slice(i + 1) : name.slice(0, i) + char + name.slice(i + 1)
}
const anEdit = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 }), fc.constantFrom(..."abcdefghijklmnoprstuvwy0123456789-."))

describe("hintsFor", () => {
  test("an IP address where a domain was expected is said to be one, whatever the address", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.array(fc.constantFrom("+15557654321", "+15559999999"), { maxLength: 2 }), (ip, dialled) => {
        const [first] = hints(seen(ip.toLowerCase(), dialled))
        expect(first).toContain("IP address")
        expect(first).toContain("tenant's domain")
      })
    )
    expect(hints(seen("203.0.113.7", ["+15557654321"]))).toEqual([
      'The SIP headers name the IP address "203.0.113.7", not a domain: the carrier sends its calls to an address. Ask it to send them to the tenant\'s domain, or list "203.0.113.7" in sharedDomains so that the dialled number decides (+15557654321 is mapped to calls.drsmith.com).'
    ])
  })

  test("a domain one or two edits from a hook's host (or a name its wildcard covers) names that hook", () => {
    const covered = fc.oneof(fc.constantFrom("calls.drsmith.com", "sip.acme-clinic.org"), label("abcdefgh").map((first) => `${first}.citydental.com`))
    fc.assert(
      fc.property(covered, fc.array(anEdit, { minLength: 1, maxLength: 2 }), (name, edits) => {
        const domain = edits.reduce((text, [at, kind, char]) => edit(text, at, kind, char), name)
        fc.pre(isHostname(domain) && domain.includes(".") && !matchHost(table, domain) && !/\.[0-9]+$/.test(domain))
        const owner = matchHost(table, name)!.host
        expect(hints(seen(domain)).some((hint) => hint.includes(`the hook ${owner}`))).toBe(true)
      })
    )
    expect(hints(seen("calls.drsmth.com"))).toEqual([
      '"calls.drsmth.com" is 1 edit from the hook calls.drsmith.com: correct the destination at the carrier, or add a hook for it if the tenant uses that name.'
    ])
    expect(hints(seen("a.citydentl.com"))[0]).toBe(
      '"a.citydentl.com" is 1 edit from the hook *.citydental.com (which covers a.citydental.com): correct the destination at the carrier, or add a hook for it if the tenant uses that name.'
    )
  })

  test("a domain far from every hook gets no hint", () => {
    // Hook hosts have no q, x or z: every letter of these names is an edit away from theirs.
    fc.assert(fc.property(fc.array(label("qxz", 3), { minLength: 2, maxLength: 4 }), (labels) => expect(hints(seen(labels.join(".")))).toEqual([])))
  })

  test("the same name under another ending, or a label above or below what a hook matches", () => {
    expect(hints(seen("calls.drsmith.net"))).toEqual([
      '"calls.drsmith.net" has the leading labels of the hook calls.drsmith.com under another ending (net, not com): correct the destination at the carrier, or add a hook for it if the tenant uses that name.'
    ])
    expect(hints(seen("calls.drsmith.co.uk"))[0]).toContain("under another ending (co.uk, not com)")
    // A typo in the last label is a typo, not another ending.
    expect(hints(seen("calls.drsmith.con"))[0]).toContain("is 1 edit from the hook calls.drsmith.com")
    expect(hints(seen("citydental.com"))).toEqual(['"citydental.com" is the apex of the hook *.citydental.com, which covers only the names under it: add a hook for "citydental.com".'])
    expect(hints(seen("a.calls.drsmith.com"))[0]).toBe(
      '"a.calls.drsmith.com" is one label under the hook calls.drsmith.com, which matches only that exact name: add a hook for *.calls.drsmith.com (or for "a.calls.drsmith.com").'
    )
    expect(hints(seen("drsmith.com"))[0]).toContain("one label above the hook calls.drsmith.com")
    // A shared leading label alone is no near miss: calls.X and calls.Y are other tenants.
    expect(hints(seen("calls.other.com"))).toEqual([])
  })

  test("a dialled number whose digits match a mapped number in another spelling names that number and its host", () => {
    const national = fc.tuple(fc.constantFrom(["+15557654321", "calls.drsmith.com", "5557654321"] as const, ["+442071234567", "sip.acme-clinic.org", "02071234567"] as const), fc.constantFrom("", " ", "-"))
    fc.assert(
      fc.property(national, fc.constantFrom(null, "sip.carrier.net"), ([[number, host, written], separator], domain) => {
        const dialled = written.replace(/(\d{3})(?=\d)/g, `$1${separator}`)
        const [hint] = hints(seen(domain, [dialled]))
        expect(hint).toContain(`the mapped ${number} (${host})`)
      })
    )
    expect(hints(seen(null, ["5557654321"]))).toEqual([
      'The dialled number "5557654321" is national, and without defaultCountry no national number is read, though its digits match the mapped +15557654321 (calls.drsmith.com): set defaultCountry to the carrier\'s country, or have it send +15557654321.'
    ])
    // Read in the wrong country, the digits are another number.
    expect(hintsFor(seen(null, ["5557654321"]), { ...routing, defaultCountry: "GB" }, enabled)).toEqual([
      'The dialled number "5557654321" reads as +445557654321, not the mapped +15557654321 (calls.drsmith.com), though its digits match: map +445557654321 to calls.drsmith.com too (PUT /v1/numbers/+445557654321), or have the carrier send +15557654321.'
    ])
    expect(hints(seen("sip.carrier.net", ["+1 555 765 4321 x"]))).toEqual([
      'The dialled number "+1 555 765 4321 x" is not a number the router can read, though its digits match the mapped +15557654321 (calls.drsmith.com): have the carrier send +15557654321.'
    ])
  })

  test("a mapped number whose host has no hook, and a mapped number an unknown domain kept from deciding", () => {
    expect(hints(seen(null, ["+15550000001"]))).toEqual([
      "The dialled number +15550000001 is mapped to gone.example.com, but no hook has that host: add the hook (PUT /v1/hooks/gone.example.com) or map the number elsewhere."
    ])
    // Unless the domain is near a hook: then it is a tenant's, mistyped.
    expect(hints(seen("calls.drsmth.com", ["+15557654321"]))).toEqual([expect.stringContaining("1 edit from the hook calls.drsmith.com")])
    expect(hints(seen("sip.othercarrier.io", ["+1 555 765 4321"]))).toEqual([
      'The dialled number +15557654321 is mapped to calls.drsmith.com, but a number decides only for a shared domain (or a call without one): if "sip.othercarrier.io" is the carrier\'s own host, list it in sharedDomains.'
    ])
  })

  test("a disabled hook is said to be, with since when and how to enable it: the one routed to, or one a hint names", () => {
    const since = Date.parse("2026-01-31T10:00:00Z")
    const disabled: DisabledSince = (host) => (host === "calls.drsmith.com" ? since : null)
    const sentence =
      "The hook calls.drsmith.com is disabled since 2026-01-31T10:00:00.000Z, after failing for delivery.disableAfter: events routed to it end failed unsent. Enable it with POST /v1/hooks/calls.drsmith.com/enable (then POST /v1/tenants/calls.drsmith.com/recover replays them)."
    expect(hints(seen("calls.drsmith.com"), disabled)).toEqual([sentence])
    expect(hints(seen("calls.drsmth.com"), disabled)).toEqual([expect.stringContaining("1 edit from the hook calls.drsmith.com"), sentence])
    expect(hooksNamed(seen("calls.drsmth.com"), routing)).toEqual(["calls.drsmith.com"])
  })

  test("a clean match of an enabled hook gets no hint, whatever else the call carries", () => {
    const routed = fc.oneof(fc.constantFrom("calls.drsmith.com", "sip.acme-clinic.org"), label("abcdefgh").map((first) => `${first}.citydental.com`))
    fc.assert(
      fc.property(routed, fc.array(fc.string(), { maxLength: 3 }), (domain, dialled) => {
        expect(hints(seen(domain, dialled))).toEqual([])
      })
    )
    expect(hints(seen("sip.carrier.net", ["+15557654321"]))).toEqual([])
  })

  test("at most five hints, quoting no more of an attribute than a short excerpt", () => {
    const longValue = fc.string({ minLength: 65, maxLength: 400 })
    const header = fc.oneof(fc.constant(undefined), longValue, longValue.map((user) => `sip:${user.replace(/[@\s<>"]/g, "")}@203.0.113.9`))
    // Letters, then digits that match a mapped number: the hint quotes what was dialled.
    const dialled = fc.oneof(longValue, fc.stringOf(fc.constantFrom(..."abc-. "), { minLength: 65, maxLength: 400 }).map((text) => `${text}5557654321`))
    fc.assert(
      fc.property(header, header, dialled, (xToIp, to, number) => {
        const attributes = Object.fromEntries(Object.entries({ "sip.h.x-to-ip": xToIp, "sip.h.to": to, "sip.trunkPhoneNumber": number }).filter((entry): entry is [string, string] => entry[1] !== undefined))
        const said = hints(observedIn(decideSip(attributes, table, routing)))
        expect(said.length).toBeLessThanOrEqual(5)
        for (const value of Object.values(attributes)) {
          for (let at = 0; at + 65 <= value.length; at++) expect(said.some((hint) => hint.includes(value.slice(at, at + 65)))).toBe(false)
        }
      }),
      { numRuns: 50 }
    )
    const manyNear = compileTable(["a.example.com", "b.example.com", "c.example.com", "d.example.com", "e.example.com", "f.example.com"].map(hook))
    expect(hintsFor(seen("example.com"), { ...routing, table: manyNear }, () => 0)).toHaveLength(5)
  })
})
