import { type AttemptRecord, isDisableEntry } from "./Delivery.ts"

// Delivery attempts counted per minute, for the admin API's overview: both stores keep one small
// tally per minute, added to in the write that records the attempts, so the overview reads at most
// an hour's worth of tallies and never the attempts themselves.

export const MINUTE_MS = 60_000

/**
 * The latency buckets' upper bounds in ms (an attempt that took exactly a bound is in its bucket);
 * one more bucket holds the attempts that took longer than the last. Fixed: the stores keep a
 * count per bucket.
 */
export const LATENCY_BOUNDS_MS: ReadonlyArray<number> = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000]
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1

/** What the attempts that ended in one minute (counted since the epoch) came to. */
export interface MinuteTally {
  readonly minute: number
  readonly succeeded: number
  readonly failed: number
  /** Attempts per latency bucket: LATENCY_BUCKETS counts. */
  readonly latency: ReadonlyArray<number>
}

/** How many minutes a tally is kept, at least: twice the hour the overview reads. */
export const MINUTE_TALLY_KEPT = 120

export const minuteOf = (ms: number) => Math.floor(ms / MINUTE_MS)

/** The bucket an attempt of this duration is counted in. */
export const latencyBucket = (ms: number): number => {
  const bucket = LATENCY_BOUNDS_MS.findIndex((bound) => ms <= bound)
  return bucket === -1 ? LATENCY_BOUNDS_MS.length : bucket
}

/** An attempt as the delivery's history shows it: an expiry or a disable sent nothing, so neither is one. */
export const wasSent = (record: AttemptRecord) => record.final !== "expired" && !isDisableEntry(record)

/** The tallies of these records' attempts, one per minute they ended in, in no particular order. */
export const tallyAttempts = (records: ReadonlyArray<AttemptRecord>): ReadonlyArray<MinuteTally> => {
  const byMinute = new Map<number, { minute: number; succeeded: number; failed: number; latency: Array<number> }>()
  for (const record of records) {
    if (!wasSent(record)) continue
    const minute = minuteOf(record.at)
    let tally = byMinute.get(minute)
    if (tally === undefined) byMinute.set(minute, (tally = { minute, succeeded: 0, failed: 0, latency: Array<number>(LATENCY_BUCKETS).fill(0) }))
    // Only a 2xx delivers: every other attempt (retried or final) failed.
    if (record.final === "delivered") tally.succeeded++
    else tally.failed++
    tally.latency[latencyBucket(record.latencyMs)]!++
  }
  return [...byMinute.values()]
}

/** A tally's counts in a fixed order (succeeded, failed, then each latency bucket): as the stores keep them. */
export const tallyCounts = (tally: MinuteTally): ReadonlyArray<number> => [tally.succeeded, tally.failed, ...tally.latency]

/** A tally from its counts in that order; what a store lacks counts as 0. */
export const tallyOfCounts = (minute: number, counts: ReadonlyArray<number | null | undefined>): MinuteTally => {
  const at = (i: number) => Number(counts[i] ?? 0)
  return { minute, succeeded: at(0), failed: at(1), latency: Array.from({ length: LATENCY_BUCKETS }, (_, i) => at(i + 2)) }
}

/**
 * The upper bound of the bucket holding the 99th percentile of these attempts' durations (the
 * smallest bound at least 99% of them are within); null without attempts. Past the last bound
 * it is the last bound: the 99th percentile is at least that.
 */
export const p99Bound = (latency: ReadonlyArray<number>): number | null => {
  const total = latency.reduce((sum, n) => sum + n, 0)
  if (total === 0) return null
  const rank = Math.ceil(total * 0.99)
  let seen = 0
  for (let bucket = 0; bucket < LATENCY_BOUNDS_MS.length; bucket++) {
    seen += latency[bucket] ?? 0
    if (seen >= rank) return LATENCY_BOUNDS_MS[bucket]!
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!
}

/** The minutes an overview covers: the last `count`, the one in progress last. */
export const lastMinutes = (now: number, count: number) => {
  const last = minuteOf(now)
  return { first: last - count + 1, last }
}

/** An hour (or any run of minutes) from its tallies: every minute, oldest first, with the totals over all of them. */
export const summarize = (tallies: ReadonlyArray<MinuteTally>, first: number, last: number) => {
  const byMinute = new Map(tallies.map((tally) => [tally.minute, tally]))
  const minutes = Array.from({ length: last - first + 1 }, (_, i) => byMinute.get(first + i) ?? tallyOfCounts(first + i, []))
  const latency = Array<number>(LATENCY_BUCKETS).fill(0)
  let succeeded = 0
  let failed = 0
  for (const minute of minutes) {
    succeeded += minute.succeeded
    failed += minute.failed
    minute.latency.forEach((n, bucket) => (latency[bucket]! += n))
  }
  return {
    minutes,
    successRate: succeeded + failed === 0 ? null : succeeded / (succeeded + failed),
    p99Ms: p99Bound(latency)
  }
}
