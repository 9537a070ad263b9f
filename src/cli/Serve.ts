/**
 * The router's own start: `serve` for the CLI, and the shortcut main takes
 * when the arguments only ask to run the router, so a start does not build
 * the command line (@effect/cli, and the API's client behind every admin command).
 */
import { Console, Effect } from "effect"
import { statSync } from "node:fs"
import { readConfigFile } from "../AppConfig.ts"
import { Failed } from "./Failures.ts"

/** Runs the router until SIGTERM/SIGINT; a config or store it cannot use stops it with exit 1. */
export const serve = (path: string) =>
  Effect.gen(function* () {
    const { config, text } = yield* readConfigFile(path)
    // Loaded here, not at the top, so admin commands do not pay for the whole server.
    const { runApp } = yield* Effect.promise(() => import("../App.ts"))
    return yield* runApp(config, { configFile: { path, text } })
  }).pipe(
    Effect.mapError((error) => new Failed({ message: error._tag === "StoreUnavailable" ? `cannot open the store: ${String(error.cause)}` : error.message })),
    Effect.catchAllDefect((defect) => Effect.fail(new Failed({ message: `router stopped: ${String(defect)}` })))
  )

/** What the CLI's `--config` accepts as it is: a path that is not there yet (the router then says it cannot read it) or a regular file. */
const acceptedAsIs = (path: string) => !path.startsWith("-") && (statSync(path, { throwIfNoEntry: false })?.isFile() ?? true)

/**
 * The config file when the arguments are only `--config FILE` or
 * `serve --config FILE`, or nothing or `serve` with ROUTER_CONFIG set; else
 * undefined, and the CLI takes them (help, `--config=FILE`, a directory, a
 * blank ROUTER_CONFIG) with its own answers.
 */
export const serveOnlyConfig = (args: ReadonlyArray<string>, routerConfig: string | undefined): string | undefined => {
  const rest = args[0] === "serve" ? args.slice(1) : args
  const path = rest.length === 0 ? routerConfig : rest.length === 2 && rest[0] === "--config" ? rest[1] : undefined
  return path !== undefined && path !== "" && acceptedAsIs(path) ? path : undefined
}

/** The router, ended as the CLI ends `serve`: exit 0, or 1 after the failure's line on stderr. */
export const serveWithExitCode = (path: string): Effect.Effect<number> =>
  serve(path).pipe(
    Effect.as(0),
    Effect.catchAll((error) => Effect.as(Console.error(error.message), 1))
  )
