import { createHash, createHmac } from "node:crypto"
import { Effect, Either, Redacted } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { InvalidSignature } from "../domain/Errors.ts"
import { constantTimeEqual } from "../domain/Signing.ts"

/** LiveKit's own Go verifier allows one minute of clock skew. */
export const LEEWAY_SECONDS = 60

export interface VerifyInput {
  readonly authorization: string | undefined
  readonly body: Uint8Array
  /** API key → API secret. */
  readonly keys: ReadonlyMap<string, string>
  readonly nowSeconds: number
}

const fail = (reason: string) => Either.left(new InvalidSignature({ message: reason }))

const decodeJson = (segment: string): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"))
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/**
 * Verifies a webhook exactly as the LiveKit server signs it: an HS256 JWT whose
 * `iss` is an API key and whose `sha256` claim is base64(SHA-256(raw body)).
 * The body bytes are hashed as received; protojson whitespace makes re-serialising wrong.
 */
export const verifyLiveKitWebhook = (input: VerifyInput): Either.Either<void, InvalidSignature> => {
  if (!input.authorization) return fail("missing Authorization header")
  const token = input.authorization.replace(/^Bearer\s+/i, "").trim()
  const parts = token.split(".")
  if (parts.length !== 3) return fail("Authorization is not a JWT")
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string]

  const header = decodeJson(headerPart)
  if (header?.alg !== "HS256") return fail("JWT algorithm must be HS256")
  const claims = decodeJson(payloadPart)
  if (!claims) return fail("JWT payload is not JSON")
  const secret = typeof claims.iss === "string" ? input.keys.get(claims.iss) : undefined
  if (secret === undefined) return fail("JWT issuer is not a configured API key")

  const expected = createHmac("sha256", secret).update(`${headerPart}.${payloadPart}`).digest()
  if (!constantTimeEqual(expected, Buffer.from(signaturePart, "base64url"))) return fail("JWT signature mismatch")

  if (typeof claims.exp !== "number") return fail("JWT has no exp")
  if (input.nowSeconds > claims.exp + LEEWAY_SECONDS) return fail("JWT expired")
  if (typeof claims.nbf === "number" && input.nowSeconds + LEEWAY_SECONDS < claims.nbf) return fail("JWT not yet valid")

  if (typeof claims.sha256 !== "string") return fail("JWT has no sha256 claim")
  const digest = createHash("sha256").update(input.body).digest()
  if (!constantTimeEqual(digest, Buffer.from(claims.sha256, "base64"))) return fail("body hash does not match sha256 claim")
  return Either.void
}

/** Checks that an inbound webhook was signed by LiveKit with a configured key. Synchronous: it runs on every webhook. */
export class SignatureVerifier extends Effect.Service<SignatureVerifier>()("SignatureVerifier", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const keys = new Map([[config.livekit.apiKey, Redacted.value(config.livekit.apiSecret)]])
    return {
      verify: (authorization: string | undefined, body: Uint8Array, nowMs: number) =>
        verifyLiveKitWebhook({ authorization, body, keys, nowSeconds: Math.floor(nowMs / 1000) })
    }
  })
}) {}
