/** Tenant tokens made through the API: `tokens create | list | revoke`. */
import { Args, Command, Options } from "@effect/cli"
import { Effect } from "effect"
import { TokenId, type TokenView } from "../domain/AdminToken.ts"
import { group, print, withClient } from "./AdminClient.ts"
import { formatTable } from "./Format.ts"
import { argument, connection, given, HostList, option } from "./Inputs.ts"

const formatTokenList = (tokens: ReadonlyArray<TokenView>): string =>
  tokens.length === 0
    ? "no tokens"
    : formatTable(["id", "hosts", "label", "createdAt"], tokens.map((t) => [t.id, t.hosts.join(","), t.label ?? "-", t.createdAt]))

export const tokens = group("tokens").pipe(
  Command.withDescription("tenant tokens made through the API: each sees and changes only its hosts (operator token)"),
  Command.withSubcommands([
    Command.make(
      "create",
      {
        connection,
        hosts: option("hosts", HostList).pipe(Options.withDescription('the hosts and wildcards it may act on, e.g. calls.drsmith.com,"*.citydental.com"')),
        label: Options.text("label").pipe(Options.optional, Options.withDescription("a note for whoever lists the tokens, e.g. the customer's name"))
      },
      withClient((client, input) =>
        Effect.flatMap(client.tokens.create({ payload: { hosts: input.hosts, ...given({ label: input.label }) } }), (created) =>
          print(`${created.token}\ncreated ${created.id} for ${created.hosts.join(",")}${created.label === null ? "" : ` (${created.label})`}; the token is shown this once`)
        )
      )
    ).pipe(Command.withDescription("make a token; it is printed once (first line), and works at once on every instance")),
    Command.make("list", { connection }, withClient((client) => Effect.flatMap(client.tokens.list(), ({ tokens }) => print(formatTokenList(tokens))))).pipe(
      Command.withDescription("the tokens made through the API, oldest first: id, hosts, label (never the tokens)")
    ),
    Command.make("revoke", { connection, id: argument("ID", TokenId).pipe(Args.withDescription("a token id, as list shows it")) },
      withClient((client, input) => Effect.zipRight(client.tokens.revoke({ path: { id: input.id } }), print(`revoked ${input.id}`)))
    ).pipe(Command.withDescription("refuse the token from now on, on every instance"))
  ])
)
