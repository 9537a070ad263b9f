import { randomBytes } from "node:crypto"
import { Schema } from "effect"
import { strict } from "./HookViews.ts"

/**
 * Console sessions and tenant portal links. A session is opened with a token
 * (or a portal link) and travels as an HttpOnly cookie; a portal link's secret
 * travels in the URL fragment, so it never reaches a server log. The store
 * keeps each one's SHA-256 (see AdminToken.ts's `tokenHash`), never the secret.
 */

export const SESSION_COOKIE = "srt_session"

/** A session id or portal link secret: base64url of 32 random bytes. */
export const newSessionSecret = (): string => randomBytes(32).toString("base64url")

/** Only something of this shape is ever looked up. */
export const isSessionSecretShape = (presented: string) => /^[A-Za-z0-9_-]{43}$/.test(presented)

export const Role = Schema.Literal("operator", "tenant")
export type Role = typeof Role.Type

/**
 * A session as the store keeps it. `tokenHash` is the SHA-256 of the token that
 * opened it: each request re-reads that token's rights, so a revoked or edited
 * token ends or narrows its sessions at once. A portal link's session has none:
 * its hosts are the link's.
 */
export const StoredSession = Schema.Struct({
  role: Role,
  hosts: Schema.Array(Schema.String),
  tokenHash: Schema.optional(Schema.String),
  expiresAt: Schema.Number
})
export type StoredSession = typeof StoredSession.Type

export const StoredPortalLink = Schema.Struct({
  hosts: Schema.Array(Schema.String),
  expiresAt: Schema.Number
})
export type StoredPortalLink = typeof StoredPortalLink.Type

const Secret = Schema.String.pipe(Schema.maxLength(512, { message: () => "expected at most 512 characters" }))

/** `POST /v1/sessions`: the operator or tenant token to sign in with. */
export const SignInRequest = Schema.Struct({ token: Secret }).annotations({ ...strict, identifier: "SignIn" })

/** `POST /v1/portal-links/redeem`: the secret from the link's fragment. */
export const RedeemRequest = Schema.Struct({ secret: Secret }).annotations({ ...strict, identifier: "PortalLinkRedeem" })

export const SessionView = Schema.Struct({
  role: Role,
  hosts: Schema.Array(Schema.String).annotations({ description: "the hosts a tenant session may see; empty for an operator" }),
  expiresAt: Schema.NullOr(Schema.String).annotations({ description: "when the session ends; null for a bearer token, which does not" })
}).annotations({ identifier: "Session" })
export type SessionView = typeof SessionView.Type

export const PortalLinkView = Schema.Struct({
  url: Schema.String.annotations({ description: "opens the tenant portal signed in, once; the secret is in the fragment" }),
  expiresAt: Schema.String
}).annotations({ identifier: "PortalLink" })
