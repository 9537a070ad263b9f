import { describe, expect, setDefaultTimeout, test } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Either } from "effect"
import fc from "fast-check"
import { isNationalSpelling, readE164, type Country } from "../src/domain/PhoneNumber.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const right = (number: string) => Either.right(number)

describe("readE164", () => {
  test.each<[string, Country | undefined, string]>([
    ["+15557654321", undefined, "+15557654321"],
    ["+1 (555) 765-4321", undefined, "+15557654321"],
    ["tel:+1-555-765-4321", undefined, "+15557654321"],
    ["TEL:+1.555.765.4321", undefined, "+15557654321"],
    ["(+1) 555-765-4321", undefined, "+15557654321"],
    ["  +44 20 7946 0958 ", undefined, "+442079460958"],
    // National spellings, read in the default country: trunk prefixes and international prefixes included.
    ["(555) 123-0010", "US", "+15551230010"],
    ["5551230001", "US", "+15551230001"],
    ["1 (555) 123-0001", "US", "+15551230001"],
    ["011 44 20 7946 0958", "US", "+442079460958"],
    ["020 7946 0958", "GB", "+442079460958"],
    ["00 1 555 123 0001", "GB", "+15551230001"],
    ["030 12345678", "DE", "+493012345678"],
    // An international spelling means the same in every country.
    ["+1 555 123 0001", "GB", "+15551230001"]
  ])("%p in %p -> %p", (input, country, expected) => {
    expect(readE164(input, country)).toEqual(right(expected))
  })

  test.each<[string, Country | undefined, string]>([
    ["(555) 123-0010", undefined, '"(555) 123-0010" is a national number: write it with + and its country code, or set defaultCountry'],
    ["15557654321", undefined, '"15557654321" is a national number: write it with + and its country code, or set defaultCountry'],
    ["+12345", undefined, '"+12345" is not a possible phone number (too short)'],
    ["+1555123000199", "US", '"+1555123000199" is not a possible phone number (too long)'],
    ["+999123456", undefined, `"+999123456" is not a possible phone number (of no country's calling code)`],
    ["555-01", "US", '"555-01" is not a possible phone number (too short for US)'],
    ["", "US", 'expected a phone number like "+15557654321" (digits, spaces, dashes, dots and brackets, maybe after + or tel:), got ""']
  ])("%p in %p is refused: %p", (input, country, problem) => {
    expect(readE164(input, country)).toEqual(Either.left(problem))
  })

  test.each<[string]>([
    ["+"],
    ["tel:"],
    ["++15557654321"],
    ["+1555765432a"],
    ["1+5557654321"],
    ["+1/555/765/4321"],
    ["sip:+15557654321@example.com"],
    ["tel:+1-555-765-4321;phone-context=example.com"],
    ["+1 555 765 4321 ext. 5"],
    ["+1555７654321"] // full-width digit
  ])("%p is no spelling of a number, in any country", (input) => {
    for (const country of [undefined, "US", "GB"] as const) expect(Either.isLeft(readE164(input, country))).toBe(true)
  })
})

// ---------------------------------------------------------------------------
// Properties: the format zoo
// ---------------------------------------------------------------------------

const digits = (min: number, max = min) => fc.stringOf(fc.constantFrom(..."0123456789"), { minLength: min, maxLength: max })
const from = (first: string) => fc.constantFrom(...first.split(""))

/** Possible numbers of a few countries: the country, its calling code, a national significant number, and how it is dialled at home. */
const possible = fc.oneof(
  // North America, fictional 555 numbers among them: area code and exchange start 2-9; dialled with or without the trunk 1.
  fc.tuple(from("23456789"), digits(2), from("23456789"), digits(6), fc.constantFrom("", "1")).map(([a, b, c, d, trunk]) => ({
    country: "US" as const,
    code: "1",
    national: `${a}${b}${c}${d}`,
    trunk
  })),
  // London numbers and mobiles, dialled after 0.
  fc.oneof(fc.tuple(fc.constant("20"), digits(8)), fc.tuple(fc.constant("7"), digits(9))).map(([start, rest]) => ({
    country: "GB" as const,
    code: "44",
    national: `${start}${rest}`,
    trunk: "0"
  })),
  // French numbers, dialled after 0.
  fc.tuple(from("123456789"), digits(8)).map(([first, rest]) => ({ country: "FR" as const, code: "33", national: `${first}${rest}`, trunk: "0" }))
)

/** The digits written with separators between them, as people and carriers do. */
const spelled = (text: string, separators: ReadonlyArray<string>) =>
  text
    .split("")
    .map((d, i) => d + (i < text.length - 1 ? (separators[i] ?? "") : ""))
    .join("")
const separators = fc.array(fc.constantFrom(" ", "-", ".", "(", ")", "", "", ""), { minLength: 16, maxLength: 16 })
const padding = fc.constantFrom("", " ", "  ")

describe("readE164 properties", () => {
  test("any international spelling of a possible number reads as its E.164 form, in any default country or none", () => {
    fc.assert(
      fc.property(possible, separators, fc.constantFrom("+", "tel:+", "TEL:+"), padding, fc.constantFrom<Country | undefined>(undefined, "US", "GB", "DE"), ({ code, national }, gaps, prefix, pad, country) => {
        const input = `${pad}${prefix}${spelled(code + national, gaps)}${pad}`
        expect(readE164(input, country)).toEqual(right(`+${code}${national}`))
      }),
      { numRuns: 500 }
    )
  })

  test("a national spelling reads as the same number in its own country, and is refused (not guessed) without a default country", () => {
    fc.assert(
      fc.property(possible, separators, padding, ({ country, code, national, trunk }, gaps, pad) => {
        const input = `${pad}${spelled(trunk + national, gaps)}${pad}`
        expect(isNationalSpelling(input)).toBe(true)
        expect(readE164(input, country)).toEqual(right(`+${code}${national}`))
        const refused = readE164(input, undefined)
        expect(Either.isLeft(refused) && refused.left).toContain("is a national number: write it with + and its country code, or set defaultCountry")
      }),
      { numRuns: 500 }
    )
  })

  test("a number read once reads as itself again, whatever the default country: E.164 is a fixed point", () => {
    const anything = fc.oneof(
      fc.string({ maxLength: 24 }),
      fc.tuple(possible, separators).map(([{ trunk, national }, gaps]) => spelled(trunk + national, gaps)),
      fc.stringOf(fc.constantFrom(..."+0123456789 -.()"), { maxLength: 20 })
    )
    const country = fc.constantFrom<Country | undefined>(undefined, "US", "GB", "FR", "DE", "JP")
    fc.assert(
      fc.property(anything, country, country, (input, first, second) => {
        const once = readE164(input, first)
        if (Either.isRight(once)) {
          expect(once.right).toMatch(/^\+[1-9][0-9]{5,14}$/)
          expect(readE164(once.right, second)).toEqual(once)
        }
      }),
      { numRuns: 1000 }
    )
  })
})
