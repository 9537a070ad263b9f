import { BunRuntime } from "@effect/platform-bun"
import { Console, Effect } from "effect"
import { readConfigFile } from "./AppConfig.ts"
import { cli, exitWithCode, isCliInvocation } from "./cli/Cli.ts"

const USAGE = "usage: bun run src/main.ts --config FILE   (or set ROUTER_CONFIG); bun run src/main.ts help for the admin commands"

const configPath = (args: ReadonlyArray<string>): string | undefined => {
  const flag = args.indexOf("--config")
  return flag === -1 ? process.env.ROUTER_CONFIG : args[flag + 1]
}

const args = Bun.argv.slice(2)

const main = Effect.gen(function* () {
  const path = configPath(args)
  if (!path) return yield* Effect.fail(USAGE)
  const { config, text } = yield* readConfigFile(path)
  // Loaded here, not at the top, so admin commands do not pay for the whole server.
  const { runApp } = yield* Effect.promise(() => import("./App.ts"))
  return yield* runApp(config, { configFile: { path, text } })
}).pipe(
  Effect.tapError((error) =>
    Console.error(
      typeof error === "string"
        ? error
        : error._tag === "StoreUnavailable"
          ? `cannot open the store: ${String(error.cause)}`
          : error.message
    )
  ),
  Effect.tapDefect((defect) => Console.error(`router stopped: ${String(defect)}`))
)

if (isCliInvocation(args)) {
  BunRuntime.runMain(cli(args, process.env), { disableErrorReporting: true, disablePrettyLogger: true, teardown: exitWithCode })
} else {
  BunRuntime.runMain(main, { disableErrorReporting: true, disablePrettyLogger: true })
}
