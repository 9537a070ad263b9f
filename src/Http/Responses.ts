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
  readLimited(request.headers["content-length"], request.arrayBuffer, limit)

/** The same for a plain web Request (the native webhook route). */
export const readWebBody = (request: Request, limit: number) =>
  readLimited(
    request.headers.get("content-length") ?? undefined,
    Effect.tryPromise(() => request.arrayBuffer()),
    limit
  )

const readLimited = <E>(declaredLength: string | undefined, arrayBuffer: Effect.Effect<ArrayBuffer, E>, limit: number) =>
  Effect.gen(function* () {
    if (Number(declaredLength ?? 0) > limit) return yield* new PayloadTooLarge({ limit })
    const body = new Uint8Array(yield* Effect.orElse(arrayBuffer, () => new PayloadTooLarge({ limit })))
    if (body.byteLength > limit) return yield* new PayloadTooLarge({ limit })
    return body
  })
