import { Context, type Effect, type Option, type Stream } from "effect"
import type { StoreUnavailable } from "../domain/Errors.ts"
import type { NumberMapping, StoredHook } from "../domain/Hook.ts"

/** The HTTP hook source's last good table, and the signing secrets' rotations: cached values that hold secrets, so the store seals them whole. */
export const REMOTE_HOOKS_KEY = "remoteHooks"
export const ROTATIONS_KEY = "signing-rotations"
export const SECRET_CACHE_KEYS: ReadonlySet<string> = new Set([REMOTE_HOOKS_KEY, ROTATIONS_KEY])

/** The hooks and numbers managed through the admin API, and the hook sources' cache, kept across restarts. */
export class HookStore extends Context.Tag("HookStore")<
  HookStore,
  {
    readonly apiHooks: Effect.Effect<ReadonlyArray<StoredHook>, StoreUnavailable>
    readonly putApiHook: (hook: StoredHook) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiHook: (host: string) => Effect.Effect<boolean, StoreUnavailable>
    readonly apiNumbers: Effect.Effect<ReadonlyArray<NumberMapping>, StoreUnavailable>
    readonly putApiNumber: (mapping: NumberMapping) => Effect.Effect<void, StoreUnavailable>
    readonly removeApiNumber: (number: string) => Effect.Effect<boolean, StoreUnavailable>
    /** Emits when another instance may have changed the API hooks or numbers, so the table is reloaded; never for a store of one. */
    readonly apiChanges: Stream.Stream<void>
    /** A small named value kept across restarts (the HTTP hook source's last good table). */
    readonly cached: (key: string) => Effect.Effect<Option.Option<string>, StoreUnavailable>
    readonly cache: (key: string, value: string) => Effect.Effect<void, StoreUnavailable>
  }
>() {}
