import { Option } from "effect"
import { UnknownDomain, type Unroutable } from "../domain/Errors.ts"
import { isUnderWildcard, type ActiveHook } from "../domain/Hook.ts"
import { normaliseE164, type Country } from "../domain/PhoneNumber.ts"
import { matchHost, type Table } from "../hooks/HookTable.ts"
import { readDomain } from "./DomainExtractor.ts"

/** Where a domain or number came from: the attribute LiveKit set from the SIP edge. */
export type Source = "sip.h.x-to-ip" | "sip.h.to" | "sip.trunkPhoneNumber"

/** What one attribute contributed to the decision. */
export interface Step {
  readonly source: Source
  /** The attribute as sent (cut to 256 characters), or null when absent. */
  readonly value: string | null
  /** The domain it gave (or, for the dialled number, the E.164 form), or null. */
  readonly domain: string | null
  /**
   * `absent`: not sent, or blank; `unparseable`: sent, but no host (or number) in it;
   * `no_hook`: it gave a domain or number that no hook claims; `matched`: it chose the
   * tenant; `skipped`: not consulted, because an earlier attribute decided.
   */
  readonly outcome: "absent" | "unparseable" | "no_hook" | "matched" | "skipped"
}

/** How the tenant was chosen: an exact host, a wildcard, or the dialled number's mapping. */
export type Rule = "exact" | "wildcard" | "number"

/** The router's decision for a SIP participant's attributes, with how it got there. */
export interface SipDecision {
  readonly hook: ActiveHook | undefined
  /** The domain the edge preserved, when one parsed. */
  readonly domain: string | null
  readonly rule: Rule | null
  /** The hook host, or the number, that matched. */
  readonly pattern: string | null
  /** The attribute that gave the domain or number that matched. */
  readonly source: Source | null
  /** Why no tenant, when there is none. */
  readonly reason: Unroutable | undefined
  readonly steps: ReadonlyArray<Step>
}

const MAX_VALUE = 256
const shown = (value: string | undefined) => (value === undefined ? null : value.slice(0, MAX_VALUE))

/** Whether a domain is a shared one: listed exactly, or under a listed `*.` wildcard (any deeper subdomain, not the apex). */
export const sharedDomainMatcher = (patterns: ReadonlyArray<string>) => {
  const exact = new Set(patterns)
  const wildcards = patterns.filter((p) => p.startsWith("*."))
  return (domain: string) => exact.has(domain) || wildcards.some((wildcard) => isUnderWildcard(domain, wildcard))
}

/** What decides a call besides the hook table: which domains are shared, and the country a national number is read in. */
export interface SipRules {
  readonly isShared: (domain: string) => boolean
  readonly defaultCountry: Country | undefined
}

export const sipRules = (config: { readonly sharedDomains: ReadonlyArray<string>; readonly defaultCountry?: Country | undefined }): SipRules => ({
  isShared: sharedDomainMatcher(config.sharedDomains),
  defaultCountry: config.defaultCountry
})

/**
 * The tenant for a SIP participant's attributes: the domain the edge preserved
 * (x-to-ip, else To) when it names a hook; for a shared domain, or when no header
 * gave a domain, the dialled number's mapping. Absent and blank headers are
 * skipped; a present but unparsable one is reported. Pure: the router and
 * `POST /v1/explain` run the same decision.
 */
export const decideSip = (attributes: Readonly<Record<string, string>>, table: Table, { isShared, defaultCountry }: SipRules): SipDecision => {
  const { found, readings, problem } = readDomain(attributes)
  const dialled = attributes["sip.trunkPhoneNumber"]
  const headerSteps = (outcome: Step["outcome"]): Array<Step> =>
    readings.map(({ attribute, value, outcome: read }) => ({
      source: attribute,
      value: shown(value),
      domain: read === "host" ? found!.host : null,
      outcome: read === "host" ? outcome : read
    }))

  if (found !== undefined && !isShared(found.host)) {
    const hook = matchHost(table, found.host)
    return {
      hook,
      domain: found.host,
      rule: hook ? (hook.host.startsWith("*.") ? "wildcard" : "exact") : null,
      pattern: hook?.host ?? null,
      source: hook ? found.attribute : null,
      reason: hook ? undefined : new UnknownDomain({ domain: found.host }),
      steps: [...headerSteps(hook ? "matched" : "no_hook"), { source: "sip.trunkPhoneNumber", value: shown(dialled), domain: null, outcome: dialled === undefined ? "absent" : "skipped" }]
    }
  }

  // A shared domain names no tenant, and no domain names none: the dialled number may.
  const reason = found !== undefined ? new UnknownDomain({ domain: found.host }) : problem
  const domain = found?.host ?? null
  const number = dialled === undefined ? Option.none() : normaliseE164(dialled, defaultCountry)
  if (Option.isNone(number)) {
    const outcome = dialled === undefined || dialled.trim() === "" ? "absent" : "unparseable"
    return { hook: undefined, domain, rule: null, pattern: null, source: null, reason, steps: [...headerSteps("skipped"), { source: "sip.trunkPhoneNumber", value: shown(dialled), domain: null, outcome }] }
  }
  const mapping = table.numbers.get(number.value)
  const hook = mapping && matchHost(table, mapping.host)
  const steps = [...headerSteps("skipped"), { source: "sip.trunkPhoneNumber" as const, value: shown(dialled), domain: number.value, outcome: hook ? ("matched" as const) : ("no_hook" as const) }]
  return hook
    ? { hook, domain, rule: "number", pattern: number.value, source: "sip.trunkPhoneNumber", reason: undefined, steps }
    : { hook: undefined, domain, rule: null, pattern: null, source: null, reason, steps }
}
