/**
 * How the command line reads what it is given: options and arguments decoded
 * with the router's own schemas (so a bad value is a usage error in the
 * schema's words), and where the router is and who is asking.
 */
import { Args, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Config, Effect, Option, type Redacted, Schema } from "effect"
import { DeliveryId } from "../domain/DeliveryViews.ts"
import { firstProblem } from "../domain/Errors.ts"
import { EventName, HostPattern, NumberText } from "../domain/Hook.ts"
import { CLEARABLE } from "../domain/HookViews.ts"
import { oneOf } from "../domain/Untrusted.ts"

export const DEFAULT_ROUTER_URL = "http://127.0.0.1:8080"

/** A value decoded with a domain schema: a failure says what is wrong with it in the schema's own words, not as a tree. */
const decoded =
  <A>(what: string, schema: Schema.Schema<A, string>) =>
  (text: string) =>
    Effect.mapError(Schema.decodeUnknown(schema)(text), (error) => HelpDoc.p(`${what}: ${firstProblem(error, what).problem}`))
const validated = <A>(what: string, schema: Schema.Schema<A, string>) =>
  Options.mapEffect((text: string) => Effect.mapError(decoded(what, schema)(text), ValidationError.invalidValue))
export const option = <A>(name: string, schema: Schema.Schema<A, string>) => Options.text(name).pipe(validated(`--${name}`, schema))

/** The options that were given, as fields; those left out are absent, so the API applies its defaults. */
export const given = <A extends Record<string, Option.Option<unknown>>>(options: A): { [K in keyof A]?: A[K] extends Option.Option<infer V> ? V : never } =>
  Object.fromEntries(Object.entries(options).flatMap(([key, value]) => (Option.isSome(value) ? [[key, value.value]] : []))) as never
export const argument = <A>(name: string, schema: Schema.Schema<A, string>) => Args.text({ name }).pipe(Args.mapEffect(decoded(name, schema)))

/** Blank env values count as unset, as the router's own config does. */
const envText = (name: string) => Config.string(name).pipe(Config.validate({ message: `${name} is blank`, validation: (value) => value !== "" }))

/** The router's base URL, checked here so a typo is a usage error rather than a confusing network one. */
const RouterUrl = Schema.String.pipe(
  Schema.filter((text) => {
    if (!URL.canParse(text)) return `not a URL: "${text}"`
    const { protocol } = new URL(text)
    return protocol === "http:" || protocol === "https:" || `must be http or https, got "${text}"`
  }),
  Schema.transform(Schema.String, { strict: true, decode: (text) => new URL(text).href.replace(/\/+$/, ""), encode: (url) => url })
)

const routerUrlFrom = (option: Options.Options<string>) =>
  option.pipe(
    Options.withDescription(`the router (env ROUTER_URL, default ${DEFAULT_ROUTER_URL})`),
    Options.withFallbackConfig(Config.orElse(envText("ROUTER_URL"), () => Config.succeed(DEFAULT_ROUTER_URL))),
    validated("the router URL", RouterUrl)
  )

const token = Options.redacted("token").pipe(
  Options.withDescription("admin bearer token (better: env ROUTER_ADMIN_TOKEN, since flags show in ps)"),
  Options.withFallbackConfig(Config.redacted(envText("ROUTER_ADMIN_TOKEN")))
)

/** Where the router is and who is asking; `--router-url` is accepted everywhere, `--url` wherever it does not name a hook's URL. */
export const connection = Options.all({ url: routerUrlFrom(Options.text("url").pipe(Options.withAlias("router-url"))), token })
export const connectionForSet = Options.all({ url: routerUrlFrom(Options.text("router-url")), token })
export type Connection = { readonly url: string; readonly token: Redacted.Redacted }

export const hostArg = argument("HOST", HostPattern).pipe(Args.withDescription('a host like calls.example.com, or a wildcard like "*.example.com"'))
// Read by the router, in its defaultCountry: a national spelling means what the router's config says it means.
export const numberArg = argument("NUMBER", NumberText).pipe(Args.withDescription('a dialled number, e.g. +15557654321, or national ("(555) 765-4321") when the router has a defaultCountry'))
export const deliveryArg = argument("ID", DeliveryId).pipe(Args.withDescription("a delivery id"))

/** `a,b`: a comma-separated list, each item decoded by `item`. */
const commaSeparated = <A, I extends string>(item: Schema.Schema<A, I>) =>
  Schema.transform(Schema.String, Schema.Array(Schema.String), {
    strict: true,
    decode: (text) => text.split(",").map((part) => part.trim()).filter((part) => part !== ""),
    encode: (items) => items.join(",")
  }).pipe(Schema.compose(Schema.Array(item), { strict: false }))

/** `a,b`: LiveKit event names (and call events). */
export const EventList = commaSeparated(EventName)
/** Hosts and wildcards. */
export const HostList = commaSeparated(HostPattern)
/** `maxAge,headers`: the fields of a hook `hooks update --clear` removes. */
export const ClearList = commaSeparated(oneOf(Schema.Literal(...CLEARABLE)))
