/**
 * The command line, with @effect/cli: the router itself (`serve`, or just
 * `--config FILE`), the admin API of a running router through a client derived
 * from the API's definition, and `check-config`, which needs no router.
 */
import { Args, type CliApp, Command, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient, HttpApiClient, HttpClient, HttpClientError, HttpClientRequest } from "@effect/platform"
import { defaultTeardown, type Teardown } from "@effect/platform/Runtime"
import { Config, Console, Data, Duration, Effect, Exit, Option, ParseResult, Redacted } from "effect"
import { loadConfigFile, readConfigFile } from "../AppConfig.ts"
import { CallStatus } from "../domain/Call.ts"
import { CallCursorText } from "../domain/CallViews.ts"
import { DeliveryStatus } from "../domain/Delivery.ts"
import { CallDomain, DeliveryId, DeliveryTenant, EventIdFilter, EventType, Limit, RoomName } from "../domain/DeliveryViews.ts"
import { isAnswered } from "../domain/Errors.ts"
import { E164, HostPattern, MaxAge, RateLimitSetting, TargetUrl, WebhookSecret } from "../domain/Hook.ts"
import { IsoTime } from "../domain/IsoTime.ts"
import { NumberCreated } from "../domain/HookViews.ts"
import { AdminApi } from "../http/Api.ts"
import * as Format from "./Format.ts"
import { argument, connection, connectionForSet, type Connection, DEFAULT_ROUTER_URL, deliveryArg, EventList, given, hostArg, numberArg, option } from "./Inputs.ts"
import { listenCommand } from "./Listen.ts"

// A test send waits for the tenant (up to delivery.timeout), so this is well above any sane per-attempt timeout.
const ANSWER_TIMEOUT = Duration.seconds(60)

/** Printed under `--help` and after a usage error. */
export const OVERVIEW = `usage: bun run src/main.ts COMMAND [ARGUMENTS] [OPTIONS]

  --config FILE               run the router (also: serve --config FILE, or set ROUTER_CONFIG)
  hooks list | get HOST | rm HOST | test HOST | rotate-secret HOST
  hooks set HOST --url URL [--secret whsec_...] [--events a,b] [--rate-limit 50/s] [--max-age 30s]
  numbers list | set E164 HOST | rm E164
  deliveries list [--status S] [--tenant HOST] [--limit N] | get ID | retry ID
  deliveries list [--room NAME] [--event-id ID] [--event-type TYPE] [--domain D]
  tenants recover HOST --since ISO
  unroutable list | domains | replay DOMAIN [--since ISO]
  calls list [--tenant HOST] [--status S] [--number N] [--domain D] [--since ISO] [--until ISO]
  calls show ROOM             a call (by room name or sid) and its timeline
  explain [--x-to-ip VALUE] [--to VALUE] [--number VALUE]   where such a call goes now, and why
  listen --tenant HOST --forward-to URL   forward a tenant's deliveries to a local app, signed
  check-config FILE           decode FILE exactly as the router would; needs no router

Admin commands talk to a running router: --url (--router-url in hooks set, where --url is
the hook's) or ROUTER_URL, default ${DEFAULT_ROUTER_URL}; --token or ROUTER_ADMIN_TOKEN.
COMMAND --help says more. Exit status: 0 done, 1 failed, 2 bad usage.`

// ---------------------------------------------------------------- failures

/** A command that failed (the router refused, could not be reached or answered nonsense; a bad config; a store it cannot open): its line for stderr, exit 1. */
class Failed extends Data.TaggedError("Failed")<{ readonly message: string }> {}

/** The router answered, and the answer is no (`hooks test`: not delivered; `explain`: not routed): exit 1, the answer already printed. */
class AnsweredNo extends Data.TaggedError("AnsweredNo")<{}> {}

/** A command that cannot run as given (outside what @effect/cli validates). */
class Usage extends Data.TaggedError("Usage")<{ readonly message: string }> {}

const describeCause = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const describeFailure = (url: string, error: unknown): string => {
  if (isAnswered(error)) return `error: ${error.status} ${error.code}: ${error.message}`
  if (HttpClientError.isHttpClientError(error)) {
    return error._tag === "RequestError"
      ? `error: cannot reach the router at ${url}: ${describeCause(error.cause ?? error)}`
      : `error: unexpected answer from the router (HTTP ${error.response.status}): ${error.description ?? error.reason}`
  }
  if (ParseResult.isParseError(error)) return `error: unexpected answer from the router: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
  return `error: ${describeCause(error)}`
}

// ---------------------------------------------------------------- admin commands

/** The API's client for this router and token: every request and answer typed by the API's definition. */
const makeClient = ({ url, token }: Connection) =>
  HttpApiClient.make(AdminApi, { baseUrl: url, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(token))) })
type Client = Effect.Effect.Success<ReturnType<typeof makeClient>>

/** Runs one admin command: any failure is printed as one `error: …` line (exit 1). */
const withClient =
  <I extends { readonly connection: Connection }, A>(use: (client: Client, input: I) => Effect.Effect<A, unknown>) =>
  (input: I) =>
    Effect.flatMap(makeClient(input.connection), (client) => use(client, input)).pipe(
      Effect.timeoutFail({
        duration: ANSWER_TIMEOUT,
        onTimeout: () => new Failed({ message: `error: cannot reach the router at ${input.connection.url}: no answer within ${Duration.format(ANSWER_TIMEOUT)}` })
      }),
      Effect.mapError((error) => (error instanceof Failed || error instanceof AnsweredNo ? error : new Failed({ message: describeFailure(input.connection.url, error) }))),
      Effect.provide(FetchHttpClient.layer)
    )

const print = (text: string) => Console.log(text)

/** A group of commands: without one of them it is a usage error, as before (@effect/cli alone would print its help, exit 0). */
const group = <const Name extends string>(name: Name) =>
  Command.make(name, {}, () => Effect.fail(new Usage({ message: `"${name}" needs a command (${name} --help lists them)` })))

const hooks = group("hooks").pipe(
  Command.withDescription("the hooks: which tenant URL each host's calls go to"),
  Command.withSubcommands([
    Command.make("list", { connection }, withClient((client) => Effect.flatMap(client.hooks.list(), ({ hooks }) => print(Format.formatHookList(hooks))))).pipe(
      Command.withDescription("every hook: host, url, source, events, rateLimit")
    ),
    Command.make("get", { connection, host: hostArg },
      withClient((client, input) => Effect.flatMap(client.hooks.get({ path: { host: input.host } }), (hook) => print(Format.formatHook(hook))))
    ).pipe(Command.withDescription("one hook")),
    Command.make(
      "set",
      {
        connection: connectionForSet,
        host: hostArg,
        url: option("url", TargetUrl).pipe(Options.withDescription("where the hook's events are posted (http or https)")),
        secret: option("secret", WebhookSecret).pipe(Options.optional, Options.withDescription("whsec_… (without: kept, or generated for a new hook)")),
        events: option("events", EventList).pipe(Options.optional, Options.withDescription("only these events, e.g. participant_joined,room_finished")),
        rateLimit: option("rate-limit", RateLimitSetting).pipe(Options.optional, Options.withDescription("e.g. 50/s, 600/m, 1000/h")),
        maxAge: option("max-age", MaxAge).pipe(Options.optional, Options.withDescription("e.g. 30s, 10m: older events are not sent (they expire)"))
      },
      withClient((client, input) =>
        Effect.flatMap(
          client.hooks.put({
            path: { host: input.host },
            payload: {
              url: input.url,
              ...given({ secret: input.secret, events: input.events, rateLimit: input.rateLimit, maxAge: input.maxAge })
            }
          }),
          (saved) => print(Format.formatHookSet(saved))
        )
      )
    ).pipe(
      Command.withDescription(
        "create or replace an API hook. The whole hook is replaced: omitted --events/--rate-limit are cleared, and so are any headers and auth (the CLI does not set them: use PUT /v1/hooks/{host}). Without --secret an existing hook keeps its secret and a new one gets a generated secret (shown once); use rotate-secret to roll a secret over"
      )
    ),
    Command.make("rm", { connection, host: hostArg },
      withClient((client, input) => Effect.zipRight(client.hooks.remove({ path: { host: input.host } }), print(`removed ${input.host}`)))
    ).pipe(Command.withDescription("remove an API hook")),
    Command.make("test", { connection, host: hostArg },
      withClient((client, input) =>
        Effect.flatMap(client.hooks.test({ path: { host: input.host } }), (answer) =>
          Effect.zipRight(print(Format.formatTest(answer)), answer.delivered ? Effect.void : Effect.fail(new AnsweredNo()))
        )
      )
    ).pipe(Command.withDescription("send one signed router.test event now; exit 1 unless delivered")),
    Command.make("rotate-secret", { connection, host: hostArg },
      withClient((client, input) => Effect.flatMap(client.hooks.rotateSecret({ path: { host: input.host } }), (answer) => print(Format.formatRotation(answer))))
    ).pipe(Command.withDescription("a new secret; the old one keeps signing for a while"))
  ])
)

const numbers = group("numbers").pipe(
  Command.withDescription("dialled numbers routed to hooks (for shared domains)"),
  Command.withSubcommands([
    Command.make("list", { connection }, withClient((client) => Effect.flatMap(client.numbers.list(), ({ numbers }) => print(Format.formatNumberList(numbers))))).pipe(
      Command.withDescription("every number and the host it routes to")
    ),
    Command.make("set", { connection, number: numberArg, host: hostArg },
      withClient((client, input) =>
        Effect.flatMap(client.numbers.put({ path: { number: input.number }, payload: { host: input.host } }), (saved) =>
          print(`${saved instanceof NumberCreated ? "created" : "updated"} ${saved.number} -> ${saved.host}`)
        )
      )
    ).pipe(Command.withDescription("route a dialled number to a hook host")),
    Command.make("rm", { connection, number: numberArg },
      withClient((client, input) => Effect.zipRight(client.numbers.remove({ path: { number: input.number } }), print(`removed ${input.number}`)))
    ).pipe(Command.withDescription("remove a number's route"))
  ])
)

/** What `deliveries list` may also select by: the call's room and domain, and the event. */
const deliveryFilters = {
  room: option("room", RoomName).pipe(Options.optional, Options.withDescription("the call's room name")),
  eventId: option("event-id", EventIdFilter).pipe(Options.optional, Options.withDescription("one event's id, exactly")),
  eventType: Options.choice("event-type", EventType.literals).pipe(Options.optional),
  domain: option("domain", CallDomain).pipe(Options.optional, Options.withDescription("the call's domain, as the SIP headers gave it"))
}

const deliveries = group("deliveries").pipe(
  Command.withDescription("deliveries to tenants: their state and attempts, and requeueing failed ones"),
  Command.withSubcommands([
    Command.make(
      "list",
      {
        connection,
        status: Options.choice("status", DeliveryStatus.literals).pipe(Options.optional),
        tenant: option("tenant", DeliveryTenant).pipe(Options.optional, Options.withDescription("one tenant's host, or @alerts for the operational alerts (a tenant token must name a host)")),
        limit: option("limit", Limit).pipe(Options.optional, Options.withDescription("1 to 1000, default 100")),
        cursor: option("cursor", DeliveryId).pipe(Options.optional, Options.withDescription("the next page, as the previous one said")),
        ...deliveryFilters
      },
      withClient((client, { connection: _, ...filters }) =>
        Effect.flatMap(
          client.deliveries.list({ urlParams: given(filters) }),
          (page) => print(Format.formatDeliveryList(page))
        )
      )
    ).pipe(Command.withDescription("deliveries, newest first")),
    Command.make("get", { connection, id: deliveryArg },
      withClient((client, input) => Effect.flatMap(client.deliveries.get({ path: { id: input.id } }), (found) => print(Format.formatDelivery(found))))
    ).pipe(Command.withDescription("one delivery with its attempts")),
    Command.make("retry", { connection, id: deliveryArg },
      withClient((client, input) => Effect.flatMap(client.deliveries.retry({ path: { id: input.id } }), (delivery) => print(Format.formatRetried(delivery))))
    ).pipe(Command.withDescription("requeue a failed delivery with a fresh attempt budget"))
  ])
)

const tenants = group("tenants").pipe(
  Command.withDescription("a tenant's deliveries as a whole"),
  Command.withSubcommands([
    Command.make(
      "recover",
      { connection, host: hostArg, since: option("since", IsoTime).pipe(Options.withDescription("an ISO-8601 date (UTC midnight) or a time with its zone")) },
      withClient((client, input) =>
        Effect.flatMap(client.tenants.recover({ path: { host: input.host }, urlParams: { since: input.since } }), (recovery) => print(Format.formatRecovery(recovery)))
      )
    ).pipe(Command.withDescription("requeue the tenant's failed deliveries created since then"))
  ])
)

const unroutable = group("unroutable").pipe(
  Command.withDescription("SIP events that reached no tenant (operator token)"),
  Command.withSubcommands([
    Command.make(
      "list",
      { connection, limit: option("limit", Limit).pipe(Options.optional, Options.withDescription("1 to 1000, default 100")) },
      withClient((client, input) =>
        Effect.flatMap(client.unroutable.list({ urlParams: given({ limit: input.limit }) }), ({ items }) =>
          print(Format.formatUnroutableList(items))
        )
      )
    ).pipe(Command.withDescription("recent ones, newest first: the headers seen, the domain parsed and why it matched nothing")),
    Command.make("domains", { connection },
      withClient((client) => Effect.flatMap(client.unroutable.domains(), ({ items }) => print(Format.formatUnroutableDomains(items))))
    ).pipe(Command.withDescription("the unroutable events still kept, by domain and reason, most recently seen first, with their counts")),
    Command.make(
      "replay",
      {
        connection,
        domain: argument("DOMAIN", HostPattern).pipe(Args.withDescription("the domain the calls arrived for; a hook must match it now")),
        since: option("since", IsoTime).pipe(Options.optional, Options.withDescription("only calls since then (ISO-8601); default: all the router still holds"))
      },
      withClient((client, input) =>
        Effect.flatMap(client.unroutable.replay({ payload: { domain: input.domain, ...given({ since: input.since }) } }), (answer) =>
          print(`replayed ${answer.replayed} event${answer.replayed === 1 ? "" : "s"} to ${answer.tenant}`)
        )
      )
    ).pipe(Command.withDescription("route again the calls of a domain that had no hook when they rang, now that one does"))
  ])
)

const calls = group("calls").pipe(
  Command.withDescription("calls as the router saw them: who, where they went, how they ended, and each event's deliveries"),
  Command.withSubcommands([
    Command.make(
      "list",
      {
        connection,
        tenant: option("tenant", HostPattern).pipe(Options.optional, Options.withDescription("one hook host (a tenant token: one of its own)")),
        status: Options.choice("status", CallStatus.literals).pipe(Options.optional),
        number: option("number", E164).pipe(Options.optional, Options.withDescription("the caller's or the dialled number, in any spelling")),
        domain: option("domain", CallDomain).pipe(Options.optional, Options.withDescription("the domain the SIP headers gave")),
        since: option("since", IsoTime).pipe(Options.optional, Options.withDescription("calls that started at or after this ISO-8601 time")),
        until: option("until", IsoTime).pipe(Options.optional, Options.withDescription("calls that started before this ISO-8601 time")),
        limit: option("limit", Limit).pipe(Options.optional, Options.withDescription("1 to 1000, default 50")),
        cursor: option("cursor", CallCursorText).pipe(Options.optional, Options.withDescription("the next page, as the previous one said"))
      },
      withClient((client, { connection: _, ...filters }) => Effect.flatMap(client.calls.list({ urlParams: given(filters) }), (page) => print(Format.formatCallList(page))))
    ).pipe(Command.withDescription("calls, newest first (by start; first seen for a call that never started)")),
    Command.make("show", { connection, room: argument("ROOM", RoomName).pipe(Args.withDescription("a room name (its newest call) or a room sid")) },
      withClient((client, input) => Effect.flatMap(client.calls.get({ path: { room: input.room } }), (call) => print(Format.formatCall(call))))
    ).pipe(Command.withDescription("one call: its record, then its timeline (events, attempts, expiries, disables), one line each"))
  ])
)

const attribute = (name: string, description: string) => Options.text(name).pipe(Options.optional, Options.withDescription(description))

const explain = Command.make(
  "explain",
  {
    connection,
    xToIp: attribute("x-to-ip", "sip.h.x-to-ip: the request URI's host as the SIP edge copied it, e.g. calls.drsmith.com"),
    to: attribute("to", 'sip.h.to: the To header, e.g. "<sip:+15557654321@calls.drsmith.com>"'),
    number: attribute("number", "sip.trunkPhoneNumber: the dialled number, e.g. +15557654321")
  },
  withClient((client, { xToIp, to, number }) =>
    Effect.flatMap(client.explain.explain({ payload: { attributes: given({ "sip.h.x-to-ip": xToIp, "sip.h.to": to, "sip.trunkPhoneNumber": number }) } }), (answer) =>
      Effect.zipRight(print(Format.formatExplanation(answer)), answer.routed ? Effect.void : Effect.fail(new AnsweredNo()))
    )
  )
).pipe(
  Command.withDescription(
    "the decision the router would make now for a call with these SIP attributes (any of them): the tenant, the rule, each attribute's part, and hints; operator token. Exit 0 routed, 1 not"
  )
)

const listen = listenCommand({ connection, option, failed: (message) => new Failed({ message }) })

// ---------------------------------------------------------------- the router and its config

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`

const checkConfig = Command.make("check-config", { file: Args.file({ name: "FILE" }) }, ({ file }) =>
  loadConfigFile(file).pipe(
    Effect.flatMap((config) => print(`ok: ${file} (${count(config.hooks.length, "hook")}, ${count(config.numbers.length, "number")})`)),
    Effect.mapError((error) => new Failed({ message: error.message }))
  )
).pipe(Command.withDescription("decode FILE exactly as the router would (env overrides included) and print what is wrong; needs no router"))

const configOption = Options.file("config").pipe(
  Options.withDescription("the router's YAML config (env ROUTER_CONFIG)"),
  Options.withFallbackConfig(Config.string("ROUTER_CONFIG")),
  Options.optional,
  // A blank ROUTER_CONFIG counts as unset (and must not stop the other commands).
  Options.map(Option.filter((path) => path !== ""))
)

/** Runs the router until SIGTERM/SIGINT; a config or store it cannot use stops it with exit 1. */
const serve = (path: string) =>
  Effect.gen(function* () {
    const { config, text } = yield* readConfigFile(path)
    // Loaded here, not at the top, so admin commands do not pay for the whole server.
    const { runApp } = yield* Effect.promise(() => import("../App.ts"))
    return yield* runApp(config, { configFile: { path, text } })
  }).pipe(
    Effect.mapError((error) => new Failed({ message: error._tag === "StoreUnavailable" ? `cannot open the store: ${String(error.cause)}` : error.message })),
    Effect.catchAllDefect((defect) => Effect.fail(new Failed({ message: `router stopped: ${String(defect)}` })))
  )

const serveWith = (config: Option.Option<string>): Effect.Effect<void, Failed | Usage> =>
  Option.match(config, { onNone: () => Effect.fail(new Usage({ message: "serve needs --config FILE (or ROUTER_CONFIG)" })), onSome: serve })

const serveCommand = Command.make("serve", { config: configOption }, ({ config }) => serveWith(config)).pipe(Command.withDescription("run the router"))

/** `help`, as `--help`: the whole command line, built by @effect/cli. */
const help = Command.make("help", {}, () => Effect.suspend(() => runCommand(["--help"]))).pipe(Command.withDescription("this overview and every command"))

const root = Command.make("sip-tenant-router", { config: configOption }, ({ config }) => serveWith(config)).pipe(
  Command.withDescription(OVERVIEW),
  Command.withSubcommands([serveCommand, hooks, numbers, deliveries, tenants, unroutable, calls, explain, listen, checkConfig, help])
)

const runCommand = (args: ReadonlyArray<string>): Effect.Effect<void, unknown, CliApp.CliApp.Environment> => Command.run(root, { name: "sip-tenant-router", version: "0.1.0" })(["bun", "main.ts", ...args])

/**
 * The whole command line: succeeds with the exit code (0 done, 1 failed, 2 bad
 * usage). @effect/cli prints a usage error itself; it is captured here, to be
 * printed as one `error: …` with the overview after it.
 */
export const cli = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const usage: Array<string> = []
    const console = yield* Effect.console
    const capturing = { ...console, error: (...parts: ReadonlyArray<unknown>) => Effect.sync(() => void usage.push(parts.join(" "))) }
    return yield* runCommand(args).pipe(
      Effect.withConsole(capturing),
      Effect.as(0),
      Effect.catchAll((error) => {
        if (ValidationError.isValidationError(error) || error instanceof Usage) {
          const message = error instanceof Usage ? error.message : usage.join("\n").trim()
          return Effect.as(Console.error(`error: ${message}\n\n${OVERVIEW}`), 2)
        }
        return Effect.as(error instanceof Failed ? Console.error(error.message) : Effect.void, 1)
      })
    )
  })

/** runMain's default teardown knows only 0 and 1; this one exits with the code the CLI returned. */
export const exitWithCode: Teardown = (exit, onExit) =>
  Exit.isSuccess(exit) && typeof exit.value === "number" ? onExit(exit.value) : defaultTeardown(exit, onExit)
