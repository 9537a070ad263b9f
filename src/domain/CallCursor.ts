import { createHmac } from "node:crypto"
import { constantTimeEqual } from "./Signing.ts"

/**
 * The cursor of a call listing: the position of the page's last call
 * (`sortAt`, `key`), encoded and MACed, so a cursor the router did not issue
 * is refused rather than read. The key is derived from the LiveKit API secret:
 * every instance has it, and it outlives restarts, so a cursor works on
 * whichever instance the next request reaches.
 */

export interface CallPosition {
  readonly sortAt: number
  readonly key: string
}

const MAC_BYTES = 16

/** The cursors' own key: the secret is used for nothing else through it. */
export const cursorKey = (secret: string): Buffer => createHmac("sha256", secret).update("sip-tenant-router: call listing cursor v1").digest()

const macOf = (key: Buffer, body: string) => createHmac("sha256", key).update(body).digest().subarray(0, MAC_BYTES).toString("base64url")

export const issueCursor = (key: Buffer, position: CallPosition): string => {
  const body = Buffer.from(JSON.stringify([position.sortAt, position.key])).toString("base64url")
  return `${body}.${macOf(key, body)}`
}

/** The position a cursor names; undefined unless this key issued it. */
export const readCursor = (key: Buffer, cursor: string): CallPosition | undefined => {
  const [body, mac, ...rest] = cursor.split(".")
  if (body === undefined || mac === undefined || rest.length > 0 || !constantTimeEqual(mac, macOf(key, body))) return undefined
  try {
    const value: unknown = JSON.parse(Buffer.from(body, "base64url").toString("utf8"))
    if (!Array.isArray(value) || value.length !== 2) return undefined
    const [sortAt, callKey] = value
    return Number.isSafeInteger(sortAt) && typeof callKey === "string" ? { sortAt, key: callKey } : undefined
  } catch {
    return undefined
  }
}
