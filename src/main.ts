import { BunRuntime } from "@effect/platform-bun"
import { Console, Effect } from "effect"
import { runApp } from "./App.ts"
import { loadConfigFile } from "./AppConfig.ts"

const USAGE = "usage: bun run src/main.ts --config FILE   (or set ROUTER_CONFIG)"

const configPath = (args: ReadonlyArray<string>): string | undefined => {
  const flag = args.indexOf("--config")
  return flag === -1 ? process.env.ROUTER_CONFIG : args[flag + 1]
}

const main = Effect.gen(function* () {
  const path = configPath(Bun.argv.slice(2))
  if (!path) return yield* Effect.fail(USAGE)
  const config = yield* loadConfigFile(path)
  return yield* runApp(config, { configPath: path })
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

BunRuntime.runMain(main, { disableErrorReporting: true, disablePrettyLogger: true })
