import { ParseResult, Schema } from "effect"
import { excerpt } from "./Untrusted.ts"

// A date, or a time with its zone. Date.parse alone would read "7" as 2001-07-01 and "2026-02-30" as March 2.
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2})))?$/

const within = (text: string | undefined, max: number) => text === undefined || Number(text) <= max

/** Milliseconds of an ISO-8601 date (`2026-01-31`, UTC midnight) or time with its zone; undefined unless it names a real instant. */
export const parseIsoTime = (text: string): number | undefined => {
  const match = ISO_TIME.exec(text)
  if (!match) return undefined
  const [, year, month, day, hour, minute, second, offsetHours, offsetMinutes] = match
  // The calendar decides which days exist: a day that rolls over into the next month is not one.
  const date = new Date(0)
  date.setUTCFullYear(Number(year), Number(month) - 1, Number(day))
  if (date.getUTCFullYear() !== Number(year) || date.getUTCMonth() !== Number(month) - 1 || date.getUTCDate() !== Number(day)) {
    return undefined
  }
  if (!within(hour, 23) || !within(minute, 59) || !within(second, 59) || !within(offsetHours, 23) || !within(offsetMinutes, 59)) {
    return undefined
  }
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? undefined : ms
}

/** An ISO-8601 time in a query or an option, decoded to a Date. */
export const IsoTime = Schema.transformOrFail(Schema.String, Schema.DateFromSelf, {
  strict: true,
  decode: (text, _, ast) => {
    const ms = parseIsoTime(text)
    return ms === undefined
      ? ParseResult.fail(new ParseResult.Type(ast, text, `expected an ISO-8601 time like 2026-01-31T12:00:00Z, got ${excerpt(text)}`))
      : ParseResult.succeed(new Date(ms))
  },
  encode: (date) => ParseResult.succeed(date.toISOString())
})
