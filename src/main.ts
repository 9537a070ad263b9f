import { BunContext, BunRuntime } from "@effect/platform-bun"
import { Effect } from "effect"
import { cli, exitWithCode } from "./cli/Cli.ts"

// One entry point: `--config FILE` (or `serve`, or ROUTER_CONFIG) runs the router; every other command is the CLI's.
BunRuntime.runMain(cli(Bun.argv.slice(2)).pipe(Effect.provide(BunContext.layer)), {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: exitWithCode
})
