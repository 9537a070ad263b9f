/**
 * Per-tenant rate limits (`rateLimit: 50/s` on a hook) as a token bucket: up
 * to `count` requests at once, refilled continuously at `count` per `perMs`.
 * Pure, so the arithmetic is tested without clocks.
 */
export interface RateLimit {
  readonly count: number
  readonly perMs: number
}

const UNITS = { s: 1_000, m: 60_000, h: 3_600_000 } as const
const PATTERN = /^\s*(\d+)\s*\/\s*(s|m|h)\s*$/

/** Parses `50/s`, `600/m` or `1000/h`; undefined when malformed or zero. */
export const parseRateLimit = (text: string): RateLimit | undefined => {
  const match = PATTERN.exec(text)
  if (!match) return undefined
  const count = Number(match[1])
  return count > 0 && Number.isSafeInteger(count) ? { count, perMs: UNITS[match[2] as keyof typeof UNITS] } : undefined
}

/**
 * Credit is counted in 1/perMs of a token, so refills (elapsed × count) and
 * takes (perMs) are whole numbers: floats drifted by one millisecond.
 */
export interface Bucket {
  readonly credit: number
  readonly updatedAt: number
}

export const fullBucket = (limit: RateLimit, now: number): Bucket => ({ credit: limit.count * limit.perMs, updatedAt: now })

/**
 * Takes one token if there is one. Otherwise says how long until there is,
 * without taking anything: a throttled delivery has not been attempted.
 */
export const takeToken = (limit: RateLimit, bucket: Bucket, now: number): { readonly waitMs: number; readonly bucket: Bucket } => {
  const elapsed = Math.max(0, now - bucket.updatedAt)
  const credit = Math.min(limit.count * limit.perMs, bucket.credit + elapsed * limit.count)
  const updatedAt = Math.max(now, bucket.updatedAt)
  if (credit >= limit.perMs) return { waitMs: 0, bucket: { credit: credit - limit.perMs, updatedAt } }
  return { waitMs: Math.ceil((limit.perMs - credit) / limit.count), bucket: { credit, updatedAt } }
}
