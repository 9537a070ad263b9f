import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Duration, Either } from "effect"
import { decodeConfig } from "../src/domain/Config.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const base = {
  livekit: { apiKey: "k", apiSecret: "s" },
  signing: { secret: "whsec_" + Buffer.alloc(32, 7).toString("base64") }
}
const problem = (store: unknown) => {
  const decoded = decodeConfig({ ...base, store })
  return Either.isLeft(decoded) ? decoded.left.message : "ok"
}

describe("store: redis", () => {
  test("a redis URL selects Redis, with a 10 s lease and the default prefix", () => {
    const config = Either.getOrThrow(decodeConfig({ ...base, store: { redis: "redis://127.0.0.1:6379/2" } }))
    expect(config.store.redis).toBe("redis://127.0.0.1:6379/2")
    expect(Duration.toMillis(config.store.lease)).toBe(10_000)
    expect(config.store.prefix).toBe("sip-tenant-router:")
    expect(problem({ redis: "rediss://redis.internal:6380", lease: "30s", prefix: "eu:" })).toBe("ok")
  })

  test.each([
    ["http://127.0.0.1:6379", "store.redis"],
    ["redis://", "store.redis"],
    ["redis://127.0.0.1:6379/db0", "store.redis"],
    ["not a url", "store.redis"]
  ])("a bad URL (%p) is refused, naming the key", (redis, key) => {
    expect(problem({ redis })).toContain(key)
    expect(problem({ redis })).toContain("redis://host:port/db")
  })

  test("path and redis together, or Redis-only keys without redis, are refused naming the key", () => {
    expect(problem({ path: "./x.db", redis: "redis://127.0.0.1:6379" })).toContain("store")
    expect(problem({ path: "./x.db", redis: "redis://127.0.0.1:6379" })).toContain("not both")
    expect(problem({ lease: "5s" })).toContain("store.lease")
    expect(problem({ path: "./x.db", prefix: "a:" })).toContain("store.prefix")
    expect(problem({ redis: "redis://127.0.0.1:6379", lease: "500ms" })).toContain("store.lease")
  })
})
