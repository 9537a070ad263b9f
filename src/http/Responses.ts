import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Either } from "effect"
import { BadRequest, PayloadTooLarge } from "../domain/Errors.ts"
import { readNumber, type E164 } from "../domain/Hook.ts"
import type { Country } from "../domain/PhoneNumber.ts"
import { readBodyWithin } from "./Body.ts"

/** Times in answers are ISO-8601 in UTC. */
export const iso = (ms: number) => new Date(ms).toISOString()

/** The one error shape every endpoint answers with. */
export const errorResponse = (status: number, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

/** The last-resort answer to an unexpected failure: nothing about the internals. */
export const INTERNAL_ERROR = { error: { code: "internal", message: "internal error" } } as const

/** Reads the raw body, refusing more than `limit` bytes at any size (see `readBodyWithin`). */
export const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.flatMap(Effect.orElse(HttpServerRequest.toWeb(request), () => PayloadTooLarge.over(limit)), (web) =>
    Effect.flatMap(
      Effect.promise(() => readBodyWithin(web, limit)),
      (body) => (body instanceof PayloadTooLarge ? Effect.fail(body) : Effect.succeed(body))
    )
  )

/** A number a request names, in E.164: read in `defaultCountry`, else a 400 saying why not. */
export const requestedNumber = (field: string, text: string, country: Country | undefined): Effect.Effect<E164, BadRequest> =>
  Either.match(readNumber(text, country), { onLeft: (problem) => Effect.fail(BadRequest.at(field, problem)), onRight: Effect.succeed })
