import { Either, Schema, type SchemaAST } from "effect"

/**
 * Helpers for text that came from outside (admin bodies, paths, queries, a
 * remote hook source): whatever its size or shape, what the router does with
 * it stays bounded.
 */

const EXCERPT_CHARS = 64

/** A value quoted for an error message: at most a short excerpt of it, and its length when cut. */
export const excerpt = (value: string): string =>
  value.length <= EXCERPT_CHARS ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, EXCERPT_CHARS))}… (${value.length} characters)`

/**
 * A choice whose refusal lists every value it takes (`expected one of pending,
 * failed, delivered or expired, got "bogus"`): Schema's own names only the first.
 */
export const oneOf = <const Literals extends readonly [SchemaAST.LiteralValue, ...Array<SchemaAST.LiteralValue>]>(choice: Schema.Literal<Literals>) => {
  const values = choice.literals.map(String)
  const listed = values.length === 1 ? values[0] : `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`
  return choice.annotations({
    message: (issue) => ({
      message: `expected one of ${listed}, got ${typeof issue.actual === "string" ? excerpt(issue.actual) : `a ${typeof issue.actual}`}`,
      override: true
    })
  })
}

const MESSAGE_CHARS = 300

/** Caps a message built by a library that quotes whole values (Effect's Schema does). */
export const boundedMessage = (message: string): string =>
  message.length <= MESSAGE_CHARS ? message : `${message.slice(0, MESSAGE_CHARS)}…`

/** Deeper than anything the router's own formats nest (a hook is three levels); recursive code stays far from the stack's limit. */
export const MAX_JSON_DEPTH = 32

const OPEN_OBJECT = 123 // {
const OPEN_ARRAY = 91 // [
const CLOSE_OBJECT = 125 // }
const CLOSE_ARRAY = 93 // ]
const QUOTE = 34 // "
const BACKSLASH = 92 // \

/** Whether brackets outside strings nest deeper than `limit`; one pass, stops at the first level too deep. */
export const nestsDeeperThan = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return true
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--
  }
  return false
}

/**
 * JSON.parse itself copes with any depth, but what walks the result
 * recursively (schema decoding, error formatting, JSON.stringify) overflows
 * the stack on tens of thousands of levels: refuse those before parsing.
 */
export const parseJsonWithin = (text: string, maxDepth = MAX_JSON_DEPTH): Either.Either<unknown, string> => {
  if (nestsDeeperThan(text, maxDepth)) return Either.left(`JSON nested deeper than ${maxDepth} levels`)
  try {
    return Either.right(JSON.parse(text))
  } catch {
    return Either.left("not valid JSON")
  }
}
