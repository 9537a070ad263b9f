import { HttpServerRequest } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { Forbidden, Unauthorized } from "../domain/Errors.ts"
import { isUnderWildcard } from "../domain/Hook.ts"
import { constantTimeEqual } from "../domain/Signing.ts"
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

/**
 * Every configured token is compared (in constant time), so timing reveals
 * neither which nor how close. The header is read as sent (HttpApi's bearer
 * decoding would take any scheme's last characters for a token).
 */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.map(AppConfig, (config) =>
    Authorization.of({
      bearer: () =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const presented = /^Bearer\s+(.+)$/i.exec(request.headers["authorization"] ?? "")?.[1]?.trim() ?? ""
          const operator = config.admin.tokens.reduce((found, token) => constantTimeEqual(Redacted.value(token), presented) || found, false)
          const tenant = config.admin.tenantTokens.reduce<ReadonlyArray<string> | undefined>(
            (found, entry) => (constantTimeEqual(Redacted.value(entry.token), presented) ? entry.hosts : found),
            undefined
          )
          if (presented && operator) return { _tag: "Operator" } satisfies Principal
          if (presented && tenant) return { _tag: "Tenant", hosts: tenant } satisfies Principal
          return yield* new Unauthorized()
        })
    })
  )
)
