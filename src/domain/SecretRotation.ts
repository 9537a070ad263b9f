import { Redacted, Schema } from "effect"
import { WebhookSecret } from "./Hook.ts"

/**
 * A signer's secret as the router last saw it configured, and the one it replaced
 * while `signing.rotationOverlap` lasts. Signers are the default secret and the hooks
 * of the config file and the HTTP source (by host) with a secret of their own; an API
 * hook keeps its own rotation on the hook. Kept in the store, so a rotation holds across restarts and
 * instances.
 */
export const SecretRotation = Schema.Struct({
  current: WebhookSecret,
  previous: Schema.optional(WebhookSecret),
  /** Until when (ms) deliveries also carry a signature with `previous`. */
  previousUntil: Schema.optional(Schema.Number)
})
export interface SecretRotation extends Schema.Schema.Type<typeof SecretRotation> {}

/** The signer of `signing.secret`: what signs hooks without a secret of their own once their hook is gone, and alerts without `alerts.secret`. */
export const DEFAULT_SIGNER = "@default"

const same = (a: Redacted.Redacted | undefined, b: Redacted.Redacted | undefined) => a !== undefined && b !== undefined && Redacted.value(a) === Redacted.value(b)

/**
 * What seeing `secret` configured makes of the stored rotation: undefined when it
 * changes nothing (the same secret, or the one just replaced, still seen by an
 * instance whose file lags behind), else the rotation to store: the new secret,
 * with the old one overlapping from `now`.
 */
export const observeSecret = (stored: SecretRotation | undefined, secret: WebhookSecret, now: number, overlapMs: number): SecretRotation | undefined => {
  if (stored === undefined) return { current: secret }
  if (same(stored.current, secret)) return undefined
  if (same(stored.previous, secret) && (stored.previousUntil ?? 0) > now) return undefined
  return { current: secret, previous: stored.current, previousUntil: now + overlapMs }
}

/**
 * The other secret a signer configured with `secret` still signs with, and until
 * when: the replaced one while the overlap lasts (or, on an instance still
 * configured with that one, the new one).
 */
export const overlapOf = (rotation: SecretRotation | undefined, secret: WebhookSecret | undefined): { readonly previousSecret?: WebhookSecret; readonly previousSecretUntil?: number } => {
  if (rotation?.previous === undefined || rotation.previousUntil === undefined || secret === undefined) return {}
  if (same(rotation.current, secret)) return { previousSecret: rotation.previous, previousSecretUntil: rotation.previousUntil }
  if (same(rotation.previous, secret)) return { previousSecret: rotation.current, previousSecretUntil: rotation.previousUntil }
  return {}
}
