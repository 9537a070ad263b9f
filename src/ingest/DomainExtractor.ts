import { Either, Option } from "effect"
import { MalformedHeader, MissingHeader } from "../domain/Errors.ts"

// ---------------------------------------------------------------------------
// Host validation. Hosts decide which tenant gets a call, so anything that is
// not unambiguously a hostname or an IP literal is refused rather than guessed.
// ---------------------------------------------------------------------------

// ASCII only: validating before lower-casing stops Unicode look-alikes (the
// Kelvin sign lower-cases to "k") from sneaking in as a tenant's domain.
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/
const DIGITS = /^[0-9]+$/
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/

const isIPv4 = (s: string): boolean => {
  const parts = s.split(".")
  return (
    parts.length === 4 &&
    // Leading zeros are refused: some stacks read them as octal.
    parts.every((p) => DIGITS.test(p) && p.length <= 3 && Number(p) <= 255 && (p === "0" || p[0] !== "0"))
  )
}

const isHostname = (s: string): boolean => {
  if (s.length > 253) return false
  const labels = s.split(".")
  if (!labels.every((l) => LABEL.test(l))) return false
  // An all-numeric last label is a mistyped IPv4 or a phone number, never a domain.
  return !DIGITS.test(labels[labels.length - 1] ?? "")
}

const isIPv6 = (s: string): boolean => {
  const halves = s.split("::")
  if (halves.length > 2) return false
  const groups = halves.flatMap((h) => (h === "" ? [] : h.split(":")))
  // An embedded IPv4 tail ("::ffff:192.0.2.1") stands for two groups; it can
  // only end the address, so it must be the last group of the last half.
  const tail = (halves[halves.length - 1] ?? "").split(":").pop() ?? ""
  const v4Tail = tail.includes(".")
  if (v4Tail && !isIPv4(tail)) return false
  const hex = v4Tail ? groups.slice(0, -1) : groups
  if (!hex.every((g) => HEX_GROUP.test(g))) return false
  const count = hex.length + (v4Tail ? 2 : 0)
  return halves.length === 2 ? count <= 7 : count === 8
}

const ipv6 = (s: string): Option.Option<string> => (isIPv6(s) ? Option.some(s.toLowerCase()) : Option.none())

const nameOrIPv4 = (host: string): Option.Option<string> => {
  // A fully-qualified "example.com." names the same host as "example.com".
  const name = host.endsWith(".") ? host.slice(0, -1) : host
  return isIPv4(name) || isHostname(name) ? Option.some(name.toLowerCase()) : Option.none()
}

const isPort = (s: string): boolean => DIGITS.test(s) && s.length <= 5 && Number(s) >= 1 && Number(s) <= 65535

// ---------------------------------------------------------------------------
// SIP syntax. RFC 3261: name-addr = [display-name] "<" URI ">", or a bare
// addr-spec; after the URI come ;params, ?headers and (outside <>) ;tag=...
// ---------------------------------------------------------------------------

/** `[userinfo@]hostport[;params][?headers]`, scheme already removed. */
const hostFromUriBody = (body: string, hadScheme: boolean): Option.Option<string> => {
  // No part of a SIP URI may hold a raw "@" except as the end of the user part
  // (which may itself contain ";", "?", ":"), so a second "@" makes it ambiguous.
  const parts = body.split("@")
  if (parts.length > 2) return Option.none()
  const user = parts.length === 2 ? parts[0] : undefined
  const rest = parts[parts.length - 1] ?? ""
  // Without sip: a colon before "@" means a foreign scheme (mailto:, im:, ...).
  if (user !== undefined && (user === "" || (!hadScheme && user.includes(":")))) return Option.none()

  if (rest.startsWith("[")) {
    const close = rest.indexOf("]")
    if (close < 0) return Option.none()
    const port = /^(?::([^;?]*))?(?:[;?]|$)/.exec(rest.slice(close + 1))
    if (port === null || (port[1] !== undefined && !isPort(port[1]))) return Option.none()
    return ipv6(rest.slice(1, close))
  }

  const hostport = rest.split(/[;?]/, 1)[0] ?? ""
  const pieces = hostport.split(":")
  // Two or more colons cannot be host:port. URIs must bracket IPv6 (else a port
  // is ambiguous), so an unbracketed one is only taken as the whole bare value.
  if (pieces.length > 2) return !hadScheme && user === undefined && hostport === rest ? ipv6(hostport) : Option.none()
  const [host = "", port] = pieces
  return port !== undefined && !isPort(port) ? Option.none() : nameOrIPv4(host)
}

/** A bare addr-spec: optional sip:/sips: scheme, then the URI body. */
const hostFromAddrSpec = (spec: string): Option.Option<string> => {
  if (/[\s<>"]/.test(spec)) return Option.none()
  const scheme = /^(sips?):/i.exec(spec)
  if (scheme !== null) return hostFromUriBody(spec.slice(scheme[0].length), true)
  // tel: URIs carry a number, not a host; "tel:5060" must not become host "tel".
  if (/^tel:/i.test(spec)) return Option.none()
  return hostFromUriBody(spec, false)
}

/** Index just past the closing quote of the quoted string at `start`, or -1. */
const skipQuoted = (s: string, start: number): number => {
  for (let i = start + 1; i < s.length; i++) {
    if (s[i] === "\\") i++ // quoted-pair: the next character is literal, even a quote
    else if (s[i] === '"') return i + 1
  }
  return -1
}

/**
 * The host of a SIP header value or URI, lower-cased, without port, brackets
 * or trailing dot. Accepts bare hosts, host:port, user@host, sip:/sips: URIs
 * and name-addrs with quoted or unquoted display names. Never throws.
 */
export const parseSipHost = (raw: string): Option.Option<string> => {
  const s = raw.trim()
  let open: number
  if (s.startsWith('"')) {
    // Skipped as a unit: a quoted display name may contain "<", ">", "@", ";".
    const end = skipQuoted(s, 0)
    if (end < 0) return Option.none()
    open = s.indexOf("<", end)
    if (open < 0 || s.slice(end, open).trim() !== "") return Option.none()
  } else {
    open = s.indexOf("<")
    if (open < 0) return hostFromAddrSpec(s)
    if (/[">]/.test(s.slice(0, open))) return Option.none()
  }
  const close = s.indexOf(">", open)
  if (close < 0) return Option.none()
  // Only header parameters (;tag=...) may follow the closing bracket.
  const trailer = s.slice(close + 1).trim()
  if (trailer !== "" && !trailer.startsWith(";")) return Option.none()
  return hostFromAddrSpec(s.slice(open + 1, close).trim())
}

// ---------------------------------------------------------------------------
// Attributes → domain
// ---------------------------------------------------------------------------

/** x-to-ip is Kamailio's copy of the request-URI host; To is the fallback. */
const HEADERS = [
  { header: "x-to-ip", attribute: "sip.h.x-to-ip" },
  { header: "to", attribute: "sip.h.to" }
] as const

export type HeaderAttribute = (typeof HEADERS)[number]["attribute"]

const MAX_REPORTED_VALUE = 256

/** What one header gave: not sent (or blank), sent without a host in it, a host, or not read because an earlier one gave a host. */
export interface HeaderReading {
  readonly attribute: HeaderAttribute
  readonly value: string | undefined
  readonly outcome: "absent" | "unparseable" | "host" | "skipped"
}

/**
 * The headers in order, until one gives a host: that host is the tenant domain.
 * Absent and blank headers count as missing; the first present but unparsable
 * one is reported, so an operator can see what the SIP edge actually sent.
 */
export const readDomain = (attributes: Readonly<Record<string, string>> | undefined) => {
  const readings: Array<HeaderReading> = []
  let found: { readonly host: string; readonly attribute: HeaderAttribute } | undefined
  let firstBad: MalformedHeader | undefined
  for (const { attribute, header } of HEADERS) {
    const value = attributes?.[attribute]
    if (found !== undefined) {
      readings.push({ attribute, value, outcome: "skipped" })
    } else if (typeof value !== "string" || value.trim() === "") {
      readings.push({ attribute, value, outcome: "absent" })
    } else {
      const host = parseSipHost(value)
      if (Option.isSome(host)) found = { host: host.value, attribute }
      else firstBad ??= new MalformedHeader({ header, value: value.slice(0, MAX_REPORTED_VALUE) })
      readings.push({ attribute, value, outcome: Option.isSome(host) ? "host" : "unparseable" })
    }
  }
  return { found, readings, problem: firstBad ?? new MissingHeader() }
}

/** The tenant domain from LiveKit participant attributes (see readDomain). */
export const domainFromAttributes = (
  attributes: Readonly<Record<string, string>> | undefined
): Either.Either<string, MissingHeader | MalformedHeader> => {
  const { found, problem } = readDomain(attributes)
  return found ? Either.right(found.host) : Either.left(problem)
}
