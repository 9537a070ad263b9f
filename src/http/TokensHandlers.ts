import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { newToken, newTokenId, tokenHash, tokenView, type StoredToken } from "../domain/AdminToken.ts"
import { NotFound } from "../domain/Errors.ts"
import { TokenStore } from "../store/TokenStore.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireOperator } from "./Authorization.ts"

export const TokensLive = HttpApiBuilder.group(AdminApi, "tokens", (handlers) =>
  Effect.gen(function* () {
    const tokens = yield* TokenStore
    const operatorOnly = Effect.flatMap(CurrentPrincipal, requireOperator)
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function* () {
          yield* operatorOnly
          const token = newToken()
          const stored: StoredToken = { id: newTokenId(), hash: tokenHash(token), hosts: payload.hosts, label: payload.label ?? null, createdAt: Date.now() }
          yield* tokens.putToken(stored)
          yield* Effect.log("admin token created").pipe(Effect.annotateLogs({ id: stored.id, hosts: stored.hosts.join(",") }))
          return { ...tokenView(stored), token }
        })
      )
      .handle("list", () => Effect.zipRight(operatorOnly, Effect.map(tokens.tokens, (all) => ({ tokens: all.map(tokenView) }))))
      .handle("revoke", ({ path: { id } }) =>
        Effect.gen(function* () {
          yield* operatorOnly
          if (!(yield* tokens.removeToken(id))) return yield* new NotFound({ message: `no token ${id}` })
          yield* Effect.log("admin token revoked").pipe(Effect.annotateLogs({ id }))
        })
      )
  })
)
