import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { classifyAddress, refusedTargetHost } from "../src/domain/TargetAddress.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ipv4Cases: ReadonlyArray<readonly [string, string | undefined]> = [
  ["0.0.0.0", "unspecified"],
  ["0.255.255.255", "unspecified"],
  ["1.0.0.0", undefined],
  ["9.255.255.255", undefined],
  ["10.0.0.0", "private"],
  ["10.255.255.255", "private"],
  ["11.0.0.0", undefined],
  ["100.63.255.255", undefined],
  ["100.64.0.0", "CGNAT"],
  ["100.127.255.255", "CGNAT"],
  ["100.128.0.0", undefined],
  ["126.255.255.255", undefined],
  ["127.0.0.1", "loopback"],
  ["127.255.255.255", "loopback"],
  ["128.0.0.0", undefined],
  ["169.253.255.255", undefined],
  ["169.254.0.0", "link-local"],
  ["169.254.169.254", "link-local"],
  ["169.255.0.0", undefined],
  ["172.15.255.255", undefined],
  ["172.16.0.0", "private"],
  ["172.31.255.255", "private"],
  ["172.32.0.0", undefined],
  ["191.255.255.255", undefined],
  ["192.0.0.0", "reserved"],
  ["192.0.0.255", "reserved"],
  ["192.0.1.0", undefined],
  ["192.0.2.1", "documentation"],
  ["192.0.3.0", undefined],
  ["192.167.255.255", undefined],
  ["192.168.0.0", "private"],
  ["192.168.255.255", "private"],
  ["192.169.0.0", undefined],
  ["198.17.255.255", undefined],
  ["198.18.0.0", "benchmark"],
  ["198.19.255.255", "benchmark"],
  ["198.20.0.0", undefined],
  ["198.51.100.7", "documentation"],
  ["203.0.113.9", "documentation"],
  ["8.8.8.8", undefined],
  ["223.255.255.255", undefined],
  ["224.0.0.0", "multicast"],
  ["239.255.255.255", "multicast"],
  ["240.0.0.0", "reserved"],
  ["255.255.255.254", "reserved"],
  ["255.255.255.255", "broadcast"]
]

const ipv6Cases: ReadonlyArray<readonly [string, string | undefined]> = [
  ["::", "unspecified"],
  ["0:0:0:0:0:0:0:0", "unspecified"],
  ["::1", "loopback"],
  ["0:0:0:0:0:0:0:1", "loopback"],
  ["::2", "deprecated IPv4-compatible"],
  ["::127.0.0.1", "deprecated IPv4-compatible"],
  ["::8.8.8.8", "deprecated IPv4-compatible"],
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["0:0:0:0:0:ffff:7f00:0001", "loopback"],
  ["::FFFF:10.1.2.3", "private"],
  ["::ffff:a9fe:a9fe", "link-local"],
  ["::ffff:100.64.0.1", "CGNAT"],
  ["::ffff:0.0.0.0", "unspecified"],
  ["::ffff:8.8.8.8", undefined],
  ["::ffff:808:808", undefined],
  ["::fffe:7f00:1", "reserved"],
  ["64:ff9b::7f00:1", "loopback"],
  ["64:ff9b::192.168.1.1", "private"],
  ["64:ff9b::8.8.8.8", undefined],
  ["64:ff9b:1::1", "private NAT64"],
  ["100::1", "reserved"],
  ["1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"],
  ["2000::", undefined],
  ["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", undefined],
  ["2001:db8::", "documentation"],
  ["2001:db8:ffff::1", "documentation"],
  ["2001:db9::", undefined],
  ["2606:4700:4700::1111", undefined],
  ["2a00:1450:4001:81c::200e", undefined],
  ["3fff::1", "documentation"],
  ["3fff:fff:ffff::1", "documentation"],
  ["3fff:1000::", undefined],
  ["4000::1", "reserved"],
  ["fbff:ffff::1", "reserved"],
  ["fc00::", "private"],
  ["fd12:3456:789a::1", "private"],
  ["fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"],
  ["fe7f:ffff::1", "reserved"],
  ["fe80::", "link-local"],
  ["fe80::1", "link-local"],
  ["FEBF:FFFF::1", "link-local"],
  ["fec0::1", "site-local"],
  ["feff:ffff::1", "site-local"],
  ["ff00::", "multicast"],
  ["ff02::1", "multicast"],
  ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"],
  ["[::1]", "loopback"],
  ["[2606:4700:4700::1111]", undefined]
]

const zonedCases: ReadonlyArray<readonly [string, string]> = [
  ["fe80::1%eth0", "link-local"],
  ["fe80::1%25eth0", "link-local"],
  ["::1%lo", "loopback"],
  // A zone on a global address still scopes it to one link.
  ["2606:4700::1111%eth0", "link-local"]
]

const notLiterals = ["", "hello", "localhost", "127.1", "1.2.3.04", "1.2.3.4 ", "256.0.0.1", "1::2::3", "::1%", "[::1", "0x7f000001"]

describe("classifyAddress", () => {
  test.each(ipv4Cases)("IPv4 %s -> %p", (ip, reason) => expect(classifyAddress(ip)).toBe(reason))
  test.each(ipv6Cases)("IPv6 %s -> %p", (ip, reason) => expect(classifyAddress(ip)).toBe(reason))
  test.each(zonedCases)("zoned %s -> %p", (ip, reason) => expect(classifyAddress(ip)).toBe(reason))
  test.each(notLiterals)("%p is refused as not an IP address", (text) => expect(classifyAddress(text)).toBe("not an IP address"))
})

const registrationCases: ReadonlyArray<readonly [string, string | undefined]> = [
  ["http://127.0.0.1/hook", "url host 127.0.0.1 is a loopback address"],
  ["http://127.0.0.1.:8080/hook", "url host 127.0.0.1 is a loopback address"],
  // WHATWG URL parsing turns these spellings into 127.0.0.1 before we look.
  ["http://0x7f.1/", "url host 127.0.0.1 is a loopback address"],
  ["http://2130706433/", "url host 127.0.0.1 is a loopback address"],
  ["http://0177.0.0.1/", "url host 127.0.0.1 is a loopback address"],
  ["http://127.1/", "url host 127.0.0.1 is a loopback address"],
  ["http://0x0a.0x00.0x00.0x01/", "url host 10.0.0.1 is a private address"],
  ["http://169.254.169.254/latest/meta-data/", "url host 169.254.169.254 is a link-local address"],
  ["https://100.64.1.1/", "url host 100.64.1.1 is a CGNAT address"],
  ["http://0.0.0.0:3000/", "url host 0.0.0.0 is an unspecified address"],
  ["http://[::]/", "url host :: is an unspecified address"],
  ["http://[::1]:8080/hook", "url host ::1 is a loopback address"],
  ["http://[0:0:0:0:0:0:0:1]/", "url host ::1 is a loopback address"],
  ["http://[::ffff:127.0.0.1]/", "url host ::ffff:7f00:1 is a loopback address"],
  ["http://[::ffff:7f00:1]/", "url host ::ffff:7f00:1 is a loopback address"],
  ["http://[64:ff9b::a9fe:a9fe]/", "url host 64:ff9b::a9fe:a9fe is a link-local address"],
  ["http://[fe80::1]/", "url host fe80::1 is a link-local address"],
  ["http://[fd00::1]/", "url host fd00::1 is a private address"],
  ["http://[ff02::1]/", "url host ff02::1 is a multicast address"],
  ["http://localhost:3000/hook", "url host localhost is a loopback name"],
  ["http://LOCALHOST./", "url host localhost is a loopback name"],
  ["http://api.localhost/", "url host api.localhost is a loopback name"],
  ["https://hooks.example.com/livekit", undefined],
  ["https://8.8.8.8/", undefined],
  ["https://[2606:4700:4700::1111]/", undefined],
  ["https://[::ffff:8.8.8.8]/", undefined],
  ["http://localhost.example.com/", undefined],
  ["http://notlocalhost/", undefined],
  // A name that resolves to loopback is caught when a delivery resolves it, not here.
  ["http://127.0.0.1.nip.io/", undefined]
]

describe("refusedTargetHost", () => {
  test.each(registrationCases)("%s -> %p", (url, message) => expect(refusedTargetHost(new URL(url))).toBe(message))
})

/** The refused IPv4 blocks as the issue lists them, kept apart from the module's own table. */
const refusedBlocks: ReadonlyArray<readonly [number, number]> = [
  [0x00000000, 8],
  [0x0a000000, 8],
  [0x64400000, 10],
  [0x7f000000, 8],
  [0xa9fe0000, 16],
  [0xac100000, 12],
  [0xc0000000, 24],
  [0xc0000200, 24],
  [0xc0a80000, 16],
  [0xc6120000, 15],
  [0xc6336400, 24],
  [0xcb007100, 24],
  [0xe0000000, 4],
  [0xf0000000, 4]
]

const inRefusedBlock = (address: number) =>
  refusedBlocks.some(([base, prefix]) => Math.floor(address / 2 ** (32 - prefix)) === Math.floor(base / 2 ** (32 - prefix)))

const dotted = (address: number) => [24, 16, 8, 0].map((shift) => (address >>> shift) & 0xff).join(".")
const hexPair = (address: number) => `${(address >>> 16).toString(16)}:${(address & 0xffff).toString(16)}`

/** Every way a URL can spell one IPv4 address. */
const spellings = (address: number) => [
  `http://${dotted(address)}/`,
  `http://${address}/`,
  `http://0x${address.toString(16)}/`,
  `http://[::ffff:${dotted(address)}]/`,
  `http://[::ffff:${hexPair(address)}]/`,
  `http://[0:0:0:0:0:ffff:${hexPair(address)}]/`,
  `http://[64:ff9b::${dotted(address)}]/`
]

const refusedAddress = fc
  .tuple(fc.constantFrom(...refusedBlocks), fc.nat({ max: 2 ** 32 - 1 }))
  .map(([[base, prefix], noise]) => base + (noise % 2 ** (32 - prefix)))

const publicIPv4 = fc.nat({ max: 2 ** 32 - 1 }).filter((address) => !inRefusedBlock(address))

/** Random global unicast IPv6, outside the documentation blocks inside 2000::/3. */
const publicIPv6 = fc
  .tuple(fc.integer({ min: 0x2000, max: 0x3fff }), fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 7, maxLength: 7 }))
  .filter(([first, rest]) => !(first === 0x2001 && rest[0] === 0x0db8) && !(first === 0x3fff && (rest[0] ?? 0) < 0x1000))
  .map(([first, rest]) => [first, ...rest].map((group) => group.toString(16)).join(":"))

describe("properties", () => {
  test("an address in a refused IPv4 block is refused however the URL spells it", () => {
    fc.assert(
      fc.property(refusedAddress, (address) => {
        for (const url of spellings(address)) expect(refusedTargetHost(new URL(url))).toBeString()
      })
    )
  })

  test("public addresses are allowed in every spelling", () => {
    fc.assert(
      fc.property(publicIPv4, publicIPv6, (v4, v6) => {
        expect(classifyAddress(dotted(v4))).toBeUndefined()
        for (const url of spellings(v4)) expect(refusedTargetHost(new URL(url))).toBeUndefined()
        expect(classifyAddress(v6)).toBeUndefined()
        expect(refusedTargetHost(new URL(`https://[${v6}]/`))).toBeUndefined()
      })
    )
  })

  test("an IPv6 address classifies the same as the URL parser's canonical spelling of it", () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        // Bun's URL parser rejects a few valid spellings such as `::0:0:0:0:0.0.0.0`; registration refuses those anyway.
        fc.pre(URL.canParse(`http://[${ip}]/`))
        expect(classifyAddress(ip)).toBe(classifyAddress(new URL(`http://[${ip}]/`).hostname))
      })
    )
  })

  test("arbitrary text never throws and is never mistaken for a public address", () => {
    const text = fc.oneof(fc.string(), fc.fullUnicodeString(), fc.ipV4Extended(), fc.domain())
    fc.assert(
      fc.property(text, (candidate) => {
        const reason = classifyAddress(candidate)
        if (reason === undefined) expect(candidate.replace(/^\[|\]$/g, "")).toMatch(/^[0-9a-f:.]+(%.+)?$/i)
        else expect(reason).not.toBe("")
      })
    )
  })
})
