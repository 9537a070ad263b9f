import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { PayloadTooLarge } from "../Domain/Errors.ts"

/** Times in answers are ISO-8601 in UTC. */
export const iso = (ms: number) => new Date(ms).toISOString()

/** The one error shape every endpoint answers with. */
export const errorResponse = (status: number, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

/**
 * Reads the raw body once, refusing more than `limit` bytes. Content-Length is
 * checked first so an oversized upload is refused without being read.
 */
export const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.gen(function* () {
    const declared = Number(request.headers["content-length"] ?? 0)
    if (declared > limit) return yield* new PayloadTooLarge({ limit })
    const body = new Uint8Array(yield* Effect.orElse(request.arrayBuffer, () => new PayloadTooLarge({ limit })))
    if (body.byteLength > limit) return yield* new PayloadTooLarge({ limit })
    return body
  })
