import { HttpServerRequest } from "@effect/platform"
import { Effect, Layer, Option, Redacted, SubscriptionRef } from "effect"
import { isApiTokenShape, tokenHash } from "../domain/AdminToken.ts"
import { Forbidden, Unauthorized } from "../domain/Errors.ts"
import { isUnderWildcard } from "../domain/Hook.ts"
import { constantTimeEqual } from "../domain/Signing.ts"
import { LiveConfig } from "../LiveConfig.ts"
import { TokenStore } from "../store/TokenStore.ts"
import { Authorization, type Principal } from "./Api.ts"

/** A tenant's pattern covers itself and, for a wildcard, every host and narrower wildcard under it. */
const covers = (own: string, pattern: string) => own === pattern || isUnderWildcard(pattern, own)

export const mayAccess = (principal: Principal, pattern: string): boolean =>
  principal._tag === "Operator" || principal.hosts.some((own) => covers(own, pattern))

/** Fails with 403 unless the caller may act on `pattern`. */
export const requireAccess = (principal: Principal, pattern: string) =>
  mayAccess(principal, pattern) ? Effect.void : Effect.fail(new Forbidden({ message: `this token may not act on ${pattern}` }))

export const requireOperator = (principal: Principal) =>
  principal._tag === "Operator" ? Effect.void : Effect.fail(new Forbidden({ message: "this endpoint needs an operator token" }))

/** The bearer token as sent (HttpApi's bearer decoding would take any scheme's last characters for a token). */
export const presentedToken = (request: HttpServerRequest.HttpServerRequest) =>
  /^Bearer\s+(.+)$/i.exec(request.headers["authorization"] ?? "")?.[1]?.trim() ?? ""

/**
 * The file's tokens as the file says now (an edit applies without a restart):
 * every one is compared in constant time, so timing reveals neither which nor
 * how close. A token made through the API is looked up by its SHA-256 on every
 * request, so a revoke is in force on every instance at once; there is nothing
 * secret to compare byte by byte, and only a token of its shape is looked up.
 */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const config = yield* LiveConfig
    const stored = yield* TokenStore
    return Authorization.of({
      bearer: () =>
        Effect.gen(function* () {
          const presented = presentedToken(yield* HttpServerRequest.HttpServerRequest)
          if (!presented) return yield* new Unauthorized()
          const { admin } = yield* SubscriptionRef.get(config.current)
          const operator = admin.tokens.reduce((found, token) => constantTimeEqual(Redacted.value(token), presented) || found, false)
          const tenant = admin.tenantTokens.reduce<ReadonlyArray<string> | undefined>(
            (found, entry) => (constantTimeEqual(Redacted.value(entry.token), presented) ? entry.hosts : found),
            undefined
          )
          if (operator) return { _tag: "Operator" } satisfies Principal
          if (tenant) return { _tag: "Tenant", hosts: tenant } satisfies Principal
          if (isApiTokenShape(presented)) {
            const found = yield* stored.tokenByHash(tokenHash(presented))
            if (Option.isSome(found)) return { _tag: "Tenant", hosts: found.value.hosts } satisfies Principal
          }
          return yield* new Unauthorized()
        })
    })
  })
)
