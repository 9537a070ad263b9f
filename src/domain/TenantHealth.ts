import { Either, Schema } from "effect"

/**
 * A tenant's delivery health, shared by instances and kept across restarts: since when its attempts
 * have all failed (null after a 2xx), whether a `tenant.failing` alert told of that streak (so
 * whoever ends it sends `tenant.recovered`), and when it was disabled for it (null while enabled).
 */
export const TenantHealth = Schema.Struct({
  failingSince: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  // Written from the start of alerts on: a value from before then has none.
  failingAlerted: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  disabledAt: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null })
})
export type TenantHealth = typeof TenantHealth.Type

export const HEALTHY: TenantHealth = { failingSince: null, failingAlerted: false, disabledAt: null }

const TenantHealthJson = Schema.parseJson(TenantHealth)
const decodeJson = Schema.decodeUnknownEither(TenantHealthJson)

/** A stored value; none, or one that does not decode, is healthy. */
export const decodeTenantHealth = (text: string | undefined): TenantHealth =>
  text === undefined ? HEALTHY : Either.getOrElse(decodeJson(text), () => HEALTHY)

export const encodeTenantHealth = Schema.encodeSync(TenantHealthJson)

// The failing streak, as pure transitions: the tracker (delivery/TenantHealthTracker.ts) keeps
// them in memory and in the store, and raises the alerts they call for.

/** What one attempt's outcome does to its tenant's health. */
export type HealthChange =
  | { readonly _tag: "Unchanged" }
  /** The first failure after a 2xx (or ever). */
  | { readonly _tag: "StreakStarted"; readonly health: TenantHealth }
  /** A 2xx after failures: the streak that began at `since` is over. */
  | { readonly _tag: "StreakEnded"; readonly health: TenantHealth; readonly since: number }
  /** The streak has lasted `disableAfterMs`: nothing more is sent until an operator enables the tenant. */
  | { readonly _tag: "Disabled"; readonly health: TenantHealth; readonly failingSince: number }

const UNCHANGED: HealthChange = { _tag: "Unchanged" }

/** `disableAfterMs` of 0 never disables. A disabled tenant stays disabled through a 2xx (a test send, say): only enabling ends it. */
export const afterOutcome = (current: TenantHealth, succeeded: boolean, at: number, disableAfterMs: number): HealthChange => {
  if (succeeded) {
    return current.failingSince === null
      ? UNCHANGED
      : { _tag: "StreakEnded", health: { failingSince: null, failingAlerted: false, disabledAt: current.disabledAt }, since: current.failingSince }
  }
  if (current.failingSince === null) return { _tag: "StreakStarted", health: { failingSince: at, failingAlerted: false, disabledAt: current.disabledAt } }
  if (disableAfterMs <= 0 || current.disabledAt !== null || at - current.failingSince < disableAfterMs) return UNCHANGED
  return { _tag: "Disabled", health: { ...current, disabledAt: at }, failingSince: current.failingSince }
}

/**
 * Another instance sharing the store may have started this outage's streak already: it is
 * adopted, so every instance names the same streak (in its alerts' ids, and for the disable).
 * A streak that began before this instance's last 2xx is left over (its instance died before
 * ending it): this one's replaces it.
 */
export const streakToKeep = (stored: TenantHealth, started: TenantHealth, lastSuccessAt: number): TenantHealth =>
  stored.failingSince !== null && stored.failingSince > lastSuccessAt ? stored : started

/** The start of the streak a `tenant.failing` told of (here, or on another instance: the store says), which its end must say recovered. */
export const alertedStreak = (current: TenantHealth, stored: TenantHealth): number | undefined =>
  (current.failingAlerted ? current.failingSince : stored.failingAlerted ? stored.failingSince : null) ?? undefined

/** The health once a streak ended, with the disable as the store has it: an operator may have enabled the tenant on any instance. */
export const endedStreak = (stored: TenantHealth): TenantHealth => ({ failingSince: null, failingAlerted: false, disabledAt: stored.disabledAt })

/**
 * A circuit opening tells of its streak once: the streak's start for the `tenant.failing`, and the
 * health that records it was told; undefined when it was told already.
 */
export const failingToTell = (current: TenantHealth, at: number): { readonly since: number; readonly health: TenantHealth | undefined } | undefined =>
  current.failingAlerted
    ? undefined
    : { since: current.failingSince ?? at, health: current.failingSince === null ? undefined : { ...current, failingAlerted: true } }
