import { Schema } from "effect"
import { LATENCY_BOUNDS_MS } from "./AttemptMinutes.ts"
import type { UnroutableGroup } from "./Delivery.ts"

/** What `GET /v1/overview` shows: the last hour of deliveries, the queue, the tenants in trouble and where unroutable calls come from. Times are ISO-8601 in UTC. */

export const OverviewMinuteView = Schema.Struct({
  at: Schema.String.annotations({ description: "the minute's start" }),
  succeeded: Schema.Number,
  failed: Schema.Number
}).annotations({ identifier: "OverviewMinute" })

export const UnroutableCountView = Schema.Struct({ domain: Schema.String, count: Schema.Number }).annotations({ identifier: "UnroutableCount" })
export type UnroutableCountView = typeof UnroutableCountView.Type

export const OverviewView = Schema.Struct({
  from: Schema.String.annotations({ description: "the start of the oldest minute" }),
  to: Schema.String.annotations({ description: "now: the newest minute is the one in progress" }),
  minutes: Schema.Array(OverviewMinuteView).annotations({
    description:
      "60, oldest first: the delivery attempts that ended in each minute, as the deliveries' histories show them (an expiry, a delivery ended because its tenant is disabled, and the probe of an open circuit are none); succeeded is a 2xx"
  }),
  successRate: Schema.NullOr(Schema.Number).annotations({ description: "succeeded / (succeeded + failed) over the hour; null without attempts" }),
  p99Ms: Schema.NullOr(Schema.Number).annotations({
    description: `the 99th percentile of the hour's attempt durations, as the upper bound of the bucket it is in (bounds ${LATENCY_BOUNDS_MS.join(", ")} ms; past the last, the last: at least that); null without attempts`
  }),
  queue: Schema.Struct({
    pending: Schema.Number,
    oldestPendingAt: Schema.NullOr(Schema.String).annotations({ description: "when the delivery that has waited longest was queued; null when none is pending" })
  }),
  tenants: Schema.Struct({
    failing: Schema.Array(Schema.String).annotations({ description: "hook hosts whose attempts have all failed since their last 2xx, not disabled" }),
    disabled: Schema.Array(Schema.String).annotations({ description: "hook hosts disabled for their failures (POST /v1/hooks/{host}/enable)" })
  }),
  unroutable: Schema.Array(UnroutableCountView).annotations({
    description: "the 5 domains with the most unroutable events the store still holds, most first (events without a domain aside)"
  })
}).annotations({ identifier: "Overview" })
export type OverviewView = typeof OverviewView.Type

/** The `limit` domains with the most unroutable events, most first; of two as many, the one seen more recently first. */
export const topUnroutableDomains = (groups: ReadonlyArray<UnroutableGroup>, limit: number): ReadonlyArray<UnroutableCountView> => {
  // The groups come most recently seen first: a domain's first group is its latest, so the map's order breaks ties.
  const counts = new Map<string, number>()
  for (const group of groups) if (group.domain !== null) counts.set(group.domain, (counts.get(group.domain) ?? 0) + group.count)
  return [...counts]
    .map(([domain, count]) => ({ domain, count }))
    .sort((a, b) => b.count - a.count)
    .slice(0, limit)
}
