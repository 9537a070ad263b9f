import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Effect, Layer, Option } from "effect"
import { Forbidden, Unauthorized } from "../domain/Errors.ts"
import { isUnderWildcard } from "../domain/Hook.ts"
import { SESSION_COOKIE } from "../domain/Session.ts"
import { Authorization, type Principal } from "./Api.ts"
import { Credentials, presentedToken } from "./Credentials.ts"

/** A tenant's pattern covers itself and, for a wildcard, every host and narrower wildcard under it. */
const covers = (own: string, pattern: string) => own === pattern || isUnderWildcard(pattern, own)

export const mayAccess = (principal: Principal, pattern: string): boolean =>
  principal._tag === "Operator" || principal.hosts.some((own) => covers(own, pattern))

/** Fails with 403 unless the caller may act on `pattern`. */
export const requireAccess = (principal: Principal, pattern: string) =>
  mayAccess(principal, pattern) ? Effect.void : Effect.fail(new Forbidden({ message: `this token may not act on ${pattern}` }))

export const requireOperator = (principal: Principal) =>
  principal._tag === "Operator" ? Effect.void : Effect.fail(new Forbidden({ message: "this endpoint needs an operator token" }))

const READS = new Set(["GET", "HEAD", "OPTIONS"])

/**
 * Whether a request that may change something came from the router's own pages.
 * Browsers send `Origin` with every such request (and `Sec-Fetch-Site`), so one
 * with neither did not come from a browser page, and one with a foreign origin
 * came from another site's page riding on the cookie.
 */
export const fromOwnOrigin = (request: HttpServerRequest.HttpServerRequest): boolean => {
  if (READS.has(request.method)) return true
  const site = request.headers["sec-fetch-site"]
  if (site !== undefined && site !== "same-origin") return false
  const origin = request.headers["origin"]
  if (origin === undefined) return site === "same-origin"
  try {
    return new URL(origin).host === request.headers["host"]
  } catch {
    return false
  }
}

export const CROSS_ORIGIN = new Forbidden({ message: "a request made with a console session must come from the console's own origin" })

/**
 * A bearer token, when the request has an `Authorization` header; else the
 * console's session cookie, for which a change must come from the router's own
 * origin (see `fromOwnOrigin`). Rights are read as they are now (Credentials.ts).
 */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const credentials = yield* Credentials
    return Authorization.of({
      bearer: () =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const presented = presentedToken(request)
          if (presented) {
            const found = yield* credentials.ofToken(presented)
            return Option.isSome(found) ? found.value.principal : yield* new Unauthorized({})
          }
          const secret = request.cookies[SESSION_COOKIE]
          if (secret === undefined) return yield* new Unauthorized({})
          if (!fromOwnOrigin(request)) return yield* CROSS_ORIGIN
          const session = yield* credentials.ofSession(secret)
          return Option.isSome(session) ? session.value.principal : yield* new Unauthorized({ reason: "the console session has ended; sign in again" })
        })
    })
  })
)
