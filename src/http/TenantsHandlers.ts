import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Clock, Duration, Effect, SubscriptionRef } from "effect"
import { tokenHash } from "../domain/AdminToken.ts"
import { newSessionSecret } from "../domain/Session.ts"
import { DeliveryAdmin } from "../delivery/DeliveryAdmin.ts"
import { LiveConfig } from "../LiveConfig.ts"
import { SessionStore } from "../store/SessionStore.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireAccess, requireOperator } from "./Authorization.ts"
import { iso } from "./Responses.ts"
import { cameOverHttps } from "./SessionsHandlers.ts"

/** Where the operator reached the router is where the tenant will: the link points there. */
const originOf = (request: HttpServerRequest.HttpServerRequest) =>
  `${cameOverHttps(request) ? "https" : "http"}://${request.headers["host"] ?? new URL(request.url).host}`

export const TenantsLive = HttpApiBuilder.group(AdminApi, "tenants", (handlers) =>
  Effect.gen(function* () {
    const admin = yield* DeliveryAdmin
    const sessions = yield* SessionStore
    const config = yield* LiveConfig
    return handlers
      .handle("recover", ({ path: { host }, urlParams: { since } }) =>
        Effect.gen(function* () {
          yield* requireAccess(yield* CurrentPrincipal, host)
          const requeued = yield* admin.recover(host, since.getTime())
          return { tenant: host, since: since.toISOString(), requeued }
        })
      )
      .handle("portalLink", ({ path: { host } }) =>
        Effect.gen(function* () {
          yield* requireOperator(yield* CurrentPrincipal)
          const ttl = (yield* SubscriptionRef.get(config.current)).admin.portalLinkTtl
          const expiresAt = (yield* Clock.currentTimeMillis) + Duration.toMillis(ttl)
          const secret = newSessionSecret()
          yield* sessions.putPortalLink(tokenHash(secret), { hosts: [host], expiresAt })
          yield* Effect.log("portal link made").pipe(Effect.annotateLogs({ host }))
          return { url: `${originOf(yield* HttpServerRequest.HttpServerRequest)}/console/portal#${secret}`, expiresAt: iso(expiresAt) }
        })
      )
  })
)
