/**
 * The command-line interface: the admin API of a running router (`hooks`,
 * `numbers`) and `check-config`, which needs no router. Parsing and formatting
 * are pure functions; only `cli` does I/O.
 */
import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { defaultTeardown, type Teardown } from "@effect/platform/Runtime"
import { Console, Data, Duration, Effect, Either, Exit, ParseResult, Schema } from "effect"
import { loadConfigFile } from "../AppConfig.ts"
import type { ConfigEnv } from "../domain/Config.ts"

export const DEFAULT_ROUTER_URL = "http://127.0.0.1:8080"

// A test send waits for the tenant (up to delivery.timeout), so this is well above any sane per-attempt timeout.
const ANSWER_TIMEOUT = Duration.seconds(60)

export const USAGE = `usage: bun run src/main.ts COMMAND [ARGUMENTS] [OPTIONS]

Admin commands (talk to a running router):
  hooks list                  every hook: host, url, source, events, rateLimit
  hooks get HOST              one hook
  hooks set HOST --url URL [--secret whsec_...] [--events a,b] [--rate-limit 50/s]
                              create or replace an API hook. The whole hook is replaced:
                              omitted --events/--rate-limit are cleared. Without --secret an
                              existing hook keeps its secret and a new one gets a generated
                              secret (shown once); use rotate-secret to roll a secret over
  hooks rm HOST               remove an API hook
  hooks test HOST             send one signed router.test event now; exit 1 unless delivered
  hooks rotate-secret HOST    a new secret; the old one keeps signing for a while
  numbers list                dialled numbers routed to hooks (for shared domains)
  numbers set E164 HOST       route a dialled number to a hook host
  numbers rm E164             remove a number's route

Connection options (admin commands):
  --url URL                   the router (env ROUTER_URL, default ${DEFAULT_ROUTER_URL})
  --router-url URL            the same; needed in "hooks set", where --url is the hook's URL
  --token TOKEN               admin bearer token (env ROUTER_ADMIN_TOKEN, better: flags show in ps)

Other commands:
  check-config FILE           decode FILE exactly as the router would (env overrides included)
                              and print what is wrong; needs no router
  help, --help                this text

To run the router itself: bun run src/main.ts --config FILE   (or set ROUTER_CONFIG)
Exit status: 0 done, 1 failed (router error, unreachable, not delivered, bad config), 2 bad usage.`

/** The first arguments that select the CLI rather than the server. */
export const isCliInvocation = (args: ReadonlyArray<string>): boolean =>
  ["hooks", "numbers", "check-config", "help", "--help"].includes(args[0] ?? "")

// ---------------------------------------------------------------- parsing (pure)

export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export interface Connection {
  readonly url: string
  readonly token: string
}

export interface HookChanges {
  readonly url: string
  readonly secret?: string
  readonly events?: ReadonlyArray<string>
  readonly rateLimit?: string
}

/** What an admin command asks of the router. */
export type Action =
  | { readonly _tag: "ListHooks" }
  | { readonly _tag: "GetHook"; readonly host: string }
  | { readonly _tag: "SetHook"; readonly host: string; readonly changes: HookChanges }
  | { readonly _tag: "RemoveHook"; readonly host: string }
  | { readonly _tag: "TestHook"; readonly host: string }
  | { readonly _tag: "RotateSecret"; readonly host: string }
  | { readonly _tag: "ListNumbers" }
  | { readonly _tag: "SetNumber"; readonly number: string; readonly host: string }
  | { readonly _tag: "RemoveNumber"; readonly number: string }

export type Command =
  | { readonly _tag: "Help" }
  | { readonly _tag: "CheckConfig"; readonly file: string }
  | { readonly _tag: "Admin"; readonly action: Action; readonly connection: Connection }

/** The config env (check-config applies it as the router does) plus where the router is. */
export type CliEnv = ConfigEnv & { readonly ROUTER_URL?: string | undefined }

type Options = ReadonlyMap<string, string>

const CONNECTION = ["url", "router-url", "token"]

interface CommandSpec {
  readonly operands: ReadonlyArray<string>
  readonly options: ReadonlyArray<string>
  readonly build: (operands: ReadonlyArray<string>, options: Options) => Action | { readonly _tag: "CheckConfig"; readonly file: string }
}

// Operands are checked for count before `build` runs, so indexing them is safe.
const operand = (operands: ReadonlyArray<string>, i: number) => operands[i] as string

const splitList = (text: string) =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "")

const hookChanges = (options: Options): HookChanges => {
  const secret = options.get("secret")
  const events = options.get("events")
  const rateLimit = options.get("rate-limit")
  return {
    url: options.get("url") as string,
    ...(secret === undefined ? {} : { secret }),
    ...(events === undefined ? {} : { events: splitList(events) }),
    ...(rateLimit === undefined ? {} : { rateLimit })
  }
}

const COMMANDS: Record<string, CommandSpec> = {
  "hooks list": { operands: [], options: CONNECTION, build: () => ({ _tag: "ListHooks" }) },
  "hooks get": { operands: ["HOST"], options: CONNECTION, build: (o) => ({ _tag: "GetHook", host: operand(o, 0) }) },
  "hooks set": {
    operands: ["HOST"],
    // Here --url is the hook's target, so the router is named with --router-url (or ROUTER_URL).
    options: ["url", "secret", "events", "rate-limit", "router-url", "token"],
    build: (o, options) => ({ _tag: "SetHook", host: operand(o, 0), changes: hookChanges(options) })
  },
  "hooks rm": { operands: ["HOST"], options: CONNECTION, build: (o) => ({ _tag: "RemoveHook", host: operand(o, 0) }) },
  "hooks test": { operands: ["HOST"], options: CONNECTION, build: (o) => ({ _tag: "TestHook", host: operand(o, 0) }) },
  "hooks rotate-secret": { operands: ["HOST"], options: CONNECTION, build: (o) => ({ _tag: "RotateSecret", host: operand(o, 0) }) },
  "numbers list": { operands: [], options: CONNECTION, build: () => ({ _tag: "ListNumbers" }) },
  "numbers set": {
    operands: ["E164", "HOST"],
    options: CONNECTION,
    build: (o) => ({ _tag: "SetNumber", number: operand(o, 0), host: operand(o, 1) })
  },
  "numbers rm": { operands: ["E164"], options: CONNECTION, build: (o) => ({ _tag: "RemoveNumber", number: operand(o, 0) }) },
  "check-config": { operands: ["FILE"], options: [], build: (o) => ({ _tag: "CheckConfig", file: operand(o, 0) }) }
}

const REQUIRED_OPTIONS: Record<string, ReadonlyArray<string>> = { "hooks set": ["url"] }

interface Tokens {
  readonly words: ReadonlyArray<string>
  readonly options: Options
  readonly help: boolean
}

/** Splits arguments into words and `--name value` / `--name=value` options; every option but --help takes a value. */
const tokenize = (args: ReadonlyArray<string>): Either.Either<Tokens, UsageError> => {
  const words: string[] = []
  const options = new Map<string, string>()
  let help = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg === "--help" || arg === "-h") {
      help = true
      continue
    }
    if (!arg.startsWith("-") || arg === "-") {
      words.push(arg)
      continue
    }
    if (!arg.startsWith("--")) return Either.left(new UsageError({ message: `unknown option ${arg}` }))
    const equals = arg.indexOf("=")
    const name = arg.slice(2, equals === -1 ? undefined : equals)
    const value = equals === -1 ? args[++i] : arg.slice(equals + 1)
    if (value === undefined || (equals === -1 && value.startsWith("--"))) {
      return Either.left(new UsageError({ message: `--${name} needs a value` }))
    }
    if (options.has(name)) return Either.left(new UsageError({ message: `--${name} given twice` }))
    options.set(name, value)
  }
  return Either.right({ words, options, help })
}

/** The router's base URL, checked here so a typo is a usage error rather than a confusing network one. */
const routerUrl = (text: string): Either.Either<string, UsageError> => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return Either.left(new UsageError({ message: `the router URL is not a URL: "${text}"` }))
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(new UsageError({ message: `the router URL must be http or https, got "${text}"` }))
  }
  return Either.right(url.href.replace(/\/+$/, ""))
}

// Blank env values count as unset, as the router's own config does.
const nonBlank = (value: string | undefined) => (value === undefined || value === "" ? undefined : value)

const connectionFor = (command: string, options: Options, env: CliEnv): Either.Either<Connection, UsageError> => {
  const urlFlag = command === "hooks set" ? undefined : options.get("url")
  const token = nonBlank(options.get("token")) ?? nonBlank(env.ROUTER_ADMIN_TOKEN)
  if (token === undefined) return Either.left(new UsageError({ message: "no admin token: pass --token TOKEN or set ROUTER_ADMIN_TOKEN" }))
  return Either.map(
    routerUrl(options.get("router-url") ?? urlFlag ?? nonBlank(env.ROUTER_URL) ?? DEFAULT_ROUTER_URL),
    (url) => ({ url, token })
  )
}

/** Turns the arguments after `main.ts` into a command, or says what is wrong with them. */
export const parseArgs = (args: ReadonlyArray<string>, env: CliEnv): Either.Either<Command, UsageError> =>
  Either.flatMap(tokenize(args), ({ words, options, help }) => {
    if (help || words[0] === "help") return Either.right({ _tag: "Help" } as const)
    const [group, verb] = words
    const name = group === "check-config" ? group : `${group ?? ""} ${verb ?? ""}`.trim()
    const spec = COMMANDS[name]
    if (!spec) {
      const incomplete = verb === undefined && (group === "hooks" || group === "numbers")
      return Either.left(new UsageError({ message: incomplete ? `"${group}" needs a command` : `unknown command "${name}"` }))
    }
    const operands = words.slice(name.split(" ").length)
    if (operands.length < spec.operands.length) {
      return Either.left(new UsageError({ message: `${name}: missing ${spec.operands.slice(operands.length).join(" ")}` }))
    }
    if (operands.length > spec.operands.length) {
      return Either.left(new UsageError({ message: `${name}: unexpected argument "${operands[spec.operands.length]}"` }))
    }
    const unknown = [...options.keys()].find((option) => !spec.options.includes(option))
    if (unknown !== undefined) return Either.left(new UsageError({ message: `${name}: unknown option --${unknown}` }))
    const missing = (REQUIRED_OPTIONS[name] ?? []).find((option) => !options.has(option))
    if (missing !== undefined) return Either.left(new UsageError({ message: `${name}: --${missing} is required` }))
    const built = spec.build(operands, options)
    if (built._tag === "CheckConfig") return Either.right(built)
    return Either.map(connectionFor(name, options, env), (connection): Command => ({ _tag: "Admin", action: built, connection }))
  })

/** encodeURIComponent leaves `*` (wildcard hosts) and a few others alone; encode those too. */
export const pathSegment = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

// ---------------------------------------------------------------- the router's answers

const HookView = Schema.Struct({
  host: Schema.String,
  url: Schema.String,
  events: Schema.NullOr(Schema.Array(Schema.String)),
  rateLimit: Schema.NullOr(Schema.String),
  source: Schema.String,
  hasOwnSecret: Schema.Boolean
})
export type HookView = typeof HookView.Type

const HookList = Schema.Struct({ hooks: Schema.Array(HookView) })
const PutHookAnswer = Schema.Struct({ ...HookView.fields, secret: Schema.optional(Schema.String) })
const TestAnswer = Schema.Struct({
  url: Schema.String,
  delivered: Schema.Boolean,
  status: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(Schema.String),
  latencyMs: Schema.Number
})
export type TestAnswer = typeof TestAnswer.Type
const RotateAnswer = Schema.Struct({ host: Schema.String, secret: Schema.String, previousSecretExpiresAt: Schema.String })
const NumberView = Schema.Struct({ number: Schema.String, host: Schema.String, source: Schema.String })
export type NumberView = typeof NumberView.Type
const NumberList = Schema.Struct({ numbers: Schema.Array(NumberView) })
const ApiError = Schema.Struct({ error: Schema.Struct({ code: Schema.String, message: Schema.String }) })
const NoContent = Schema.Unknown

// ---------------------------------------------------------------- formatting (pure)

/** Left-aligned columns two spaces apart; the last column is not padded. */
export const formatTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)))
  return [header, ...rows]
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  "))
    .join("\n")
}

/** `key: value` lines with the values aligned. */
const formatFields = (fields: ReadonlyArray<readonly [string, string]>): string => {
  const width = Math.max(...fields.map(([key]) => key.length)) + 1
  return fields.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`).join("\n")
}

const eventsText = (events: ReadonlyArray<string> | null) => (events === null ? "all" : events.length === 0 ? "none" : events.join(","))

export const formatHookList = (hooks: ReadonlyArray<HookView>): string =>
  hooks.length === 0
    ? "no hooks"
    : formatTable(
        ["host", "url", "source", "events", "rateLimit"],
        hooks.map((hook) => [hook.host, hook.url, hook.source, eventsText(hook.events), hook.rateLimit ?? "-"])
      )

export const formatHook = (hook: HookView): string =>
  formatFields([
    ["host", hook.host],
    ["url", hook.url],
    ["source", hook.source],
    ["events", eventsText(hook.events)],
    ["rateLimit", hook.rateLimit ?? "-"],
    ["own secret", hook.hasOwnSecret ? "yes" : "no (signed with signing.secret)"]
  ])

const STORE_IT = "Store this secret now: the router never shows it again."

export const formatHookSet = (status: number, answer: typeof PutHookAnswer.Type): string =>
  [
    `${status === 201 ? "created" : "updated"} ${answer.host} -> ${answer.url}`,
    ...(answer.secret === undefined
      ? []
      : [`secret: ${answer.secret}`, STORE_IT])
  ].join("\n")

export const formatTest = (answer: TestAnswer): string =>
  formatFields([
    ["url", answer.url],
    ["delivered", answer.delivered ? "yes" : "no"],
    ["status", answer.status === null ? "-" : String(answer.status)],
    ...(answer.error === null ? [] : [["error", answer.error] as const]),
    ["latency", `${answer.latencyMs}ms`]
  ])

export const formatRotation = (answer: typeof RotateAnswer.Type): string =>
  [
    `new secret for ${answer.host}: ${answer.secret}`,
    STORE_IT,
    `The previous secret keeps signing deliveries, next to the new one, until ${answer.previousSecretExpiresAt}.`
  ].join("\n")

export const formatNumberList = (numbers: ReadonlyArray<NumberView>): string =>
  numbers.length === 0
    ? "no numbers"
    : formatTable(["number", "host", "source"], numbers.map((entry) => [entry.number, entry.host, entry.source]))

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`

// ---------------------------------------------------------------- failures

/** The router answered with an error status. */
export class RouterRejected extends Data.TaggedError("RouterRejected")<{
  readonly status: number
  readonly code: string
  readonly message: string
}> {}

/** No answer at all: connection refused, DNS, reset, or too slow. */
export class RouterUnreachable extends Data.TaggedError("RouterUnreachable")<{ readonly url: string; readonly reason: string }> {}

/** A success status with a body this CLI does not understand (a proxy, or another version of the router). */
export class UnexpectedAnswer extends Data.TaggedError("UnexpectedAnswer")<{ readonly status: number; readonly problem: string }> {}

type AdminFailure = RouterRejected | RouterUnreachable | UnexpectedAnswer

export const formatFailure = (failure: AdminFailure): string => {
  switch (failure._tag) {
    case "RouterRejected":
      return `error: ${failure.status} ${failure.code}: ${failure.message}`
    case "RouterUnreachable":
      return `error: cannot reach the router at ${failure.url}: ${failure.reason}`
    case "UnexpectedAnswer":
      return `error: unexpected answer from the router (HTTP ${failure.status}): ${failure.problem}`
  }
}

// ---------------------------------------------------------------- I/O

const parseJson = (text: string): unknown => {
  if (text === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** An error answer as the router words it, or the status and body when something else answered. */
const rejection = (status: number, body: unknown) =>
  Either.match(Schema.decodeUnknownEither(ApiError)(body), {
    onRight: ({ error }) => new RouterRejected({ status, code: error.code, message: error.message }),
    onLeft: () =>
      new RouterRejected({
        status,
        code: "unexpected",
        message: typeof body === "string" ? body.slice(0, 200) : "the answer is not a router error"
      })
  })

const describeCause = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** One admin request; the answer is decoded with `answer`, an error status becomes RouterRejected. */
const request = <A, I>(
  connection: Connection,
  method: "GET" | "PUT" | "POST" | "DELETE",
  path: string,
  answer: Schema.Schema<A, I>,
  body?: unknown
) =>
  Effect.gen(function* () {
    const base = HttpClientRequest.make(method)(`${connection.url}${path}`).pipe(HttpClientRequest.bearerToken(connection.token))
    const unreachable = (reason: string) => new RouterUnreachable({ url: connection.url, reason })
    const response = yield* HttpClient.execute(body === undefined ? base : HttpClientRequest.bodyUnsafeJson(base, body)).pipe(
      Effect.mapError((error) => unreachable(describeCause(error.cause ?? error))),
      Effect.timeoutFail({ duration: ANSWER_TIMEOUT, onTimeout: () => unreachable(`no answer within ${Duration.format(ANSWER_TIMEOUT)}`) })
    )
    const text = yield* Effect.mapError(response.text, (error) => unreachable(describeCause(error.cause ?? error)))
    const json = parseJson(text)
    if (response.status >= 400) return yield* rejection(response.status, json)
    const value = yield* Effect.mapError(
      Schema.decodeUnknown(answer)(json),
      (error) => new UnexpectedAnswer({ status: response.status, problem: ParseResult.TreeFormatter.formatErrorSync(error) })
    )
    return { status: response.status, value }
  })

const hookPath = (host: string, suffix = "") => `/v1/hooks/${pathSegment(host)}${suffix}`
const numberPath = (number: string) => `/v1/numbers/${pathSegment(number)}`

/** Runs one admin action, printing its result; the exit code is 1 only for an undelivered test. */
const perform = (action: Action, connection: Connection) =>
  Effect.gen(function* () {
    switch (action._tag) {
      case "ListHooks": {
        const { value } = yield* request(connection, "GET", "/v1/hooks", HookList)
        yield* Console.log(formatHookList(value.hooks))
        return 0
      }
      case "GetHook": {
        const { value } = yield* request(connection, "GET", hookPath(action.host), HookView)
        yield* Console.log(formatHook(value))
        return 0
      }
      case "SetHook": {
        const { status, value } = yield* request(connection, "PUT", hookPath(action.host), PutHookAnswer, action.changes)
        yield* Console.log(formatHookSet(status, value))
        return 0
      }
      case "RemoveHook": {
        yield* request(connection, "DELETE", hookPath(action.host), NoContent)
        yield* Console.log(`removed ${action.host}`)
        return 0
      }
      case "TestHook": {
        const { value } = yield* request(connection, "POST", hookPath(action.host, "/test"), TestAnswer)
        yield* Console.log(formatTest(value))
        return value.delivered ? 0 : 1
      }
      case "RotateSecret": {
        const { value } = yield* request(connection, "POST", hookPath(action.host, "/rotate-secret"), RotateAnswer)
        yield* Console.log(formatRotation(value))
        return 0
      }
      case "ListNumbers": {
        const { value } = yield* request(connection, "GET", "/v1/numbers", NumberList)
        yield* Console.log(formatNumberList(value.numbers))
        return 0
      }
      case "SetNumber": {
        const { status, value } = yield* request(connection, "PUT", numberPath(action.number), NumberView, { host: action.host })
        yield* Console.log(`${status === 201 ? "created" : "updated"} ${value.number} -> ${value.host}`)
        return 0
      }
      case "RemoveNumber": {
        yield* request(connection, "DELETE", numberPath(action.number), NoContent)
        yield* Console.log(`removed ${action.number}`)
        return 0
      }
    }
  }).pipe(
    Effect.catchAll((failure) => Effect.as(Console.error(formatFailure(failure)), 1)),
    Effect.provide(FetchHttpClient.layer)
  )

const checkConfig = (file: string, env: CliEnv) =>
  loadConfigFile(file, env).pipe(
    Effect.flatMap((config) =>
      Console.log(`ok: ${file} (${count(config.hooks.length, "hook")}, ${count(config.numbers.length, "number")})`)
    ),
    Effect.as(0),
    Effect.catchAll((error) => Effect.as(Console.error(error.message), 1))
  )

/** The whole CLI: succeeds with the process exit code (0 done, 1 failed, 2 bad usage). */
export const cli = (args: ReadonlyArray<string>, env: CliEnv): Effect.Effect<number> =>
  Either.match(parseArgs(args, env), {
    onLeft: (usage) => Effect.as(Console.error(`error: ${usage.message}\n\n${USAGE}`), 2),
    onRight: (command) => {
      switch (command._tag) {
        case "Help":
          return Effect.as(Console.log(USAGE), 0)
        case "CheckConfig":
          return checkConfig(command.file, env)
        case "Admin":
          return perform(command.action, command.connection)
      }
    }
  }).pipe(Effect.catchAllDefect((defect) => Effect.as(Console.error(`error: unexpected failure: ${describeCause(defect)}`), 1)))

/** runMain's default teardown knows only 0 and 1; this one exits with the code the CLI returned. */
export const exitWithCode: Teardown = (exit, onExit) =>
  Exit.isSuccess(exit) && typeof exit.value === "number" ? onExit(exit.value) : defaultTeardown(exit, onExit)
