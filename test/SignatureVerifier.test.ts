import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either, Redacted } from "effect"
import fc from "fast-check"
import { Webhook } from "standardwebhooks"
import { LEEWAY_SECONDS, verifyLiveKitWebhook } from "../src/ingest/SignatureVerifier.ts"
import { generateSecret, signWebhook } from "../src/domain/Signing.ts"
import { API_KEY, API_SECRET, bodyHash, handMadeToken, signAsLiveKit } from "./support/livekit.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const keys = new Map([[API_KEY, API_SECRET]])
const now = () => Math.floor(Date.now() / 1000)
const verify = (authorization: string | undefined, body: Uint8Array, nowSeconds = now()) =>
  verifyLiveKitWebhook({ authorization, body, keys, nowSeconds })

describe("verifyLiveKitWebhook", () => {
  test("accepts any body signed by livekit-server-sdk, and refuses it once any byte changes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 512 }), fc.nat(), async (bytes, position) => {
        const body = Buffer.from(bytes)
        const token = await signAsLiveKit(body.toString("latin1"))
        // signAsLiveKit hashes the string's UTF-8; hash the same bytes here.
        const utf8 = Buffer.from(body.toString("latin1"))
        expect(Either.isRight(verify(token, utf8))).toBe(true)
        const mutated = Buffer.from(utf8)
        mutated[position % mutated.length]! ^= 0x01
        expect(Either.isLeft(verify(token, mutated))).toBe(true)
      }),
      { numRuns: 100 }
    )
  })

  test("exp and nbf are checked with exactly 60 s of leeway", () => {
    const body = Buffer.from("{}")
    const t = now()
    const token = handMadeToken({ iss: API_KEY, nbf: t, exp: t + 300, sha256: bodyHash("{}") })
    expect(Either.isRight(verify(token, body, t + 300 + LEEWAY_SECONDS))).toBe(true)
    expect(Either.isLeft(verify(token, body, t + 300 + LEEWAY_SECONDS + 1))).toBe(true)
    expect(Either.isRight(verify(token, body, t - LEEWAY_SECONDS))).toBe(true)
    expect(Either.isLeft(verify(token, body, t - LEEWAY_SECONDS - 1))).toBe(true)
  })

  test("a token signed with a key's secret but naming another issuer is refused", () => {
    const multi = new Map([
      [API_KEY, API_SECRET],
      ["APIother", "other-secret-0123456789abcdef0123"]
    ])
    const token = handMadeToken({ iss: "APIother", exp: now() + 60, sha256: bodyHash("{}") })
    const result = verifyLiveKitWebhook({ authorization: token, body: Buffer.from("{}"), keys: multi, nowSeconds: now() })
    expect(Either.isLeft(result) && result.left.message).toMatch(/signature/)
  })

  test("garbage never throws", () => {
    fc.assert(
      fc.property(fc.string(), fc.uint8Array({ maxLength: 64 }), (authorization, body) => {
        expect(Either.isLeft(verify(authorization, body))).toBe(true)
      })
    )
  })
})

describe("signWebhook", () => {
  test("standardwebhooks verifies every signature it makes", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.json({ maxDepth: 3 }), (id, body) => {
        const secret = generateSecret()
        const timestamp = now()
        const headers = { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signWebhook(secret, id, timestamp, body) }
        expect(() => new Webhook(Redacted.value(secret)).verify(body, headers)).not.toThrow()
        expect(() => new Webhook(Redacted.value(generateSecret())).verify(body, headers)).toThrow()
      }),
      { numRuns: 200 }
    )
  })
})
