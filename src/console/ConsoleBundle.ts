import { readFileSync } from "node:fs"
import { join } from "node:path"

/**
 * Builds the console's browser bundle. Imported as a macro (ConsoleAssets.ts),
 * so it runs when Bun transpiles that file: on the first console request under
 * `bun run`, and once at `bun build --compile`, which puts the result into the
 * binary. A macro cannot call `Bun.build` (the bundler would wait on itself),
 * so it runs Bun's CLI.
 */
export const bundleConsole = (): { readonly script: string; readonly style: string } => {
  const app = join(import.meta.dir, "app")
  const built = Bun.spawnSync([process.execPath, "build", join(app, "main.tsx"), "--target=browser", "--minify"], { cwd: app, stderr: "pipe" })
  if (!built.success) throw new Error(`the console did not build: ${built.stderr.toString()}`)
  return { script: built.stdout.toString(), style: readFileSync(join(app, "console.css"), "utf8") }
}
