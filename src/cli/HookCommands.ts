/** The hook table's commands: `hooks …` and `numbers …`. */
import { Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { MaxAge, RateLimitSetting, TargetUrl, WebhookSecret } from "../domain/Hook.ts"
import { NumberCreated, type Clearable } from "../domain/HookViews.ts"
import { group, print, withClient } from "./AdminClient.ts"
import { AnsweredNo, Usage } from "./Failures.ts"
import * as Format from "./Format.ts"
import { ClearList, connection, connectionForSet, EventList, given, hostArg, numberArg, option } from "./Inputs.ts"

/** The fields `hooks set` and `hooks update` take besides the URL; `update` sends only those given. */
const hookFields = {
  secret: option("secret", WebhookSecret).pipe(Options.optional, Options.withDescription("whsec_… (without: kept, or generated for a new hook)")),
  events: option("events", EventList).pipe(Options.optional, Options.withDescription("only these events, e.g. participant_joined,room_finished")),
  rateLimit: option("rate-limit", RateLimitSetting).pipe(Options.optional, Options.withDescription("e.g. 50/s, 600/m, 1000/h")),
  maxAge: option("max-age", MaxAge).pipe(Options.optional, Options.withDescription("e.g. 30s, 10m: older events are not sent (they expire)"))
}
const hookUrl = option("url", TargetUrl).pipe(Options.withDescription("where the hook's events are posted (http or https)"))

/** Why `hooks update` has nothing sensible to send, if so. */
const updateProblem = (setting: ReadonlyArray<string>, clearing: ReadonlyArray<string>): string | undefined => {
  const both = clearing.filter((field) => setting.includes(field))
  if (both.length > 0) return `hooks update: ${both.join(", ")} both given and cleared; give one or the other`
  if (setting.length === 0 && clearing.length === 0) return "hooks update needs a change: --url, --secret, --events, --rate-limit, --max-age or --clear"
  return undefined
}

export const hooks = group("hooks").pipe(
  Command.withDescription("the hooks: which tenant URL each host's calls go to"),
  Command.withSubcommands([
    Command.make("list", { connection }, withClient((client) => Effect.flatMap(client.hooks.list(), ({ hooks }) => print(Format.formatHookList(hooks))))).pipe(
      Command.withDescription("every hook: host, url, source, events, rateLimit, maxAge, header names, disabled")
    ),
    Command.make("get", { connection, host: hostArg },
      withClient((client, input) => Effect.flatMap(client.hooks.get({ path: { host: input.host } }), (hook) => print(Format.formatHook(hook))))
    ).pipe(Command.withDescription("one hook")),
    Command.make(
      "set",
      { connection: connectionForSet, host: hostArg, url: hookUrl, ...hookFields },
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
        "create or replace an API hook. The whole hook is replaced: omitted --events/--rate-limit/--max-age are cleared, and so are any headers and auth (the CLI does not set them: use PUT /v1/hooks/{host}); it prints what it cleared. To change only some fields, use hooks update. Without --secret an existing hook keeps its secret and a new one gets a generated secret (shown once); use rotate-secret to roll a secret over"
      )
    ),
    Command.make(
      "update",
      {
        connection: connectionForSet,
        host: hostArg,
        url: hookUrl.pipe(Options.optional),
        ...hookFields,
        clear: option("clear", ClearList).pipe(Options.optional, Options.withDescription("remove these fields, e.g. maxAge,headers (events, rateLimit, maxAge, headers, auth)"))
      },
      ({ connection, host, clear, ...changes }) => {
        const setting = given(changes)
        const clearing = Option.getOrElse(clear, () => [])
        const problem = updateProblem(Object.keys(setting), clearing)
        const cleared: Partial<Record<Clearable, null>> = Object.fromEntries(clearing.map((field) => [field, null]))
        return Effect.zipRight(
          problem === undefined ? Effect.void : Effect.fail(new Usage({ message: problem })),
          withClient((client) =>
            Effect.flatMap(client.hooks.patch({ path: { host }, payload: { ...cleared, ...setting } }), (patched) => print(Format.formatHookUpdate(patched)))
          )({ connection })
        )
      }
    ).pipe(
      Command.withDescription(
        "change only the fields given of an API hook (PATCH /v1/hooks/{host}); the others, its secret, headers and auth included, are kept. --clear removes fields; a new --secret signs alone at once (rotate-secret keeps the old one signing for an overlap)"
      )
    ),
    Command.make("enable", { connection, host: hostArg },
      withClient((client, input) => Effect.flatMap(client.hooks.enable({ path: { host: input.host } }), (hook) => print(Format.formatEnabled(hook))))
    ).pipe(Command.withDescription("enable a hook its failures disabled: new deliveries flow again (tenants recover resends those that failed meanwhile)")),
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

export const numbers = group("numbers").pipe(
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
