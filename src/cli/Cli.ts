/**
 * The command line, with @effect/cli: the router itself (`serve`, or just
 * `--config FILE`), the admin API of a running router through a client derived
 * from the API's definition, and `check-config`, which needs no router.
 */
import { Args, type CliApp, Command, Options, ValidationError } from "@effect/cli"
import { Config, Console, Effect, Option } from "effect"
import { loadConfigFile } from "../AppConfig.ts"
import { CallStatus } from "../domain/Call.ts"
import { CallCursorText } from "../domain/CallViews.ts"
import { DeliveryStatus } from "../domain/Delivery.ts"
import { CallDomain, DeliveryId, DeliveryTenant, EventIdFilter, EventType, Limit, RoomName } from "../domain/DeliveryViews.ts"
import { HostPattern, NumberText } from "../domain/Hook.ts"
import { IsoTime } from "../domain/IsoTime.ts"
import { group, print, withClient } from "./AdminClient.ts"
import { backup, reencrypt } from "./BackupCommand.ts"
import { AnsweredNo, Failed, Usage } from "./Failures.ts"
import * as Format from "./Format.ts"
import { hooks, numbers } from "./HookCommands.ts"
import { argument, connection, DEFAULT_ROUTER_URL, deliveryArg, given, hostArg, option } from "./Inputs.ts"
import { listenCommand } from "./Listen.ts"
import { serve } from "./Serve.ts"
import { tokens } from "./TokenCommands.ts"

/** Printed under `--help` and after a usage error. */
export const OVERVIEW = `usage: bun run src/main.ts COMMAND [ARGUMENTS] [OPTIONS]

  --config FILE               run the router (also: serve --config FILE, or set ROUTER_CONFIG)
  hooks list | get HOST | rm HOST | test HOST | rotate-secret HOST | enable HOST
  hooks set HOST --url URL [--secret whsec_...] [--events a,b] [--rate-limit 50/s] [--max-age 30s]
  hooks update HOST [--url URL] [--events a,b] [--rate-limit 50/s] [--max-age 30s] [--clear maxAge,headers]
  numbers list | set NUMBER HOST | rm NUMBER
  deliveries list [--status S] [--tenant HOST] [--limit N] | get ID | retry ID
  deliveries list [--room NAME] [--event-id ID] [--event-type TYPE] [--domain D]
  tenants recover HOST --since ISO
  tokens create --hosts a,b [--label TEXT] | list | revoke ID   tenant tokens, without a restart
  portal-link HOST            a single-use link into the console for a tenant (see /console/)
  unroutable list | domains | replay DOMAIN [--since ISO]
  calls list [--tenant HOST] [--status S] [--number N] [--domain D] [--since ISO] [--until ISO]
  calls show ROOM             a call (by room name or sid) and its timeline
  explain [--x-to-ip VALUE] [--to VALUE] [--number VALUE]   where such a call goes now, and why
  backup --to FILE            a consistent snapshot of the SQLite store, written to a new FILE
  reencrypt                   the store's secrets encrypted again with the first store.encryptionKey
  listen --tenant HOST --forward-to URL   forward a tenant's deliveries to a local app, signed
  check-config FILE           decode FILE exactly as the router would; needs no router

Admin commands talk to a running router: --url (--router-url in hooks set and update, where
--url is the hook's) or ROUTER_URL, default ${DEFAULT_ROUTER_URL}; --token or ROUTER_ADMIN_TOKEN.
COMMAND --help says more. Exit status: 0 done, 1 failed, 2 bad usage.`

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
        number: option("number", NumberText).pipe(Options.optional, Options.withDescription("the caller's or the dialled number, in any spelling (national ones read in the router's defaultCountry)")),
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

const portalLink = Command.make(
  "portal-link",
  { connection, host: hostArg },
  withClient((client, input) =>
    Effect.flatMap(client.tenants.portalLink({ path: { host: input.host } }), (link) =>
      print(`${link.url}\nopens the tenant portal for ${input.host} once, until ${link.expiresAt}`)
    )
  )
).pipe(Command.withDescription("a single-use link (first line) that signs the tenant into the console for HOST; operator token"))

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

const serveWith = (config: Option.Option<string>): Effect.Effect<void, Failed | Usage> =>
  Option.match(config, { onNone: () => Effect.fail(new Usage({ message: "serve needs --config FILE (or ROUTER_CONFIG)" })), onSome: serve })

const serveCommand = Command.make("serve", { config: configOption }, ({ config }) => serveWith(config)).pipe(Command.withDescription("run the router"))

/** `help`, as `--help`: the whole command line, built by @effect/cli. */
const help = Command.make("help", {}, () => Effect.suspend(() => runCommand(["--help"]))).pipe(Command.withDescription("this overview and every command"))

const root = Command.make("sip-tenant-router", { config: configOption }, ({ config }) => serveWith(config)).pipe(
  Command.withDescription(OVERVIEW),
  Command.withSubcommands([serveCommand, hooks, numbers, deliveries, tenants, unroutable, calls, explain, tokens, portalLink, backup, reencrypt, listen, checkConfig, help])
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
