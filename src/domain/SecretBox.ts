import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"
import { Data, Either } from "effect"

/**
 * Secrets encrypted at rest: AES-256-GCM under a key of `store.encryptionKey`,
 * written as `enc:v1:KEYID:IV:CIPHERTEXT` (base64url parts, the 16-byte tag at
 * the end of the ciphertext). The key id says which configured key opens a
 * value, and the prefix lets plain values (written before a key was set) live
 * beside sealed ones until they are re-encrypted. node:crypto, since it is
 * synchronous: a value is sealed on the hot path, per accepted event.
 */

export const SEALED_PREFIX = "enc:v1:"
/** Bytes of a key: AES-256. */
export const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16

export interface SecretKey {
  /** What a sealed value names it by: derived from the key, so it reveals nothing of it. */
  readonly id: string
  readonly bytes: Uint8Array
}

/** Why a sealed value cannot be opened; never quotes the value. */
export class SealError extends Data.TaggedError("SealError")<{
  readonly reason: "malformed" | "unknown-key" | "tampered"
  /** The key id the value names, when it names one. */
  readonly keyId: string | undefined
}> {
  override get message() {
    switch (this.reason) {
      case "malformed":
        return "an encrypted value is malformed"
      case "unknown-key":
        return `a value is encrypted with key ${this.keyId}, which is not among the configured keys`
      case "tampered":
        return `a value encrypted with key ${this.keyId} does not decrypt: it was changed, or the key is another with the same id`
    }
  }
}

/** The id a key's values name: the first 8 characters of the base64url SHA-256 of a label and the key (not the key's own hash, which nothing else should share). */
export const keyIdOf = (bytes: Uint8Array): string =>
  createHash("sha256").update("sip-tenant-router secret box v1\0").update(bytes).digest("base64url").slice(0, 8)

/** A key from its bytes (exactly KEY_BYTES). */
export const secretKey = (bytes: Uint8Array): SecretKey => {
  if (bytes.length !== KEY_BYTES) throw new RangeError(`a key is ${KEY_BYTES} bytes, got ${bytes.length}`)
  return { id: keyIdOf(bytes), bytes }
}

/** Why `text` is not a key (base64 of exactly 32 bytes); undefined when it is one. Never quotes the text. */
export const keyTextProblem = (text: string): string | undefined => {
  const trimmed = text.trim()
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) && !/^[A-Za-z0-9_-]+={0,2}$/.test(trimmed)) return "expected base64 of 32 random bytes (the key is not shown)"
  const bytes = Buffer.from(trimmed, "base64").length
  return bytes === KEY_BYTES ? undefined : `expected base64 of exactly ${KEY_BYTES} bytes, got ${bytes} bytes (the key is not shown)`
}

/** A key from its base64 text, which keyTextProblem accepts. */
export const keyFromText = (text: string): SecretKey => secretKey(new Uint8Array(Buffer.from(text.trim(), "base64")))

export const isSealed = (text: string): boolean => text.startsWith(SEALED_PREFIX)

/** The key id a sealed value names; undefined for a plain one. */
export const sealedKeyId = (text: string): string | undefined => (isSealed(text) ? text.slice(SEALED_PREFIX.length).split(":", 1)[0] : undefined)

/** `plaintext` sealed under `key` with a fresh random IV. */
export const seal = (key: SecretKey, plaintext: string): string => {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv("aes-256-gcm", key.bytes, iv)
  cipher.setAAD(Buffer.from(key.id))
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()])
  return `${SEALED_PREFIX}${key.id}:${iv.toString("base64url")}:${sealed.toString("base64url")}`
}

/** What a sealed value holds, opened with the key it names among `keys`; a plain value as it is. */
export const open = (keys: ReadonlyArray<SecretKey>, text: string): Either.Either<string, SealError> => {
  if (!isSealed(text)) return Either.right(text)
  const parts = text.slice(SEALED_PREFIX.length).split(":")
  const [keyId, ivText, sealedText] = parts
  if (parts.length !== 3 || !keyId || ivText === undefined || sealedText === undefined) return Either.left(new SealError({ reason: "malformed", keyId: undefined }))
  const key = keys.find((k) => k.id === keyId)
  if (key === undefined) return Either.left(new SealError({ reason: "unknown-key", keyId }))
  const iv = Buffer.from(ivText, "base64url")
  const sealed = Buffer.from(sealedText, "base64url")
  if (iv.length !== IV_BYTES || sealed.length < TAG_BYTES) return Either.left(new SealError({ reason: "malformed", keyId }))
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.bytes, iv)
    decipher.setAAD(Buffer.from(key.id))
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
    return Either.right(Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]).toString("utf8"))
  } catch {
    return Either.left(new SealError({ reason: "tampered", keyId }))
  }
}
