import * as BunContext from "@effect/platform-bun/BunContext"
import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import { Effect } from "effect"
import { cli, exitWithCode } from "./cli/Cli.ts"

// One entry point: `--config FILE` (or `serve`, or ROUTER_CONFIG) runs the router; every other command is the CLI's.
// The modules themselves, not the package's index: that would load its cluster, RPC, SQL and workflow modules too.
BunRuntime.runMain(cli(Bun.argv.slice(2)).pipe(Effect.provide(BunContext.layer)), {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: exitWithCode
})
