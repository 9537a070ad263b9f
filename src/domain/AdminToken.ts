import { createHash, randomBytes } from "node:crypto"
import { Schema } from "effect"
import { HostPattern } from "./Hook.ts"
import { excerpt } from "./Untrusted.ts"

/**
 * Tenant tokens made through the admin API (`/v1/tokens`). The store keeps
 * each one's SHA-256, never the token: a token is 32 random bytes, so its hash
 * can be looked up directly (nothing secret is compared byte by byte) and a
 * copy of the store gives nobody a token.
 */

/** Marks a token as the router's, so a leaked one is recognisable (secret scanners, logs). */
export const TOKEN_PREFIX = "srt_"
const TOKEN_BYTES = 32
/** `srt_` and base64url of 32 bytes (43 characters). */
const TOKEN_SHAPE = /^srt_[A-Za-z0-9_-]{43}$/

/** A new token, shown once; 256 bits of entropy. */
export const newToken = (): string => TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString("base64url")

/** Whether a presented bearer token could be one of these; any other is never looked up. */
export const isApiTokenShape = (presented: string) => TOKEN_SHAPE.test(presented)

/** What the store keys a token by: its SHA-256, hex. */
export const tokenHash = (token: string): string => createHash("sha256").update(token).digest("hex")

export const TokenId = Schema.String.pipe(
  Schema.filter((id) => /^tok_[0-9a-f]{16}$/.test(id) || `expected a token id like "tok_0123456789abcdef", got ${excerpt(id)}`),
  Schema.brand("TokenId")
)
export type TokenId = typeof TokenId.Type

export const newTokenId = (): TokenId => `tok_${randomBytes(8).toString("hex")}` as TokenId

const Hosts = Schema.Array(HostPattern).pipe(Schema.minItems(1, { message: () => "expected at least one host" }))
const Label = Schema.String.pipe(
  Schema.minLength(1, { message: () => "expected a label of 1 to 200 characters" }),
  Schema.maxLength(200, { message: () => "expected a label of 1 to 200 characters" })
)

/** A token as the store keeps it: its hash in place of the token. */
export const StoredToken = Schema.Struct({
  id: TokenId,
  hash: Schema.String,
  hosts: Hosts,
  label: Schema.NullOr(Label),
  createdAt: Schema.Number
})
export type StoredToken = typeof StoredToken.Type

/** `POST /v1/tokens`: the hosts (and wildcards) the token may see and change, and a note for whoever lists them. */
export const TokenChanges = Schema.Struct({
  hosts: Hosts,
  label: Schema.optional(Label)
}).annotations({ parseOptions: { onExcessProperty: "error" }, identifier: "TokenChanges" })

/** A token as listed: never the token, nor its hash. */
export const TokenView = Schema.Struct({
  id: Schema.String,
  hosts: Schema.Array(Schema.String),
  label: Schema.NullOr(Schema.String),
  createdAt: Schema.String
}).annotations({ identifier: "Token" })
export type TokenView = typeof TokenView.Type

export const TokenListView = Schema.Struct({ tokens: Schema.Array(TokenView) })

export const tokenView = (token: StoredToken): TokenView => ({
  id: token.id,
  hosts: token.hosts,
  label: token.label,
  createdAt: new Date(token.createdAt).toISOString()
})

/** The answer to a creation: the only time the token is shown. */
export const TokenCreatedView = Schema.Struct({ ...TokenView.fields, token: Schema.String }).annotations({ identifier: "TokenCreated" })
