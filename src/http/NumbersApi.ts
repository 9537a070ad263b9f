import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { NotFound } from "../domain/Errors.ts"
import { E164, HostPattern, type ActiveNumber } from "../domain/Hook.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { admin, decodeBody, decodeParam, Forbidden, mayAccess, requireAccess, type Principal } from "./Admin.ts"

const view = (entry: ActiveNumber) => ({ number: entry.number, host: entry.host, source: entry.source })

const numberParam = decodeParam("number", E164)

/**
 * The mapping the number has now, if any; 403 when it points at a host the
 * caller may not act on (without naming that host, which is another tenant's).
 */
const currentMapping = (principal: Principal, number: string) =>
  Effect.flatMap(HookTable, (hooks) =>
    Effect.flatMap(hooks.numbers, (all) => {
      const entry = all.find((mapping) => mapping.number === number)
      return entry === undefined || mayAccess(principal, entry.host)
        ? Effect.succeed(entry)
        : Effect.fail(new Forbidden({ message: `${number} is mapped to a host this token may not act on` }))
    })
  )

const ListNumbers = HttpLayerRouter.add(
  "GET",
  "/v1/numbers",
  admin((principal) =>
    Effect.gen(function* () {
      const numbers = yield* (yield* HookTable).numbers
      return HttpServerResponse.unsafeJson({ numbers: numbers.filter((entry) => mayAccess(principal, entry.host)).map(view) })
    })
  )
)

const GetNumber = HttpLayerRouter.add(
  "GET",
  "/v1/numbers/:number",
  admin((principal) =>
    Effect.gen(function* () {
      const number = yield* numberParam
      const entry = yield* currentMapping(principal, number)
      if (!entry) return yield* new NotFound({ message: `no mapping for ${number}` })
      return HttpServerResponse.unsafeJson(view(entry))
    })
  )
)

const PutNumber = HttpLayerRouter.add("PUT", "/v1/numbers/:number", (request) =>
  admin((principal) =>
    Effect.gen(function* () {
      const number = yield* numberParam
      const { host } = yield* decodeBody(Schema.Struct({ host: HostPattern }), request)
      yield* requireAccess(principal, host)
      yield* currentMapping(principal, number)
      const outcome = yield* (yield* HookTable).putNumber({ number, host })
      return HttpServerResponse.unsafeJson({ number, host, source: "api" }, { status: outcome === "created" ? 201 : 200 })
    })
  )
)

const DeleteNumber = HttpLayerRouter.add(
  "DELETE",
  "/v1/numbers/:number",
  admin((principal) =>
    Effect.gen(function* () {
      const number = yield* numberParam
      yield* currentMapping(principal, number)
      yield* (yield* HookTable).removeNumber(number)
      return HttpServerResponse.empty({ status: 204 })
    })
  )
)

export const NumbersApi = Layer.mergeAll(ListNumbers, GetNumber, PutNumber, DeleteNumber)
