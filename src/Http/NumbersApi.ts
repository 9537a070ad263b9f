import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { NotFound } from "../Domain/Errors.ts"
import { E164, HostPattern, type ActiveNumber } from "../Domain/Hook.ts"
import { HookTable } from "../HookTable.ts"
import { admin, decodeBody, decodeParam, mayAccess, requireAccess } from "./Admin.ts"

const view = (entry: ActiveNumber) => ({ number: entry.number, host: entry.host, source: entry.source })

const numberParam = decodeParam("number", E164)

/** The mapping the number has now, which the caller must also be allowed to touch. */
const currentMapping = (number: string) =>
  Effect.flatMap(HookTable, (hooks) => Effect.map(hooks.numbers, (all) => all.find((entry) => entry.number === number)))

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
      const entry = yield* currentMapping(number)
      // Another tenant's number looks absent, as another tenant's delivery does.
      if (!entry || !mayAccess(principal, entry.host)) return yield* new NotFound({ message: `no mapping for ${number}` })
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
      const existing = yield* currentMapping(number)
      if (existing) yield* requireAccess(principal, existing.host)
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
      const existing = yield* currentMapping(number)
      if (existing) yield* requireAccess(principal, existing.host)
      yield* (yield* HookTable).removeNumber(number)
      return HttpServerResponse.empty({ status: 204 })
    })
  )
)

export const NumbersApi = Layer.mergeAll(ListNumbers, GetNumber, PutNumber, DeleteNumber)
