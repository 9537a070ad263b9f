import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either } from "effect"
import fc from "fast-check"
import { isSealed, keyTextProblem, open, seal, SealError, sealedKeyId, secretKey } from "../src/domain/SecretBox.ts"
import { sealer } from "../src/store/Sealing.ts"

setDefaultTimeout(TEST_TIMEOUT_MS)

const keyBytes = fc.uint8Array({ minLength: 32, maxLength: 32 })
const refusal = (opened: Either.Either<string, SealError>) => (Either.isLeft(opened) ? opened.left : undefined)

describe("SecretBox", () => {
  test("a sealed value opens to what was sealed, with its key among others, and never shows it", () => {
    fc.assert(
      fc.property(keyBytes, keyBytes, fc.string({ unit: "binary" }), (a, b, plaintext) => {
        const key = secretKey(a)
        const sealed = seal(key, plaintext)
        expect(isSealed(sealed)).toBe(true)
        expect(sealedKeyId(sealed)).toBe(key.id)
        expect(sealed).toMatch(/^enc:v1:[A-Za-z0-9_-]{8}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$/)
        // Long enough that no base64url part could hold it by chance.
        if (plaintext.length >= 12) expect(sealed).not.toContain(plaintext)
        expect(open([secretKey(b), key], sealed)).toEqual(Either.right(plaintext))
      })
    )
  })

  test("a plain value reads as it is", () => {
    fc.assert(fc.property(fc.string().filter((s) => !s.startsWith("enc:")), (plain) => expect(open([], plain)).toEqual(Either.right(plain))))
  })

  test("a flipped byte anywhere in the IV or ciphertext is refused as tampered", () => {
    fc.assert(
      fc.property(keyBytes, fc.string({ minLength: 1 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (bytes, plaintext, at, flip) => {
        const key = secretKey(bytes)
        const [, , id, iv, body] = seal(key, plaintext).split(":")
        const raw = Buffer.concat([Buffer.from(iv!, "base64url"), Buffer.from(body!, "base64url")])
        raw[at % raw.length]! ^= flip
        const tampered = `enc:v1:${id}:${raw.subarray(0, 12).toString("base64url")}:${raw.subarray(12).toString("base64url")}`
        expect(refusal(open([key], tampered))?.reason).toBe("tampered")
      })
    )
  })

  test("a value under a key not configured is refused by its id; a malformed one as malformed", () => {
    const sealed = seal(secretKey(new Uint8Array(32).fill(1)), "whsec_x")
    const other = secretKey(new Uint8Array(32).fill(2))
    const unknown = refusal(open([other], sealed))
    expect(unknown).toBeInstanceOf(SealError)
    expect(unknown?.reason).toBe("unknown-key")
    expect(unknown?.message).toContain(sealedKeyId(sealed)!)
    // Another key under the same id (a forged id) does not open it either.
    expect(refusal(open([{ id: sealedKeyId(sealed)!, bytes: other.bytes }], sealed))?.reason).toBe("tampered")
    expect(refusal(open([other], "enc:v1:abc"))?.reason).toBe("malformed")
  })

  test("a key must be base64 of exactly 32 bytes, and no problem quotes it", () => {
    expect(keyTextProblem(Buffer.alloc(32, 9).toString("base64"))).toBeUndefined()
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }).filter((b) => b.length !== 32), (bytes) => {
        const text = Buffer.from(bytes).toString("base64")
        const problem = keyTextProblem(text)
        expect(problem).toContain(`got ${bytes.length} bytes`)
        expect(problem).not.toContain(text)
      })
    )
    expect(keyTextProblem("not base64!")).toContain("the key is not shown")
  })
})

describe("Sealer", () => {
  test("the first key seals, once per plaintext; every key opens; no keys keep values plain", () => {
    const oldKey = secretKey(new Uint8Array(32).fill(3))
    const newKey = secretKey(new Uint8Array(32).fill(4))
    const before = sealer([oldKey]).seal("whsec_old")
    const box = sealer([newKey, oldKey])
    const sealed = box.seal("whsec_new")
    expect(sealedKeyId(sealed)).toBe(newKey.id)
    // The same plaintext gets the same ciphertext: one AES operation per secret, not per event.
    expect(box.seal("whsec_new")).toBe(sealed)
    expect(box.open(before)).toBe("whsec_old")
    expect(box.open(sealed)).toBe("whsec_new")
    expect(() => sealer([newKey]).open(before)).toThrow(SealError)
    expect(sealer([]).seal("whsec_plain")).toBe("whsec_plain")
    expect(() => sealer([]).open(sealed)).toThrow(SealError)
  })
})
