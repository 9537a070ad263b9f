import { isIP } from "node:net"

/**
 * Which webhook targets are off limits: addresses that reach this host, its
 * networks or nothing at all, so a tenant's URL cannot turn the router against them.
 */

interface Range {
  readonly base: bigint
  readonly prefix: number
  readonly bits: 32 | 128
  readonly reason: string
}

const ipv4ToBigInt = (ip: string): bigint => ip.split(".").reduce((value, octet) => (value << 8n) | BigInt(Number(octet)), 0n)

/** Expands `::` and a trailing dotted quad; expects what `isIP` accepted, without a zone. */
const ipv6ToBigInt = (ip: string): bigint => {
  const groupsOf = (part: string): Array<bigint> =>
    part === ""
      ? []
      : part.split(":").flatMap((group) => {
          if (!group.includes(".")) return [BigInt(parseInt(group, 16))]
          const v4 = ipv4ToBigInt(group)
          return [v4 >> 16n, v4 & 0xffffn]
        })
  const [head = "", tail] = ip.split("::")
  const left = groupsOf(head)
  const right = tail === undefined ? [] : groupsOf(tail)
  const groups = [...left, ...Array<bigint>(8 - left.length - right.length).fill(0n), ...right]
  return groups.reduce((value, group) => (value << 16n) | group, 0n)
}

const range = (cidr: string, reason: string): Range => {
  const [address = "", prefix = ""] = cidr.split("/")
  const v4 = isIP(address) === 4
  return { base: v4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address), prefix: Number(prefix), bits: v4 ? 32 : 128, reason }
}

const contains = ({ base, prefix, bits }: Range, value: bigint): boolean => {
  const shift = BigInt(bits - prefix)
  return value >> shift === base >> shift
}

const reasonIn = (ranges: ReadonlyArray<Range>, value: bigint): string | undefined =>
  ranges.find((candidate) => contains(candidate, value))?.reason

const IPV4_RANGES = [
  range("0.0.0.0/8", "unspecified"),
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "CGNAT"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.0.0/16", "link-local"),
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "reserved"),
  range("192.0.2.0/24", "documentation"),
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmark"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("224.0.0.0/4", "multicast"),
  range("255.255.255.255/32", "broadcast"),
  range("240.0.0.0/4", "reserved")
]

// These carry an IPv4 address in their low 32 bits, which is where the packet really goes.
const EMBEDDING_IPV4 = [range("::ffff:0:0/96", "IPv4-mapped"), range("64:ff9b::/96", "NAT64")]

const IPV6_RANGES = [
  range("::/128", "unspecified"),
  range("::1/128", "loopback"),
  range("::/96", "deprecated IPv4-compatible"),
  range("64:ff9b:1::/48", "private NAT64"),
  range("2001:db8::/32", "documentation"),
  range("3fff::/20", "documentation"),
  range("fc00::/7", "private"),
  range("fe80::/10", "link-local"),
  range("fec0::/10", "site-local"),
  range("ff00::/8", "multicast")
]

// Only 2000::/3 is allocated for global unicast; anything else is not a public host.
const GLOBAL_UNICAST = range("2000::/3", "global unicast")

const classifyIPv6 = (value: bigint): string | undefined => {
  if (EMBEDDING_IPV4.some((candidate) => contains(candidate, value))) return reasonIn(IPV4_RANGES, value & 0xffffffffn)
  return reasonIn(IPV6_RANGES, value) ?? (contains(GLOBAL_UNICAST, value) ? undefined : "reserved")
}

/**
 * Why `ip` is not a public unicast address ("loopback", "private", "CGNAT"...),
 * or `undefined` when it is. Anything that is not an IP literal is refused too,
 * so a caller that forgets to resolve a name fails closed.
 */
export const classifyAddress = (ip: string): string | undefined => {
  const literal = ip.replace(/^\[(.*)\]$/, "$1")
  const [address = "", zone] = literal.split("%")
  switch (isIP(literal)) {
    case 4:
      return reasonIn(IPV4_RANGES, ipv4ToBigInt(address))
    case 6:
      // A zone only makes sense for a scoped address, whatever the digits say.
      return classifyIPv6(ipv6ToBigInt(address)) ?? (zone === undefined ? undefined : "link-local")
    default:
      return "not an IP address"
  }
}

/**
 * Why a webhook URL is refused at registration, or `undefined` when its host is
 * a public literal or a name (names are checked when a delivery resolves them).
 * Relies on `URL` having normalised `0x7f.1` or `2130706433` to dotted form.
 */
export const refusedTargetHost = (url: URL): string | undefined => {
  const host = url.hostname.toLowerCase().replace(/\.$/, "")
  if (host === "localhost" || host.endsWith(".localhost")) return `url host ${host} is a loopback name`
  const literal = host.replace(/^\[(.*)\]$/, "$1")
  if (isIP(literal) === 0) return undefined
  const reason = classifyAddress(literal)
  return reason && `url host ${literal} is ${/^[aeiou]/i.test(reason) ? "an" : "a"} ${reason} address`
}
