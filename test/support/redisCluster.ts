import { rmSync } from "node:fs"
import { startRedis, type TestRedis } from "./redis.ts"
import { startRouter, testConfig, type RunningRouter } from "./router.ts"

export interface RedisCluster {
  readonly redis: TestRedis
  readonly routers: Array<RunningRouter>
  /** Starts one more instance on the same Redis, e.g. to replace a killed one. */
  readonly add: () => Promise<RunningRouter>
  /** Stops every router (SIGKILL) and the Redis server, removing their data. */
  readonly stop: () => Promise<void>
}

/**
 * Starts a Redis (appendonly, fsync always) and `instances` real router
 * processes sharing it, each on its own loopback port, as behind a load
 * balancer. `overrides` go into every router's config as in `testConfig`;
 * `lease` is the store lease (short in tests, so take-over is quick).
 */
export const startRedisCluster = async (
  instances: number,
  overrides: Record<string, unknown> = {},
  options: { readonly lease?: string; readonly redis?: TestRedis } = {}
): Promise<RedisCluster> => {
  const redis = options.redis ?? (await startRedis())
  const routers: Array<RunningRouter> = []
  const add = async () => {
    const router = await startRouter((dir) => ({
      ...testConfig(dir, overrides),
      store: { redis: redis.url(), lease: options.lease ?? "2s" }
    }))
    routers.push(router)
    return router
  }
  try {
    await Promise.all(Array.from({ length: instances }, add))
  } catch (error) {
    await redis.stop()
    throw error
  }
  return {
    redis,
    routers,
    add,
    stop: async () => {
      await Promise.all(routers.map((r) => r.stop("SIGKILL")))
      for (const r of routers) rmSync(r.dir, { recursive: true, force: true })
      await redis.stop()
    }
  }
}
