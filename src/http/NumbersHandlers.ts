import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { Forbidden, NotFound } from "../domain/Errors.ts"
import type { ActiveNumber } from "../domain/Hook.ts"
import { NumberCreated, type NumberView } from "../domain/HookViews.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { mayAccess, requireAccess } from "./Authorization.ts"
import { requestedNumber } from "./Responses.ts"

const view = (entry: ActiveNumber): NumberView => ({ number: entry.number, host: entry.host, source: entry.source })

export const NumbersLive = HttpApiBuilder.group(AdminApi, "numbers", (handlers) =>
  Effect.gen(function* () {
    const hooks = yield* HookTable
    const { defaultCountry } = yield* AppConfig

    /**
     * The path's number and the mapping it has now, if any; 403 when it points at
     * a host the caller may not act on (without naming that host, which is another tenant's).
     */
    const currentMapping = (text: string) =>
      Effect.gen(function* () {
        const principal = yield* CurrentPrincipal
        const number = yield* requestedNumber("number", text, defaultCountry)
        const entry = (yield* hooks.numbers).find((mapping) => mapping.number === number)
        if (entry !== undefined && !mayAccess(principal, entry.host)) {
          return yield* new Forbidden({ message: `${number} is mapped to a host this token may not act on` })
        }
        return { number, entry }
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
        Effect.flatMap(currentMapping(path.number), ({ number, entry }) =>
          entry ? Effect.succeed(view(entry)) : Effect.fail(new NotFound({ message: `no mapping for ${number}` }))
        )
      )
      .handle("put", ({ path, payload: { host } }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          yield* requireAccess(principal, host)
          const { number, entry } = yield* currentMapping(path.number)
          // An unmapped number may be another customer's (a port in progress): only an operator hands numbers out, or moves them.
          if (principal._tag === "Tenant" && entry?.host !== host) {
            return yield* new Forbidden({
              message: entry === undefined ? `${number} is not mapped: an operator token maps a new number` : `${number} is mapped to ${entry.host}: an operator token moves a number`
            })
          }
          const outcome = yield* hooks.putNumber({ number, host })
          const saved = { number, host, source: "api" } as const
          return outcome === "created" ? new NumberCreated(saved) : saved
        })
      )
      .handle("remove", ({ path }) => Effect.flatMap(currentMapping(path.number), ({ number }) => hooks.removeNumber(number)))
  })
)
