import { Duration, ParseResult, Schema } from "effect"
import { excerpt } from "./Untrusted.ts"

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/

/** Parses `250ms`, `5s`, `2m`, `1h`, `1d` into milliseconds; `undefined` when malformed. */
export const parseDurationMs = (text: string): number | undefined => {
  const match = PATTERN.exec(text.trim())
  if (!match) return undefined
  return Number(match[1]) * UNITS[match[2] as keyof typeof UNITS]
}

/** A human duration string in config files, decoded to an Effect `Duration`. */
export const DurationString = Schema.transformOrFail(Schema.String, Schema.DurationFromSelf, {
  strict: true,
  decode: (text, _, ast) => {
    const ms = parseDurationMs(text)
    return ms === undefined
      ? ParseResult.fail(new ParseResult.Type(ast, text, `expected a duration like "250ms", "5s" or "2m", got ${excerpt(text)}`))
      : ParseResult.succeed(Duration.millis(ms))
  },
  encode: (duration) => ParseResult.succeed(`${Duration.toMillis(duration)}ms`)
})
