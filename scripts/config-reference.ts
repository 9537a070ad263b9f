/**
 * The configuration reference in docs/configuration.md, generated from the
 * RouterConfig schema so it cannot drift from what the router decodes: one row
 * per key, its default as the schema decodes a missing key, and its meaning
 * from the key's `description` annotation. `bun run docs` rewrites the block
 * between the markers; test/config-reference.test.ts fails when it is stale.
 */
import { join } from "node:path"
import { Duration, Option, SchemaAST as AST } from "effect"
import { RouterConfig } from "../src/domain/Config.ts"

export const REFERENCE_PATH = join(import.meta.dir, "..", "docs", "configuration.md")
const START = "<!-- config-reference:start -->"
const END = "<!-- config-reference:end -->"

export interface ConfigKey {
  /** Dotted, with `[]` for the items of a list: `delivery.window.lanes`, `hooks[].url`. */
  readonly key: string
  /** As the docs write values (`8080`, `10s`, `[]`), or `required` / `none` for keys without one. */
  readonly default: string
  readonly meaning: string
}

interface Property {
  readonly name: string
  /** The schema a file's value is decoded with. */
  readonly type: AST.AST
  readonly optional: boolean
  readonly description: Option.Option<string>
  readonly defaultValue: Option.Option<unknown>
}

/**
 * A struct's keys as a file writes them. A struct with defaults is a
 * transformation: its encoded side says which keys may be left out, its type
 * side carries the descriptions, and its property transformations turn a
 * missing key into the default. Records (no fixed keys) are values, not structs.
 */
const propertiesOf = (ast: AST.AST): ReadonlyArray<Property> | undefined => {
  if (AST.isTypeLiteral(ast)) {
    if (ast.propertySignatures.length === 0 || ast.indexSignatures.length > 0) return undefined
    return ast.propertySignatures.map((ps) => ({
      name: String(ps.name),
      type: withoutUndefined(ps.type),
      optional: ps.isOptional,
      description: AST.getDescriptionAnnotation(ps),
      defaultValue: Option.none()
    }))
  }
  if (AST.isTransformation(ast) && AST.isTypeLiteralTransformation(ast.transformation) && AST.isTypeLiteral(ast.from) && AST.isTypeLiteral(ast.to)) {
    const { to, transformation } = ast
    return ast.from.propertySignatures.map((from) => {
      const described = to.propertySignatures.find((ps) => ps.name === from.name)
      const filled = transformation.propertySignatureTransformations.find((t) => t.to === from.name)
      return {
        name: String(from.name),
        type: withoutUndefined(from.type),
        optional: from.isOptional,
        description: described ? AST.getDescriptionAnnotation(described) : Option.none(),
        defaultValue: filled ? filled.decode(Option.none()) : Option.none()
      }
    })
  }
  return undefined
}

/** `Schema.optional` admits `undefined` besides the value; the value's schema is what describes the key. */
const withoutUndefined = (ast: AST.AST): AST.AST => {
  if (!AST.isUnion(ast)) return ast
  const defined = ast.types.filter((member) => !AST.isUndefinedKeyword(member))
  return defined.length === 1 ? defined[0]! : ast
}

/** The item schema of a list (through its refinements, like a minimum length), if it is one. */
const itemOf = (ast: AST.AST): AST.AST | undefined => {
  if (AST.isRefinement(ast)) return itemOf(ast.from)
  return AST.isTupleType(ast) && ast.elements.length === 0 && ast.rest.length === 1 ? ast.rest[0]!.type : undefined
}

const DURATION_UNITS: ReadonlyArray<readonly [string, number]> = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000]
]

/** A duration in the largest unit that counts it whole; a single day reads as `24h`, as operators usually write it. */
const renderDuration = (duration: Duration.Duration): string => {
  const ms = Duration.toMillis(duration)
  if (ms === 0) return "0"
  const unit = DURATION_UNITS.find(([name, size]) => ms % size === 0 && !(name === "d" && ms === size))
  return unit ? `${ms / unit[1]}${unit[0]}` : `${ms}ms`
}

/** A decoded value as a config file would write it: `10s` rather than ten thousand milliseconds. */
export const renderValue = (value: unknown): string => {
  if (Duration.isDuration(value)) return renderDuration(value)
  if (Array.isArray(value)) return value.length === 0 ? "[]" : JSON.stringify(value)
  return String(value)
}

const defaultOf = (property: Property): string =>
  Option.match(property.defaultValue, {
    onSome: (value) => `\`${renderValue(value)}\``,
    onNone: () => (property.optional ? "none" : "required")
  })

/** The keys under a struct (`server.port`) or a list of structs (`hooks[].url`), if the value is one. */
const sectionOf = (type: AST.AST, key: string): { readonly ast: AST.AST; readonly prefix: string } | undefined => {
  if (propertiesOf(type)) return { ast: type, prefix: `${key}.` }
  const item = itemOf(type)
  return item && propertiesOf(item) ? { ast: item, prefix: `${key}[].` } : undefined
}

/**
 * Every key, in the schema's order. A section (a struct, or a list of structs)
 * gets a row of its own when it has a description, which one that may be left
 * out without a default must have: what leaving it out means. A value must
 * always have one.
 */
const keysUnder = (ast: AST.AST, prefix: string): Array<ConfigKey> =>
  (propertiesOf(ast) ?? []).flatMap((property) => {
    const key = prefix + property.name
    const row = Option.map(property.description, (meaning): ConfigKey => ({ key, default: defaultOf(property), meaning }))
    const section = sectionOf(property.type, key)
    const mayBeLeftOut = property.optional && Option.isNone(property.defaultValue)
    const documented = Option.isSome(row) || (section !== undefined && !mayBeLeftOut)
    if (!documented) throw new Error(`config key ${key} has no description: annotate it in the schema`)
    return [...Option.toArray(row), ...(section ? keysUnder(section.ast, section.prefix) : [])]
  })

export const configKeys = (): ReadonlyArray<ConfigKey> => keysUnder(RouterConfig.ast, "")

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ")

export const renderReference = (): string =>
  ["| key | default | meaning |", "|---|---|---|", ...configKeys().map((k) => `| \`${k.key}\` | ${k.default} | ${cell(k.meaning)} |`)].join("\n")

const MARKED = new RegExp(`${START}\\n[\\s\\S]*?${END}`)

/** The text between the markers, without them. */
export const referenceIn = (doc: string): string | undefined => MARKED.exec(doc)?.[0].slice(START.length + 1, -END.length - 1)

export const withReference = (doc: string): string => {
  if (!MARKED.test(doc)) throw new Error(`${REFERENCE_PATH} has no ${START} ... ${END} block`)
  return doc.replace(MARKED, () => `${START}\n${renderReference()}\n${END}`)
}

if (import.meta.main) {
  const doc = await Bun.file(REFERENCE_PATH).text()
  const updated = withReference(doc)
  if (updated === doc) console.log("docs/configuration.md: the configuration reference is up to date")
  else {
    await Bun.write(REFERENCE_PATH, updated)
    console.log("docs/configuration.md: the configuration reference was rewritten")
  }
}
