import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Clock, Duration, Effect, Option, SubscriptionRef } from "effect"
import { tokenHash } from "../domain/AdminToken.ts"
import { Unauthorized } from "../domain/Errors.ts"
import { newSessionSecret, SESSION_COOKIE, type SessionView, type StoredSession } from "../domain/Session.ts"
import { LiveConfig } from "../LiveConfig.ts"
import { SessionStore } from "../store/SessionStore.ts"
import { AdminApi, CurrentPrincipal, type Principal } from "./Api.ts"
import { CROSS_ORIGIN, fromOwnOrigin } from "./Authorization.ts"
import { Credentials, presentedToken } from "./Credentials.ts"
import { iso } from "./Responses.ts"

const cookie = HttpApiSecurity.apiKey({ in: "cookie", key: SESSION_COOKIE })

/** The client reached the router over https, directly or through a proxy that says so. */
export const cameOverHttps = (request: HttpServerRequest.HttpServerRequest) =>
  request.url.startsWith("https:") || request.headers["x-forwarded-proto"] === "https"

/** A principal as a session keeps and shows it. */
const roleAndHosts = (principal: Principal) =>
  principal._tag === "Operator" ? ({ role: "operator", hosts: [] } as const) : ({ role: "tenant", hosts: principal.hosts } as const)

const viewOf = (principal: Principal, expiresAt: number | null): SessionView => ({
  ...roleAndHosts(principal),
  expiresAt: expiresAt === null ? null : iso(expiresAt)
})

const UNKNOWN_TOKEN = new Unauthorized({ reason: "that token is not one this router knows" })
const SPENT_LINK = new Unauthorized({ reason: "this portal link was used or has expired; ask for a new one" })

/**
 * Sessions: a token (or a portal link) exchanged for an HttpOnly, SameSite=Strict
 * cookie. The store keeps the SHA-256 of the cookie's secret; the browser never
 * holds the token. Sign-in from another site's page is refused like any change.
 */
export const SignInLive = HttpApiBuilder.group(AdminApi, "signIn", (handlers) =>
  Effect.gen(function* () {
    const credentials = yield* Credentials
    const sessions = yield* SessionStore
    const config = yield* LiveConfig

    const start = (principal: Principal, tokenHashOf: string | undefined) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (!fromOwnOrigin(request) && request.headers["origin"] !== undefined) return yield* CROSS_ORIGIN
        const { admin } = yield* SubscriptionRef.get(config.current)
        const expiresAt = (yield* Clock.currentTimeMillis) + Duration.toMillis(admin.sessionTtl)
        const secret = newSessionSecret()
        const session: StoredSession = {
          ...roleAndHosts(principal),
          expiresAt,
          ...(tokenHashOf === undefined ? {} : { tokenHash: tokenHashOf })
        }
        yield* sessions.startSession(tokenHash(secret), session)
        yield* HttpApiBuilder.securitySetCookie(cookie, secret, {
          secure: admin.secureCookies || cameOverHttps(request),
          httpOnly: true,
          sameSite: "strict",
          path: "/",
          maxAge: admin.sessionTtl
        })
        yield* Effect.log("console session started").pipe(Effect.annotateLogs({ role: session.role, hosts: session.hosts.join(",") }))
        return viewOf(principal, expiresAt)
      })

    return handlers
      .handle("signIn", ({ payload }) =>
        Effect.gen(function* () {
          const found = yield* credentials.ofToken(payload.token)
          return Option.isSome(found) ? yield* start(found.value.principal, found.value.hash) : yield* UNKNOWN_TOKEN
        })
      )
      .handle("redeem", ({ payload }) =>
        Effect.gen(function* () {
          const link = yield* sessions.redeemPortalLink(tokenHash(payload.secret))
          return Option.isSome(link) ? yield* start({ _tag: "Tenant", hosts: link.value.hosts }, undefined) : yield* SPENT_LINK
        })
      )
  })
)

export const SessionLive = HttpApiBuilder.group(AdminApi, "session", (handlers) =>
  Effect.gen(function* () {
    const credentials = yield* Credentials
    const sessions = yield* SessionStore
    /** The session the request's cookie names, when the request did not use a bearer token instead. */
    const cookieSecret = Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
      presentedToken(request) ? undefined : request.cookies[SESSION_COOKIE]
    )
    return handlers
      .handle("current", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const secret = yield* cookieSecret
          const session = secret === undefined ? Option.none() : yield* credentials.ofSession(secret)
          return viewOf(principal, Option.isSome(session) ? session.value.session.expiresAt : null)
        })
      )
      .handle("signOut", () =>
        Effect.gen(function* () {
          const secret = yield* cookieSecret
          if (secret !== undefined) yield* sessions.endSession(tokenHash(secret))
          yield* HttpApp.appendPreResponseHandler((_request, response) =>
            Effect.orDie(HttpServerResponse.expireCookie(response, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "strict" }))
          )
        })
      )
  })
)
