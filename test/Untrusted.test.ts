import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either } from "effect"
import fc from "fast-check"
import { excerpt, MAX_JSON_DEPTH, nestsDeeperThan, parseJsonWithin } from "../src/domain/Untrusted.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/** The nesting depth of a parsed value, counted the obvious (recursive) way. */
const depthOf = (value: unknown): number =>
  typeof value === "object" && value !== null ? 1 + Math.max(0, ...Object.values(value).map(depthOf)) : 0

// Strings full of the characters the scanner must not count: brackets, quotes and backslashes.
const tricky = fc.stringOf(fc.constantFrom("[", "]", "{", "}", '"', "\\", "a", ",", ":"), { maxLength: 8 })
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, tricky, fc.integer(), fc.constant(null), tie("array"), tie("object")),
  array: fc.array(tie("value"), { maxLength: 3 }),
  object: fc.dictionary(tricky, tie("value"), { maxKeys: 3 })
})).value

describe("nestsDeeperThan", () => {
  test("agrees with the depth of the parsed value, whatever the strings inside hold", () => {
    fc.assert(
      fc.property(json, fc.integer({ min: 0, max: 6 }), (value, limit) => nestsDeeperThan(JSON.stringify(value), limit) === depthOf(value) > limit)
    )
  })
})

describe("parseJsonWithin", () => {
  test("parses what is within the depth, exactly as JSON.parse does", () => {
    fc.assert(fc.property(json, (value) => {
      const text = JSON.stringify(value)
      const parsed = parseJsonWithin(text)
      return depthOf(value) <= MAX_JSON_DEPTH ? Either.isRight(parsed) && JSON.stringify(parsed.right) === text : Either.isLeft(parsed)
    }))
  })

  test("a hundred thousand levels are refused before anything walks them", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000)
    expect(parseJsonWithin(deep)).toEqual(Either.left(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`))
    expect(parseJsonWithin(`{"url":${deep}}`)).toEqual(Either.left(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`))
  })

  test("text that is not JSON is refused as such", () => {
    expect(parseJsonWithin("{ nope")).toEqual(Either.left("not valid JSON"))
  })
})

describe("excerpt", () => {
  test("quotes short values whole and long ones cut, with their length, so a message stays short", () => {
    fc.assert(fc.property(fc.string({ maxLength: 5000 }), (value) => {
      const quoted = excerpt(value)
      return value.length <= 64 ? quoted === JSON.stringify(value) : quoted.endsWith(`(${value.length} characters)`) && quoted.length <= 6 * 64 + 40
    }))
  })
})
