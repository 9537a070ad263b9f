import { Context, type Effect, type Option } from "effect"
import type { CallDetail, CallListing, CallQuery } from "../domain/Call.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"

/** The calls API's reads: call records, newest first, and one call with its timeline. */
export class CallHistory extends Context.Tag("CallHistory")<
  CallHistory,
  {
    readonly calls: (query: CallQuery) => Effect.Effect<ReadonlyArray<CallListing>, StoreUnavailable>
    /** The call of this room sid, else the newest call of this room name (of two as new, the one with the greater key). */
    readonly call: (ref: string) => Effect.Effect<Option.Option<CallDetail>, StoreUnavailable>
  }
>() {}
