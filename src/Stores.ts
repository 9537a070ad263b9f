import type { Layer } from "effect"
import type { StoreUnavailable } from "./domain/Errors.ts"
import { makeRedisStore, type RedisStoreOptions } from "./store/redis/RedisStore.ts"
import { makeSqliteStore } from "./store/sqlite/SqliteStore.ts"
import { storeLayer, type StoreServices } from "./store/StoreLayer.ts"

// The stores to choose from, beside the app's composition: the store tags themselves know none of them.
// Each layer opens its store once and provides every store tag over it.

/** The embedded default: SQLite in WAL mode, a file per deployment, committed by a writer thread. */
export const sqliteStore = (path: string): Layer.Layer<StoreServices, StoreUnavailable> => storeLayer(makeSqliteStore(path))

/** Shared by every instance behind a load balancer: Redis with appendonly persistence. */
export const redisStore = (options: RedisStoreOptions): Layer.Layer<StoreServices, StoreUnavailable> => storeLayer(makeRedisStore(options))

/** Same code over a fresh in-memory database (a new one per call): nothing survives the process. */
export const memoryStore = (): Layer.Layer<StoreServices, StoreUnavailable> => storeLayer(makeSqliteStore(":memory:"))
