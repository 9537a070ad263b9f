import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import { defaultTeardown, type Teardown } from "@effect/platform/Runtime"
import { Effect, Exit } from "effect"
import { serveOnlyConfig, serveWithExitCode } from "./cli/Serve.ts"

/** runMain's default teardown knows only 0 and 1; this one exits with the code the CLI returned. */
const exitWithCode: Teardown = (exit, onExit) => (Exit.isSuccess(exit) && typeof exit.value === "number" ? onExit(exit.value) : defaultTeardown(exit, onExit))

/** Every command but the router's own, with the platform the CLI runs on (files, terminal), loaded only for them. */
const commandLine = (args: ReadonlyArray<string>) =>
  Effect.promise(() => Promise.all([import("./cli/Cli.ts"), import("@effect/platform-bun/BunContext")])).pipe(
    Effect.flatMap(([{ cli }, BunContext]) => Effect.provide(cli(args), BunContext.layer))
  )

// One entry point: `--config FILE` (or `serve`, or ROUTER_CONFIG) runs the router; every other command is the CLI's.
// Arguments that only run the router skip building the command line, which a start would otherwise pay for.
// The modules themselves, not @effect/platform-bun's index: that would load its cluster, RPC, SQL and workflow modules too.
const args = Bun.argv.slice(2)
const configPath = serveOnlyConfig(args, process.env.ROUTER_CONFIG)
BunRuntime.runMain(configPath === undefined ? commandLine(args) : serveWithExitCode(configPath), {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: exitWithCode
})
