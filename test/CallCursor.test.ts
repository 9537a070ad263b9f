/** The call listing's cursor (src/domain/CallCursor.ts): what one key issues, only that key reads back. */
import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { cursorKey, issueCursor, readCursor } from "../src/domain/CallCursor.ts"
import { CallCursorText } from "../src/domain/CallViews.ts"
import { Schema } from "effect"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const key = cursorKey("livekit-secret-one")
const position = fc.record({ sortAt: fc.integer({ min: 0, max: 2 ** 45 }), key: fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 40 })) })

describe("call cursors", () => {
  test("read back as issued, and in the shape the API's parameter accepts", () => {
    fc.assert(
      fc.property(position, (p) => {
        const cursor = issueCursor(key, p)
        expect(readCursor(key, cursor)).toEqual(p)
        expect(Schema.is(CallCursorText)(cursor)).toBe(true)
      })
    )
  })

  test("the same key derives from the same secret (other instances, a restart); another secret's cursor is refused", () => {
    const cursor = issueCursor(key, { sortAt: 1, key: "RM_a" })
    expect(readCursor(cursorKey("livekit-secret-one"), cursor)).toEqual({ sortAt: 1, key: "RM_a" })
    expect(readCursor(cursorKey("livekit-secret-two"), cursor)).toBeUndefined()
  })

  test("any one character changed, dropped or added is refused", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    fc.assert(
      fc.property(position, fc.nat(), fc.integer({ min: 0, max: alphabet.length - 1 }), fc.constantFrom("change", "drop", "add"), (p, at, c, how) => {
        const cursor = issueCursor(key, p)
        const i = at % cursor.length
        const other = alphabet[c] === cursor[i] ? alphabet[(c + 1) % alphabet.length]! : alphabet[c]!
        const edited =
          how === "change" ? cursor.slice(0, i) + other + cursor.slice(i + 1) : how === "drop" ? cursor.slice(0, i) + cursor.slice(i + 1) : cursor.slice(0, i) + other + cursor.slice(i)
        expect(readCursor(key, edited)).toBeUndefined()
      }),
      { numRuns: 500 }
    )
  })

  test("garbage is refused, not thrown", () => {
    for (const text of ["", ".", "a.b", "a.b.c", "!!!.???", `${Buffer.from("[1]").toString("base64url")}.x`]) expect(readCursor(key, text)).toBeUndefined()
  })
})
