import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Option } from "effect"
import { Store } from "../src/Store.ts"
import { redisAvailable, startRedis, type TestRedis } from "./support/redis.ts"
import { acceptance, deliver, newDelivery, runOn, storeContract } from "./support/storeContract.ts"

const DAY = 86_400_000
let redis: TestRedis | undefined
let seq = 0
/** A fresh key prefix per store, so cases share one server but no data. */
const layer = (options: { prefix?: string; leaseMs?: number } = {}) =>
  Store.redis({ url: redis!.url(), prefix: options.prefix ?? `t${++seq}:`, leaseMs: options.leaseMs ?? 10_000, dedupeMs: 2 * DAY, pinsMs: DAY })

describe.skipIf(!redisAvailable())("the Redis store", () => {
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(() => redis?.stop())

  storeContract(() => layer())
})
