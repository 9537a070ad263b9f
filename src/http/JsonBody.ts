import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Effect, Either, Layer, Option, Schema, type ParseResult } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { BadRequest, firstProblem } from "../domain/Errors.ts"
import { parseJsonWithin } from "../domain/Untrusted.ts"
import { AdminApi, JsonBody } from "./Api.ts"
import { readBody } from "./Responses.ts"

/** Each endpoint's path decoder, by route (`PUT /v1/hooks/:host`). */
const pathDecoders = new Map<string, (params: unknown) => Effect.Effect<unknown, ParseResult.ParseError>>()
HttpApi.reflect(AdminApi, {
  onGroup: () => {},
  onEndpoint: ({ endpoint }) => Option.map(endpoint.pathSchema, (schema) => pathDecoders.set(`${endpoint.method} ${endpoint.path}`, Schema.decodeUnknown(schema)))
})

/**
 * HttpApi would read a payload whole, whatever its size, and hand any depth
 * of JSON to the schema. This reads at most `server.maxBodyBytes` (413 beyond,
 * see Body.ts), refuses JSON nested too deep for the recursive code after it,
 * and gives HttpApi a request holding exactly the bytes checked, as JSON
 * whatever content type was declared. The path is judged first, as HttpApi
 * would: a bad host is the 400 even when the body is wrong too.
 */
export const JsonBodyLive = Layer.effect(
  JsonBody,
  Effect.map(AppConfig, (config) =>
    Effect.gen(function* () {
      const { route, params } = yield* HttpRouter.RouteContext
      const decodePath = pathDecoders.get(`${route.method} ${route.path}`)
      if (decodePath) yield* Effect.mapError(decodePath(params), (error) => {
        const { key, problem } = firstProblem(error, "path")
        return BadRequest.at(key, problem)
      })
      const request = yield* HttpServerRequest.HttpServerRequest
      const bytes = yield* readBody(request, config.server.maxBodyBytes)
      yield* Either.mapLeft(parseJsonWithin(new TextDecoder().decode(bytes)), (problem) => BadRequest.at("body", `body is ${problem}`))
      const source = yield* Effect.orDie(HttpServerRequest.toWeb(request))
      const headers = new Headers(source.headers)
      headers.set("content-type", "application/json")
      headers.delete("transfer-encoding")
      headers.delete("content-length")
      return HttpServerRequest.fromWeb(new Request(source.url, { method: source.method, headers, body: bytes }))
    })
  )
)
