import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Forbidden, NotFound } from "../domain/Errors.ts"
import type { ActiveNumber, E164 } from "../domain/Hook.ts"
import { NumberCreated, type NumberView } from "../domain/HookViews.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { mayAccess, requireAccess } from "./Authorization.ts"

const view = (entry: ActiveNumber): NumberView => ({ number: entry.number, host: entry.host, source: entry.source })

export const NumbersLive = HttpApiBuilder.group(AdminApi, "numbers", (handlers) =>
  Effect.gen(function* () {
    const hooks = yield* HookTable

    /**
     * The mapping the number has now, if any; 403 when it points at a host the
     * caller may not act on (without naming that host, which is another tenant's).
     */
    const currentMapping = (number: E164) =>
      Effect.gen(function* () {
        const principal = yield* CurrentPrincipal
        const entry = (yield* hooks.numbers).find((mapping) => mapping.number === number)
        if (entry !== undefined && !mayAccess(principal, entry.host)) {
          return yield* new Forbidden({ message: `${number} is mapped to a host this token may not act on` })
        }
        return entry
      })

    return handlers
      .handle("list", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const numbers = yield* hooks.numbers
          return { numbers: numbers.filter((entry) => mayAccess(principal, entry.host)).map(view) }
        })
      )
      .handle("get", ({ path }) =>
        Effect.flatMap(currentMapping(path.number), (entry) =>
          entry ? Effect.succeed(view(entry)) : Effect.fail(new NotFound({ message: `no mapping for ${path.number}` }))
        )
      )
      .handle("put", ({ path: { number }, payload: { host } }) =>
        Effect.gen(function* () {
          yield* requireAccess(yield* CurrentPrincipal, host)
          yield* currentMapping(number)
          const outcome = yield* hooks.putNumber({ number, host })
          const saved = { number, host, source: "api" } as const
          return outcome === "created" ? new NumberCreated(saved) : saved
        })
      )
      .handle("remove", ({ path }) => Effect.zipRight(currentMapping(path.number), hooks.removeNumber(path.number)))
  })
)
