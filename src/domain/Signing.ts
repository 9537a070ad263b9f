import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Redacted } from "effect"
import type { WebhookSecret } from "./Hook.ts"

const PREFIX = "whsec_"

const keyOf = (secret: string): Buffer => Buffer.from(secret.slice(PREFIX.length), "base64")

/**
 * Standard Webhooks signature: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")),
 * where the key is the base64 part of the `whsec_` secret. Several secrets (during
 * a rotation) give several signatures, space-separated; a verifier accepts any.
 */
export const signWebhook = (secrets: Redacted.Redacted | ReadonlyArray<Redacted.Redacted>, id: string, timestampSeconds: number, body: string): string =>
  (Redacted.isRedacted(secrets) ? [secrets] : secrets)
    .map((secret) => "v1," + createHmac("sha256", keyOf(Redacted.value(secret) as string)).update(`${id}.${timestampSeconds}.${body}`).digest("base64"))
    .join(" ")

/** A new `whsec_` secret with 32 random key bytes. */
export const generateSecret = (): WebhookSecret => Redacted.make(PREFIX + randomBytes(32).toString("base64")) as WebhookSecret

/** Constant-time comparison of two strings (length is not secret). */
export const constantTimeEqual = (a: string | Uint8Array, b: string | Uint8Array): boolean => {
  const left = typeof a === "string" ? Buffer.from(a) : a
  const right = typeof b === "string" ? Buffer.from(b) : b
  return left.length === right.length && timingSafeEqual(left, right)
}
