import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either, Option } from "effect"
import fc from "fast-check"
import { MalformedHeader, MissingHeader } from "../src/domain/Errors.ts"
import { domainFromAttributes, parseSipHost } from "../src/ingest/DomainExtractor.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const some = (s: string) => Option.some(s)
const none = Option.none()

describe("parseSipHost: accepted forms", () => {
  test.each<[string, string]>([
    // bare hosts, ports, trailing dot, whitespace
    ["calls.drsmith.com", "calls.drsmith.com"],
    ["example.com", "example.com"],
    ["localhost", "localhost"],
    ["EXAMPLE.COM", "example.com"],
    ["EXAMPLE.COM.", "example.com"],
    ["Example.Com.:5060", "example.com"],
    ["example.com:5060", "example.com"],
    ["example.com:1", "example.com"],
    ["example.com:65535", "example.com"],
    ["  example.com  ", "example.com"],
    ["\texample.com\t", "example.com"],
    ["\r\n example.com \r\n", "example.com"],
    ["_sip._udp.example.com", "_sip._udp.example.com"],
    ["a-b.c-d.example", "a-b.c-d.example"],
    ["xn--bcher-kva.example", "xn--bcher-kva.example"],
    ["3com.com", "3com.com"],
    ["a".repeat(63) + ".com", "a".repeat(63) + ".com"],
    // sip:/sips: URIs
    ["sip:example.com", "example.com"],
    ["sips:example.com", "example.com"],
    ["SIP:Example.COM", "example.com"],
    ["SiPs:example.com:5061", "example.com"],
    ["sip:user@example.com", "example.com"],
    ["sip:alice@Atlanta.Example.com:5060", "atlanta.example.com"],
    ["sip:user:password@host.example", "host.example"],
    ["sip:user:@host.example", "host.example"],
    ["sip:+15557654321@calls.drsmith.com", "calls.drsmith.com"],
    // user-part parameters: the ";" before "@" belongs to the user
    ["sip:+1555;npdi;rn=+1666@host.example", "host.example"],
    ["sip:+15551234;isub=1234;ext=12@carrier.example;user=phone", "carrier.example"],
    ["sip:a;b?c/d@host.example", "host.example"],
    // URI params and headers
    ["sip:user@example.com;user=phone;transport=tcp", "example.com"],
    ["sip:user@example.com:5060;transport=tcp", "example.com"],
    ["sip:user@example.com?X-Foo=bar&subject=x", "example.com"],
    ["sip:user@example.com;lr?X-Foo=bar", "example.com"],
    ["sip:example.com;maddr=239.255.255.1;ttl=15", "example.com"],
    ["sip:user@example.com;tag=xyz", "example.com"],
    // angle brackets and name-addrs
    ["<sip:user@example.com>", "example.com"],
    ["<sip:user@example.com>;tag=xyz", "example.com"],
    ["<sip:user@example.com> ;tag=xyz;foo", "example.com"],
    ["< sip:user@example.com >", "example.com"],
    ["<user@example.com>", "example.com"],
    ["<example.com:5060>", "example.com"],
    ["Bob <sip:bob@biloxi.example.com>", "biloxi.example.com"],
    ["Bob Smith <sip:bob@biloxi.example.com>;tag=a6c85cf", "biloxi.example.com"],
    ["+15557654321 <sip:+15557654321@carrier.example>", "carrier.example"],
    ['"Dr. Smith" <sip:smith@calls.drsmith.com>', "calls.drsmith.com"],
    ['"Dr Smith" <sip:+15557654321@calls.drsmith.com>;tag=SCL_4fGh7JkL9mNp', "calls.drsmith.com"],
    ['"Dr Smith" <sip:+15557654321@calls.drsmith.com:5060;user=phone>;tag=SCL_abc', "calls.drsmith.com"],
    ['"Dr Smith"<sip:+15557654321@calls.drsmith.com>', "calls.drsmith.com"],
    ['"" <sip:x@empty-name.example>', "empty-name.example"],
    ['"<sip:evil@attacker.example>" <sip:x@real.example>', "real.example"],
    ['"a>b; c@d:e" <sip:x@real.example>', "real.example"],
    ['"say \\"hi\\" <sip:x@evil.example>" <sip:x@real.example>', "real.example"],
    ['"back\\\\" <sip:x@real.example>', "real.example"],
    ['"Ünïcödé 名前" <sip:x@real.example>', "real.example"],
    // user@host without scheme
    ["user@example.com", "example.com"],
    ["+15557654321@Calls.DrSmith.com:5060", "calls.drsmith.com"],
    ["a;b=c@example.com", "example.com"],
    // IPv6
    ["[2001:DB8::1]", "2001:db8::1"],
    ["[::1]", "::1"],
    ["[::1]:5060", "::1"],
    ["[::]", "::"],
    ["sip:user@[2001:db8::1]:5060;transport=tcp", "2001:db8::1"],
    ["sip:[2001:db8::1]", "2001:db8::1"],
    ["<sips:[2001:DB8:0:0:8:800:200C:417A]:5061>;tag=1", "2001:db8:0:0:8:800:200c:417a"],
    ["[::ffff:192.0.2.1]", "::ffff:192.0.2.1"],
    ["[64:ff9b::192.0.2.33]:5060", "64:ff9b::192.0.2.33"],
    ["[1:2:3:4:5:6:7:8]", "1:2:3:4:5:6:7:8"],
    ["[1:2:3:4:5:6:1.2.3.4]", "1:2:3:4:5:6:1.2.3.4"],
    ["[1::]", "1::"],
    ["[1:2:3:4:5:6:7::]", "1:2:3:4:5:6:7::"],
    ["2001:DB8::1", "2001:db8::1"], // a whole bare value: what parseSipHost itself returns
    // IPv4
    ["192.0.2.10", "192.0.2.10"],
    ["192.0.2.10:5060", "192.0.2.10"],
    ["sip:+15551234567@192.0.2.10:5060;transport=udp", "192.0.2.10"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"]
  ])("%p -> %p", (input, expected) => {
    expect(parseSipHost(input)).toEqual(some(expected))
  })
})

describe("parseSipHost: refused forms", () => {
  test.each<[string]>([
    // empty and degenerate
    [""],
    ["   "],
    ["\t\r\n"],
    ["<>"],
    ["<> ;tag=1"],
    ['""'],
    ['"" <>'],
    ["sip:"],
    ["sip:@example.com"],
    ["@example.com"],
    ["sip:user@"],
    ["user@"],
    [":5060"],
    ["."],
    [".."],
    // foreign schemes
    ["tel:+15557654321"],
    ["TEL:+1-555-765-4321;phone-context=example.com"],
    ["tel:5060"],
    ["<tel:+15557654321>;tag=1"],
    ['"Bob" <tel:+15557654321>'],
    ["mailto:bob@example.com"],
    ["http://example.com"],
    ["urn:service:sos"],
    ["sipx:example.com"],
    // garbage and bad hosts
    ["garbage!"],
    ["not a host"],
    ["exa mple.com"],
    ["sip:user@exa mple.com"],
    ["sip:user@example.com foo"],
    ["*.example.com"],
    ["sip:*@*"],
    ["*"],
    ["exa%6dple.com"],
    ["sip:user@exa%2Ecom"],
    ["example..com"],
    [".example.com"],
    ["example.com.."],
    ["-example.com"],
    ["example-.com"],
    ["example.-com"],
    ["a".repeat(64) + ".com"],
    [`${"a".repeat(60)}.`.repeat(5) + "com"], // 308 characters
    ["exämple.com"],
    ["ex\u212Aample.com"], // Kelvin sign: lower-cases to an ASCII "k"
    ["example.com/path"],
    ["example.com#frag"],
    ["sip:user@host@example.com"],
    ["a@b@example.com"],
    ["sip:user@example.com?x=a@b"],
    // all-numeric hosts are not domains
    ["15557654321"],
    ["sip:15557654321"],
    ["sip:+15557654321"],
    ["1.2.3"],
    ["256.1.1.1"],
    ["1.2.3.4.5"],
    ["192.0.2.010"],
    ["01.2.3.4"],
    ["1.2.3.-4"],
    // ports
    ["example.com:"],
    ["example.com:0"],
    ["example.com:65536"],
    ["example.com:123456"],
    ["example.com:50a"],
    ["example.com:5060:5060"],
    ["[::1]:"],
    ["[::1]:0"],
    ["[::1]:http"],
    // IPv6 mistakes
    ["[2001:db8::1"],
    ["2001:db8::1]"],
    ["[]"],
    ["[example.com]"],
    ["[192.0.2.1]"],
    ["[1:2:3:4:5:6:7:8:9]"],
    ["[1:2:3:4:5:6:7]"],
    ["[1:2:3:4::5:6:7:8]"], // "::" must stand for at least one group
    ["[::1:2:3:4:5:6:7:8]"],
    ["[1:2:3:4:5:6::1.2.3.4]"],
    ["[1::2::3]"],
    ["[1:2::3:4:5::6:7:8]"], // two "::" even though the groups add up to eight
    ["[:1::2]"],
    ["[1:::2]"],
    ["[12345::1]"],
    ["[g::1]"],
    ["[1.2.3.4::]"],
    ["[::1.2.3.4:1]"],
    ["[::256.1.1.1]"],
    ["[1:2:3:4:5:6:7:1.2.3.4]"],
    ["[fe80::1%eth0]"],
    ["[::1]x"],
    ["[::1]]"],
    ["sip:user@2001:db8::1"], // unbracketed inside a URI: is the last group a port?
    ["sip:2001:db8::1:5060"],
    ["2001:db8::1;transport=tcp"],
    // unbalanced or misplaced brackets and quotes
    ["<sip:user@example.com"],
    ["sip:user@example.com>"],
    ["<<sip:user@example.com>"],
    ["<sip:user@example.com>>"],
    ["<sip:user@example.com> garbage"],
    ["<sip:user@example.com>tag=1"],
    ['"Dr Smith <sip:user@example.com>'],
    ['"Dr Smith\\" <sip:user@example.com>'],
    ['Dr Smith" <sip:user@example.com>'],
    ['"Dr Smith" sip:user@example.com'],
    ['"Dr Smith" x <sip:user@example.com>'],
    ['Bob "x" <sip:user@example.com>'],
    ["Bob > <sip:user@example.com>"],
    ['sip:"user"@example.com'],
    ["<sip:<user@example.com>"]
  ])("%p -> none", (input) => {
    expect(parseSipHost(input)).toEqual(none)
  })
})

describe("domainFromAttributes", () => {
  const xToIp = "sip.h.x-to-ip"
  const to = "sip.h.to"

  test("x-to-ip wins when it parses", () => {
    expect(domainFromAttributes({ [xToIp]: "Calls.DrSmith.com", [to]: "<sip:x@other.example>" })).toEqual(
      Either.right("calls.drsmith.com")
    )
  })

  test("x-to-ip alone", () => {
    expect(domainFromAttributes({ [xToIp]: "[2001:db8::1]:5060" })).toEqual(Either.right("2001:db8::1"))
  })

  test("falls back to To when x-to-ip is missing", () => {
    expect(
      domainFromAttributes({ [to]: '"Dr Smith" <sip:+15557654321@calls.drsmith.com>;tag=SCL_4fGh7JkL9mNp' })
    ).toEqual(Either.right("calls.drsmith.com"))
  })

  test.each<[string]>([[""], ["   "], ["garbage!"], ["tel:+15557654321"]])(
    "falls back to To when x-to-ip is %p",
    (bad) => {
      expect(domainFromAttributes({ [xToIp]: bad, [to]: "<sip:a@fallback.example>;tag=1" })).toEqual(
        Either.right("fallback.example")
      )
    }
  )

  test("ignores unrelated attributes", () => {
    expect(
      domainFromAttributes({ "sip.trunkPhoneNumber": "+15557654321", "sip.h.from": "sip:a@from.example" })
    ).toEqual(Either.left(new MissingHeader()))
  })

  test.each<[string, Readonly<Record<string, string>> | undefined]>([
    ["no attributes", undefined],
    ["empty attributes", {}],
    ["empty x-to-ip", { [xToIp]: "" }],
    ["blank x-to-ip and To", { [xToIp]: " ", [to]: "\t" }]
  ])("missing: %s", (_, attributes) => {
    const result = domainFromAttributes(attributes)
    expect(result).toEqual(Either.left(new MissingHeader()))
    expect(Either.isLeft(result) && result.left._tag).toBe("MissingHeader")
  })

  test("malformed x-to-ip is reported even when To is also malformed", () => {
    expect(domainFromAttributes({ [xToIp]: "bad host", [to]: "also bad" })).toEqual(
      Either.left(new MalformedHeader({ header: "x-to-ip", value: "bad host" }))
    )
  })

  test("malformed x-to-ip with no To", () => {
    expect(domainFromAttributes({ [xToIp]: "<sip:x@" })).toEqual(
      Either.left(new MalformedHeader({ header: "x-to-ip", value: "<sip:x@" }))
    )
  })

  test("malformed To when x-to-ip is absent or blank", () => {
    const expected = Either.left(new MalformedHeader({ header: "to", value: "<tel:+15557654321>;tag=1" }))
    expect(domainFromAttributes({ [to]: "<tel:+15557654321>;tag=1" })).toEqual(expected)
    expect(domainFromAttributes({ [xToIp]: "", [to]: "<tel:+15557654321>;tag=1" })).toEqual(expected)
  })

  test("reported value is truncated to 256 characters", () => {
    const long = "x y".repeat(200)
    const result = domainFromAttributes({ [xToIp]: long })
    expect(result).toEqual(Either.left(new MalformedHeader({ header: "x-to-ip", value: long.slice(0, 256) })))
    expect(Either.isLeft(result) && result.left._tag === "MalformedHeader" && result.left.value.length).toBe(256)
  })
})

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const chars = (s: string) => fc.constantFrom(...s.split(""))
const LOWER = "abcdefghijklmnopqrstuvwxyz"
const DIGIT = "0123456789"

const label = fc
  .tuple(chars(LOWER + DIGIT + "_"), fc.stringOf(chars(LOWER + DIGIT + "_-"), { maxLength: 61 }), chars(LOWER + DIGIT + "_"))
  .map(([first, middle, last]) => first + middle + last)
const shortLabel = fc.oneof(chars(LOWER + DIGIT + "_"), label.filter((l) => l.length <= 12))
// A letter somewhere in the last label: an all-numeric one is never a domain.
const topLabel = fc.tuple(shortLabel, chars(LOWER)).map(([l, c]) => l + c)

const hostname = fc.oneof(
  fc.domain(),
  fc
    .tuple(fc.array(fc.oneof({ weight: 4, arbitrary: shortLabel }, { weight: 1, arbitrary: label }), { maxLength: 3 }), topLabel)
    .map(([labels, top]) => [...labels, top].join("."))
)
const ipv4 = fc.ipV4()
const ipv6 = fc.ipV6()

type Host = { readonly kind: "name" | "v4" | "v6"; readonly host: string }
const host: fc.Arbitrary<Host> = fc.oneof(
  hostname.map((h) => ({ kind: "name", host: h }) as const),
  ipv4.map((h) => ({ kind: "v4", host: h }) as const),
  ipv6.map((h) => ({ kind: "v6", host: h }) as const)
)

const USER_CHARS = LOWER + LOWER.toUpperCase() + DIGIT + "-_.!~*'()&=+$,;?/%"
const user = fc.stringOf(chars(USER_CHARS), { minLength: 1, maxLength: 12 })
const password = fc.stringOf(chars(LOWER + DIGIT + "&=+$,"), { maxLength: 8 })
const TOKEN_CHARS = LOWER + LOWER.toUpperCase() + DIGIT + "-.!%*_+`'~"
const token = fc.stringOf(chars(TOKEN_CHARS), { minLength: 1, maxLength: 8 })
const uriParam = fc.tuple(token, fc.option(token, { nil: undefined })).map(([n, v]) => (v === undefined ? `;${n}` : `;${n}=${v}`))
const uriHeaders = fc
  .array(fc.tuple(token, fc.stringOf(chars(TOKEN_CHARS + "[]/?:+$"), { maxLength: 8 })), { minLength: 1, maxLength: 3 })
  .map((hs) => "?" + hs.map(([n, v]) => `${n}=${v}`).join("&"))
const headerParams = fc.array(uriParam, { maxLength: 3 }).map((ps) => ps.join(""))
const space = fc.constantFrom("", " ", "\t", "  ", " \t ")

// Quoted display names full of characters that would fool a naive parser.
const quotedName = fc
  .array(fc.oneof(chars('<>;@:, ab.Z0'), fc.constantFrom('\\"', "\\\\", "\\<", "sip:x@evil.example")), { maxLength: 12 })
  .map((parts) => `"${parts.join("")}"`)
const unquotedName = fc.array(token, { minLength: 1, maxLength: 3 }).map((ts) => ts.join(" "))

interface Decorated {
  readonly input: string
  readonly expected: string
}

const decorated: fc.Arbitrary<Decorated> = fc
  .record({
    h: host,
    trailingDot: fc.boolean(),
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    scheme: fc.option(fc.mixedCase(fc.constantFrom("sip", "sips")), { nil: undefined }),
    userinfo: fc.option(fc.tuple(user, fc.option(password, { nil: undefined })), { nil: undefined }),
    params: fc.array(uriParam, { maxLength: 3 }).map((ps) => ps.join("")),
    headers: fc.option(uriHeaders, { nil: "" }),
    wrap: fc.constantFrom("bare", "angle", "quoted", "unquoted"),
    quoted: quotedName,
    unquoted: unquotedName,
    gap: space,
    trailer: headerParams,
    lead: space,
    tail: space
  })
  .chain((r) =>
    fc.mixedCase(fc.constant(r.h.host)).map((mixedHost) => {
      const hostText =
        r.h.kind === "v6" ? `[${mixedHost}]` : r.h.kind === "name" && r.trailingDot ? `${mixedHost}.` : mixedHost
      const hostport = r.port === undefined ? hostText : `${hostText}:${r.port}`
      // Without a scheme a password would look like a foreign URI scheme.
      const userinfo =
        r.userinfo === undefined
          ? ""
          : r.scheme !== undefined && r.userinfo[1] !== undefined
            ? `${r.userinfo[0]}:${r.userinfo[1]}@`
            : `${r.userinfo[0]}@`
      const uri = `${r.scheme === undefined ? "" : `${r.scheme}:`}${userinfo}${hostport}${r.params}${r.headers}`
      const body =
        r.wrap === "bare"
          ? `${uri}${r.trailer}`
          : r.wrap === "angle"
            ? `<${uri}>${r.trailer}`
            : r.wrap === "quoted"
              ? `${r.quoted}${r.gap}<${uri}>${r.trailer}`
              : `${r.unquoted} <${uri}>${r.trailer}`
      return { input: `${r.lead}${body}${r.tail}`, expected: r.h.host.toLowerCase() }
    })
  )

// Characters that steer the scanner down its interesting branches.
const sipish = fc.stringOf(
  fc.oneof(
    chars('sipSIPtel:@<>";[]?=&\\ \t.-_aZ09f*%'),
    fc.constantFrom("sip:", "<sip:", "::", "example.com", "[::1]", "192.0.2.1", ":5060", ";tag=1", '"x"')
  ),
  { maxLength: 40 }
)

const looksLikeAHost = (h: string) =>
  /^[a-z0-9_.-]+$/.test(h) || (/^[0-9a-f:.]+$/.test(h) && h.includes(":"))

describe("parseSipHost properties", () => {
  test("any legal decoration of a valid host yields that host, lower-cased", () => {
    fc.assert(
      fc.property(decorated, ({ input, expected }) => {
        expect(parseSipHost(input)).toEqual(some(expected))
      }),
      { numRuns: 1000 }
    )
  })

  test("never throws; any result is a lower-case host with no port, bracket or whitespace", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.fullUnicodeString(), sipish), (input) => {
        const result = parseSipHost(input)
        if (Option.isSome(result)) {
          expect(result.value).toBe(result.value.toLowerCase())
          expect(looksLikeAHost(result.value)).toBe(true)
          expect(result.value.endsWith(".")).toBe(false)
          // A result with a colon is an IPv6 address, never host:port.
          if (result.value.includes(":")) expect(/^[^:]+:\d+$/.test(result.value)).toBe(false)
          expect(parseSipHost(result.value)).toEqual(result)
        }
      }),
      { numRuns: 1000 }
    )
  })

  test("idempotent: a parsed host parses to itself", () => {
    fc.assert(
      fc.property(host, ({ host: h }) => {
        const once = parseSipHost(h.toUpperCase())
        expect(once).toEqual(some(h.toLowerCase()))
        expect(parseSipHost(h)).toEqual(once)
      }),
      { numRuns: 500 }
    )
  })

  test("a host with a forbidden character is refused wherever it sits", () => {
    fc.assert(
      fc.property(
        hostname.filter((h) => h.length >= 2),
        fc.nat(),
        fc.constantFrom("*", " ", "%", "!", "/", "é", "\u212A", "<", '"', "#"),
        fc.constantFrom("", "sip:", "sip:u@", "<sip:u@", '"N" <sip:'),
        (h, at, bad, prefix) => {
          // Surrounding whitespace is legitimately trimmed, so a space goes strictly inside.
          const i = bad === " " ? 1 + (at % (h.length - 1)) : at % (h.length + 1)
          const broken = h.slice(0, i) + bad + h.slice(i)
          const closing = prefix.includes("<") ? ">" : ""
          expect(parseSipHost(`${prefix}${broken}${closing}`)).toEqual(none)
        }
      ),
      { numRuns: 500 }
    )
  })
})

describe("domainFromAttributes properties", () => {
  const garbage = fc.oneof(
    sipish.filter((s) => s.trim() !== "" && Option.isNone(parseSipHost(s))),
    fc.constantFrom("tel:+15557654321", "<>", "not a host", "*")
  )

  test("x-to-ip garbage and To valid: the To host wins", () => {
    fc.assert(
      fc.property(garbage, decorated, (bad, { input, expected }) => {
        expect(domainFromAttributes({ "sip.h.x-to-ip": bad, "sip.h.to": input })).toEqual(Either.right(expected))
      }),
      { numRuns: 500 }
    )
  })

  test("x-to-ip valid: it wins whatever To holds", () => {
    fc.assert(
      fc.property(decorated, fc.option(fc.oneof(decorated.map((d) => d.input), fc.string()), { nil: undefined }), (x, to) => {
        const attributes: Record<string, string> = { "sip.h.x-to-ip": x.input }
        if (to !== undefined) attributes["sip.h.to"] = to
        expect(domainFromAttributes(attributes)).toEqual(Either.right(x.expected))
      }),
      { numRuns: 500 }
    )
  })

  test("both headers garbage: MalformedHeader names x-to-ip and carries its value", () => {
    fc.assert(
      fc.property(garbage, garbage, (bad, worse) => {
        expect(domainFromAttributes({ "sip.h.x-to-ip": bad, "sip.h.to": worse })).toEqual(
          Either.left(new MalformedHeader({ header: "x-to-ip", value: bad.slice(0, 256) }))
        )
      }),
      { numRuns: 300 }
    )
  })
})
