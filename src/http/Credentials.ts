import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Context, Effect, Layer, Option, Redacted, SubscriptionRef } from "effect"
import { isApiTokenShape, tokenHash } from "../domain/AdminToken.ts"
import type { RouterConfig } from "../domain/Config.ts"
import type { StoreUnavailable } from "../domain/Errors.ts"
import { isSessionSecretShape, type StoredSession } from "../domain/Session.ts"
import { constantTimeEqual } from "../domain/Signing.ts"
import { LiveConfig } from "../LiveConfig.ts"
import { SessionStore } from "../store/SessionStore.ts"
import { TokenStore } from "../store/TokenStore.ts"
import type { Principal } from "./Api.ts"

/**
 * Who a credential speaks for: a bearer token, or a console session. A session
 * remembers the SHA-256 of the token that opened it, so every request re-reads
 * that token's rights as the config file and the token store say now: a token
 * revoked or edited ends or narrows its sessions at once, on every instance.
 */
export class Credentials extends Context.Tag("Credentials")<
  Credentials,
  {
    /** With the SHA-256 of the token, which a session started with it keeps. */
    readonly ofToken: (presented: string) => Effect.Effect<Option.Option<{ readonly principal: Principal; readonly hash: string }>, StoreUnavailable>
    readonly ofSession: (secret: string) => Effect.Effect<Option.Option<{ readonly principal: Principal; readonly session: StoredSession }>, StoreUnavailable>
  }
>() {}

/** The bearer token as sent (HttpApi's bearer decoding would take any scheme's last characters for a token). */
export const presentedToken = (request: HttpServerRequest.HttpServerRequest) =>
  /^Bearer\s+(.+)$/i.exec(request.headers["authorization"] ?? "")?.[1]?.trim() ?? ""

type Admin = RouterConfig["admin"]

type FileTokens = { readonly operators: ReadonlyArray<string>; readonly tenants: ReadonlyArray<{ readonly hash: string; readonly hosts: ReadonlyArray<string> }> }

// Hashed once per version of the config's admin section (a reload replaces it).
const hashedFileTokens = new WeakMap<Admin, FileTokens>()
const fileTokensOf = (admin: Admin): FileTokens => {
  const known = hashedFileTokens.get(admin)
  if (known) return known
  const hashed = {
    operators: admin.tokens.map((token) => tokenHash(Redacted.value(token))),
    tenants: admin.tenantTokens.map((entry) => ({ hash: tokenHash(Redacted.value(entry.token)), hosts: entry.hosts }))
  }
  hashedFileTokens.set(admin, hashed)
  return hashed
}

export const CredentialsLive = Layer.effect(
  Credentials,
  Effect.gen(function* () {
    const config = yield* LiveConfig
    const stored = yield* TokenStore
    const sessions = yield* SessionStore

    /**
     * The file's tokens, as the file says now, are each compared in constant time (by their
     * hashes), so timing reveals neither which nor how close. A token made through the API is
     * looked up by its hash: there is nothing secret to compare byte by byte.
     */
    const ofHash = (hash: string, mayBeStored: boolean): Effect.Effect<Option.Option<Principal>, StoreUnavailable> =>
      Effect.gen(function* () {
        const file = fileTokensOf((yield* SubscriptionRef.get(config.current)).admin)
        const operator = file.operators.reduce((found, known) => constantTimeEqual(known, hash) || found, false)
        const tenant = file.tenants.reduce<ReadonlyArray<string> | undefined>((found, entry) => (constantTimeEqual(entry.hash, hash) ? entry.hosts : found), undefined)
        if (operator) return Option.some<Principal>({ _tag: "Operator" })
        if (tenant) return Option.some<Principal>({ _tag: "Tenant", hosts: tenant })
        if (!mayBeStored) return Option.none()
        return Option.map(yield* stored.tokenByHash(hash), (found): Principal => ({ _tag: "Tenant", hosts: found.hosts }))
      })

    return Credentials.of({
      ofToken: (presented) => {
        const hash = tokenHash(presented)
        return Effect.map(ofHash(hash, isApiTokenShape(presented)), Option.map((principal) => ({ principal, hash })))
      },
      ofSession: (secret) =>
        isSessionSecretShape(secret)
          ? Effect.flatMap(
              sessions.sessionByHash(tokenHash(secret)),
              Option.match({
                onNone: () => Effect.succeedNone,
                onSome: (session) =>
                  session.tokenHash === undefined
                    ? Effect.succeedSome({ principal: { _tag: "Tenant", hosts: session.hosts } satisfies Principal, session })
                    : Effect.map(ofHash(session.tokenHash, true), Option.map((principal) => ({ principal, session })))
              })
            )
          : Effect.succeedNone
    })
  })
)
