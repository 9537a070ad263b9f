import { Option } from "effect"
import { isHostPattern, type ActiveHook } from "../domain/Hook.ts"
import { isNationalSpelling, normaliseE164 } from "../domain/PhoneNumber.ts"
import { excerpt } from "../domain/Untrusted.ts"
import { allHooks, matchHost, matchNumber, type Table } from "../hooks/HookTable.ts"
import type { SipDecision, SipRules } from "./SipDecision.ts"

/**
 * Sentences an operator can act on, about why a call went where it did, or
 * nowhere: what the router saw, and the hook host or number it nearly
 * matched. Pure: `POST /v1/explain` asks for one call, and a view of the
 * unroutable domains for each domain with the numbers dialled to it.
 */

/** What the router saw of a call (or of the calls to one domain), and the hook it chose. */
export interface Observed {
  /** The domain the SIP headers gave, when one parsed. */
  readonly domain: string | null
  /** The dialled numbers as sent (`sip.trunkPhoneNumber`). */
  readonly dialled: ReadonlyArray<string>
  /** The hook the router chose, when it chose one. */
  readonly routedTo: ActiveHook | undefined
}

/** The routing in force: the hook table, which domains are shared, and the country national numbers are read in. */
export interface RoutingInForce extends SipRules {
  readonly table: Table
}

/** When a hook host was disabled for failing (ms), or null while it is enabled. */
export type DisabledSince = (host: string) => number | null

export const observedIn = (decision: SipDecision): Observed => ({
  domain: decision.domain,
  dialled: decision.steps.flatMap((step) => (step.source === "sip.trunkPhoneNumber" && step.value !== null ? [step.value] : [])),
  routedTo: decision.hook
})

const MAX_HINTS = 5
const MAX_NEAR_HOOKS = 3
const MAX_DIALLED = 3
const MAX_EDITS = 2

/** A sentence, and the hook host it names (whose health may add one more); a routed call has no sentence of its own. */
interface Lead {
  readonly sentence: string | undefined
  readonly host: string | undefined
}

// ---------------------------------------------------------------- domains

/** The Levenshtein distance, or undefined once it is over `max` (computed row by row, stopping early). */
const editsWithin = (a: string, b: string, max: number): number | undefined => {
  if (Math.abs(a.length - b.length) > max) return undefined
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    if (Math.min(...current) > max) return undefined
    previous = current
  }
  const edits = previous[b.length]!
  return edits <= max ? edits : undefined
}

/** Headers give a hostname or an IP literal, and a hostname never ends in an all-numeric label. */
const isIpAddress = (domain: string) => domain.includes(":") || /^[0-9]+$/.test(domain.slice(domain.lastIndexOf(".") + 1))

const CARRIER_OR_HOOK = "correct the destination at the carrier, or add a hook for it if the tenant uses that name"

/** How the domain nearly names the hook's host (`rank`: the lower, the nearer), when it does. */
const nearMiss = (domain: string, hook: ActiveHook): { readonly rank: number; readonly sentence: string } | undefined => {
  const seen = excerpt(domain)
  const labels = domain.split(".")
  const wildcard = hook.host.startsWith("*.")
  const suffix = wildcard ? hook.host.slice(2) : hook.host
  if (wildcard && domain === suffix) {
    return { rank: 0, sentence: `${seen} is the apex of the hook ${hook.host}, which covers only the names under it: add a hook for ${seen}.` }
  }
  if (!wildcard && domain.endsWith(`.${suffix}`) && labels.length === suffix.split(".").length + 1) {
    return { rank: 0, sentence: `${seen} is one label under the hook ${hook.host}, which matches only that exact name: add a hook for *.${hook.host} (or for ${seen}).` }
  }
  if (!wildcard && suffix.endsWith(`.${domain}`) && labels.length + 1 === suffix.split(".").length) {
    return { rank: 0, sentence: `${seen} is one label above the hook ${hook.host}: ${CARRIER_OR_HOOK}.` }
  }
  // A wildcard is compared through the names it covers nearest to the domain. A typo is told as
  // one, even in the last label; an ending no typo explains (net for com) as another ending.
  const named = (name: string) => (wildcard ? `the hook ${hook.host} (which covers ${name})` : `the hook ${hook.host}`)
  const nearest = wildcard ? nearestCovered(domain, suffix) : Option.fromNullable(editsWithin(domain, suffix, MAX_EDITS)).pipe(Option.map((edits) => ({ edits, name: suffix })))
  if (Option.isSome(nearest)) {
    const { edits, name } = nearest.value
    return { rank: edits, sentence: `${seen} is ${edits} edit${edits === 1 ? "" : "s"} from ${named(name)}: ${CARRIER_OR_HOOK}.` }
  }
  const target = wildcard ? `${labels[0]}.${suffix}` : suffix
  const ending = otherEnding(labels, target.split("."))
  return ending && { rank: 1, sentence: `${seen} has the leading labels of ${named(target)} under another ending (${ending.seen}, not ${ending.hook}): ${CARRIER_OR_HOOK}.` }
}

/** The name under `*.suffix` fewest edits from the domain (its own leading part, then the suffix), within MAX_EDITS; of equals, the one keeping more of the domain. */
const nearestCovered = (domain: string, suffix: string) => {
  let nearest = Option.none<{ readonly edits: number; readonly name: string }>()
  for (let cut = 1; cut < domain.length; cut++) {
    if (domain[cut - 1] === ".") continue
    const edits = editsWithin(domain.slice(cut), `.${suffix}`, MAX_EDITS)
    if (edits !== undefined && (Option.isNone(nearest) || edits <= nearest.value.edits)) nearest = Option.some({ edits, name: `${domain.slice(0, cut)}.${suffix}` })
  }
  return nearest
}

/** Same leading labels (at least two, or one of two), then a different ending of which one side is a single label: calls.drsmith.net and calls.drsmith.com. */
const otherEnding = (seen: ReadonlyArray<string>, hook: ReadonlyArray<string>) => {
  let shared = 0
  while (shared < seen.length && shared < hook.length && seen[shared] === hook[shared]) shared++
  const [seenTail, hookTail] = [seen.slice(shared), hook.slice(shared)]
  if (shared === 0 || seenTail.length === 0 || hookTail.length === 0 || Math.min(seenTail.length, hookTail.length) > 1) return undefined
  if (shared < 2 && (seen.length !== 2 || hook.length !== 2)) return undefined
  return { seen: seenTail.join("."), hook: hookTail.join(".") }
}

/** Hooks the domain nearly matches; none when it matches one (a domain that routes is no near miss). */
const nearHooks = (domain: string, table: Table): ReadonlyArray<Lead> =>
  matchHost(table, domain) !== undefined
    ? []
    : allHooks(table)
    .flatMap((hook) => {
      const miss = nearMiss(domain, hook)
      return miss ? [{ ...miss, host: hook.host }] : []
    })
    .sort((a, b) => a.rank - b.rank || a.host.localeCompare(b.host))
    .slice(0, MAX_NEAR_HOOKS)

// ---------------------------------------------------------------- dialled numbers

const distinctDialled = (observed: Observed) => [...new Set(observed.dialled)].slice(0, MAX_DIALLED)

/** The digits of a number written any way, without the leading zeros of an international or trunk prefix. */
const digitsOf = (text: string) => text.replace(/[^0-9]/g, "").replace(/^0+/, "")

/** The same number with or without up to three leading digits (a country code, what is left of a prefix). */
const sameDigits = (dialled: string, mapped: string) => {
  const [a, b] = [digitsOf(dialled), digitsOf(mapped)]
  const [shorter, longer] = a.length <= b.length ? [a, b] : [b, a]
  return shorter.length >= 6 && longer.endsWith(shorter) && longer.length - shorter.length <= 3
}

/** A dialled number consulted (the domain was shared or absent) that found no hook. */
const unmatchedNumber = (dialled: string, { table, defaultCountry }: RoutingInForce): Lead | undefined => {
  const reads = Option.getOrNull(normaliseE164(dialled, defaultCountry))
  const mapping = reads === null ? undefined : table.numbers.get(reads)
  if (mapping && !matchHost(table, mapping.host)) {
    return {
      sentence: `The dialled number ${reads} is mapped to ${mapping.host}, but no hook has that host: add the hook (PUT /v1/hooks/${mapping.host}) or map the number elsewhere.`,
      host: undefined
    }
  }
  const near = [...table.numbers.values()].find((mapping) => mapping.number !== reads && sameDigits(dialled, mapping.number) && matchHost(table, mapping.host))
  if (!near) return undefined
  const said = `The dialled number ${excerpt(dialled)}`
  const to = `the mapped ${near.number} (${near.host})`
  return {
    sentence:
      reads === null && defaultCountry === undefined && isNationalSpelling(dialled)
        ? `${said} is national, and without defaultCountry no national number is read, though its digits match ${to}: set defaultCountry to the carrier's country, or have it send ${near.number}.`
        : reads === null
        ? `${said} is not a number the router can read, though its digits match ${to}: have the carrier send ${near.number}.`
        : `${said} reads as ${reads}, not ${to}, though its digits match: map ${reads} to ${near.host} too (PUT /v1/numbers/${reads}), or have the carrier send ${near.number}.`,
    host: near.host
  }
}

/** A mapped number a domain kept from deciding: numbers decide only for shared domains and calls without one. */
const mappedNumbers = (observed: Observed, { table, defaultCountry }: RoutingInForce) =>
  distinctDialled(observed).flatMap((dialled) => {
    const reads = Option.getOrNull(normaliseE164(dialled, defaultCountry))
    const hook = reads === null ? undefined : matchNumber(table, reads)
    return hook ? [{ number: reads!, host: hook.host }] : []
  })

// ---------------------------------------------------------------- hints

const ipAddress = (ip: string, observed: Observed, routing: RoutingInForce): Lead => {
  const seen = excerpt(ip)
  const [mapped] = mappedNumbers(observed, routing)
  const share = !isHostPattern(ip)
    ? ""
    : mapped
      ? `, or list ${seen} in sharedDomains so that the dialled number decides (${mapped.number} is mapped to ${mapped.host})`
      : `, or list ${seen} in sharedDomains and map the dialled numbers (PUT /v1/numbers/{number})`
  return { sentence: `The SIP headers name the IP address ${seen}, not a domain: the carrier sends its calls to an address. Ask it to send them to the tenant's domain${share}.`, host: mapped?.host }
}

const leadsFor = (observed: Observed, routing: RoutingInForce): ReadonlyArray<Lead> => {
  if (observed.routedTo) return [{ sentence: undefined, host: observed.routedTo.host }]
  const { domain } = observed
  const { table, isShared } = routing
  if (domain === null || isShared(domain)) return distinctDialled(observed).flatMap((dialled) => unmatchedNumber(dialled, routing) ?? [])
  if (isIpAddress(domain)) return [ipAddress(domain, observed, routing)]
  // A domain near a hook is a tenant's, mistyped: only a domain near none may be the carrier's own.
  const near = nearHooks(domain, table)
  if (near.length > 0) return near
  return mappedNumbers(observed, routing).map(({ number, host }) => ({
    sentence: `The dialled number ${number} is mapped to ${host}, but a number decides only for a shared domain (or a call without one): if ${excerpt(domain)} is the carrier's own host, list it in sharedDomains.`,
    host
  }))
}

/** The hook hosts the hints may name: the ones whose health `hintsFor` asks about. */
export const hooksNamed = (observed: Observed, routing: RoutingInForce): ReadonlyArray<string> => [
  ...new Set(leadsFor(observed, routing).flatMap((lead) => (lead.host === undefined ? [] : [lead.host])))
]

const disabledHint = (host: string, since: number) =>
  `The hook ${host} is disabled since ${new Date(since).toISOString()}, after failing for delivery.disableAfter: events routed to it end failed unsent. Enable it with POST /v1/hooks/${host}/enable (then POST /v1/tenants/${host}/recover replays them).`

/**
 * At most a handful of hints, nearest first, each followed by a word on the
 * hook it names when that hook is disabled; none for a call routed to an
 * enabled hook. Values from the call are quoted as excerpts: callers set them.
 */
export const hintsFor = (observed: Observed, routing: RoutingInForce, disabledSince: DisabledSince): ReadonlyArray<string> => {
  const told = new Set<string>()
  return leadsFor(observed, routing)
    .flatMap(({ sentence, host }) => {
      const since = host === undefined || told.has(host) ? null : disabledSince(host)
      if (since !== null) told.add(host!)
      return [...(sentence === undefined ? [] : [sentence]), ...(since === null ? [] : [disabledHint(host!, since)])]
    })
    .slice(0, MAX_HINTS)
}
