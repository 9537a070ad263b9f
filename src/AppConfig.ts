import { Context, Effect, Layer } from "effect"
import { parseConfigText, type ConfigEnv, type RouterConfig } from "./domain/Config.ts"
import { ConfigError } from "./domain/Errors.ts"

/** The decoded configuration, provided once at start-up. */
export class AppConfig extends Context.Tag("AppConfig")<AppConfig, RouterConfig>() {
  static readonly layer = (config: RouterConfig) => Layer.succeed(AppConfig, config)
}

/** Reads and decodes a config file, with env overrides applied; the text is kept so a watcher need not decode it again. */
export const readConfigFile = (path: string, env: ConfigEnv = process.env): Effect.Effect<{ config: RouterConfig; text: string }, ConfigError> =>
  Effect.tryPromise({
    try: () => Bun.file(path).text(),
    catch: (error) => new ConfigError({ key: "(file)", problem: `cannot read ${path}: ${(error as Error).message}` })
  }).pipe(Effect.flatMap((text) => Effect.map(parseConfigText(text, env), (config) => ({ config, text }))))

/** Reads and decodes a config file, with env overrides applied. */
export const loadConfigFile = (path: string, env: ConfigEnv = process.env): Effect.Effect<RouterConfig, ConfigError> =>
  Effect.map(readConfigFile(path, env), ({ config }) => config)
