import { Either, Option } from "effect"
// The min metadata: possible lengths per country, all that isPossible() reads (max adds the per-type patterns of isValid()).
import { isSupportedCountry, parsePhoneNumberFromString, validatePhoneNumberLength, type CountryCode } from "libphonenumber-js/min"
import { excerpt } from "./Untrusted.ts"

/** An ISO 3166 country the phone-number metadata knows (`US`, `GB`, ...), whose national spellings a number may be written in. */
export type Country = CountryCode

export const isCountry = (text: string): text is Country => isSupportedCountry(text)

// The spellings carriers and people use: digits in groups split by spaces, dashes, dots or brackets, maybe after `tel:` and a `+`.
const SEPARATORS = /[\s\-.()]/g
const DIGITS = /^\+?[0-9]+$/

const LENGTH_PROBLEMS: Readonly<Record<string, string>> = {
  TOO_SHORT: "too short",
  TOO_LONG: "too long",
  INVALID_LENGTH: "of no possible length",
  INVALID_COUNTRY: "of no country's calling code"
}

/** Why `compact` (digits, maybe after a +) is no possible number, in the library's terms made plain. */
const impossible = (raw: string, compact: string, country: Country | undefined) => {
  const why = LENGTH_PROBLEMS[validatePhoneNumberLength(compact, country) ?? ""] ?? "not possible"
  return `${excerpt(raw)} is not a possible phone number (${why}${compact.startsWith("+") ? "" : ` for ${country}`})`
}

/** The digits (and a leading +) of a spelling, or undefined for text that is no spelling of a number. */
const compacted = (raw: string) => {
  const compact = raw.trim().replace(/^tel:/i, "").replace(SEPARATORS, "")
  return DIGITS.test(compact) ? compact : undefined
}

/** Digits written without a + (or tel:+): a number of some country, read only in `defaultCountry`. */
export const isNationalSpelling = (raw: string) => compacted(raw)?.startsWith("+") === false

const noSpelling = (raw: string) => `expected a phone number like "+15557654321" (digits, spaces, dashes, dots and brackets, maybe after + or tel:), got ${excerpt(raw)}`

/** Why `raw` is no spelling of a number at all, whatever the country; undefined when it is one. */
export const spellingProblem = (raw: string): string | undefined => (compacted(raw) === undefined ? noSpelling(raw) : undefined)

const read = (raw: string, country: Country | undefined): Either.Either<string, string> => {
  const compact = compacted(raw)
  if (compact === undefined) return Either.left(noSpelling(raw))
  // Without a country, digits with no + could be any country's: refused rather than guessed.
  if (!compact.startsWith("+") && country === undefined) {
    return Either.left(`${excerpt(raw)} is a national number: write it with + and its country code, or set defaultCountry`)
  }
  const parsed = parsePhoneNumberFromString(compact, country === undefined ? { extract: false } : { defaultCountry: country, extract: false })
  return parsed !== undefined && parsed.isPossible() ? Either.right(parsed.number) : Either.left(impossible(raw, compact, country))
}

// A call's numbers are read when it is first routed, and the same trunk numbers come again and again: readings are kept.
const MAX_REMEMBERED = 10_000
const remembered = new Map<string, Either.Either<string, string>>()

/**
 * A number in E.164 (`+15557654321`), however it was written: `+1 (555) 765-4321`,
 * `tel:+1-555-765-4321`, or a national spelling (`(555) 765-4321`, `020 7946 0958`)
 * read in `country`. Any number the metadata finds possible is taken, assigned
 * or not (fictional `+1 555` numbers too). Left: why not, in a sentence.
 */
export const readE164 = (raw: string, country: Country | undefined): Either.Either<string, string> => {
  const key = `${country ?? ""} ${raw}`
  const known = remembered.get(key)
  if (known !== undefined) return known
  if (remembered.size >= MAX_REMEMBERED) remembered.clear()
  const reading = read(raw, country)
  remembered.set(key, reading)
  return reading
}

/** The E.164 form of a number, when it has one (see readE164). */
export const normaliseE164 = (raw: string, country: Country | undefined): Option.Option<string> => Either.getRight(readE164(raw, country))
