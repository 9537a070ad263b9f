import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { parseIsoTime } from "../src/domain/IsoTime.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const instant = fc.date({ min: new Date("0001-01-02T00:00:00Z"), max: new Date("9999-12-30T23:59:59Z"), noInvalidDate: true })

describe("parseIsoTime", () => {
  test("every instant, written as toISOString writes it, reads back as itself", () => {
    fc.assert(fc.property(instant, (date) => parseIsoTime(date.toISOString()) === date.getTime()))
  })

  test("a zone offset moves the instant by exactly that offset", () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }), (date, offset) => {
        const local = new Date(date.getTime() + offset * 60_000).toISOString().slice(0, 19)
        const sign = offset < 0 ? "-" : "+"
        const abs = Math.abs(offset)
        const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`
        return parseIsoTime(local + zone) === Math.floor(date.getTime() / 1000) * 1000
      })
    )
  })

  test("a day the month does not have is no date, where Date.parse would roll it over", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 31 }), (year, month, day) => {
        const text = `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`
        // The Gregorian calendar repeats every 400 years, so a year in Date.UTC's plain range has the same months.
        const daysInMonth = new Date(Date.UTC(2000 + (year % 400), month, 0)).getUTCDate()
        const exists = day <= daysInMonth
        return (parseIsoTime(text) !== undefined) === exists
      })
    )
  })

  test.each(["2026-02-30", "2025-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "2026-02-29T25:00:00Z", "2026-01-01T12:60:00Z",
    "2026-01-01T12:00:60Z", "2026-01-01T12:00:00+24:00", "2026-01-01T12:00:00", "7", "-5", "1.5", "", "2026-1-1", "yesterday"])(
    "%p is refused",
    (text) => expect(parseIsoTime(text)).toBeUndefined()
  )

  test.each([["2024-02-29", "2024-02-29T00:00:00.000Z"], ["2026-01-31T12:00Z", "2026-01-31T12:00:00.000Z"],
    ["2026-01-31T12:00:00.5-02:30", "2026-01-31T14:30:00.500Z"]])("%p reads as %p", (text, instant) => {
    expect(new Date(parseIsoTime(text)!).toISOString()).toBe(instant)
  })
})
