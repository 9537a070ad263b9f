import { Layer } from "effect"
import type { StoreUnavailable } from "./domain/Errors.ts"
import { makeRedisStore, type RedisStoreOptions } from "./store/redis/RedisStore.ts"
import { makeSqliteStore } from "./store/sqlite/SqliteStore.ts"
import { Store } from "./store/Store.ts"

// The stores to choose from, beside the app's composition: `Store` itself knows none of them.

/** The embedded default: SQLite in WAL mode, a file per deployment, committed by a writer thread. */
export const sqliteStore = (path: string): Layer.Layer<Store, StoreUnavailable> => Layer.scoped(Store, makeSqliteStore(path))

/** Shared by every instance behind a load balancer: Redis with appendonly persistence. */
export const redisStore = (options: RedisStoreOptions): Layer.Layer<Store, StoreUnavailable> => Layer.scoped(Store, makeRedisStore(options))

/** Same code over a fresh in-memory database (a new one per call): nothing survives the process. */
export const memoryStore = (): Layer.Layer<Store, StoreUnavailable> => Layer.scoped(Store, makeSqliteStore(":memory:"))
