import { expect } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const ROOT = join(import.meta.dir, "..", "..")

/** `bun build --compile` as package.json's build script runs it (the store's writer thread is a second entry point), into a fresh folder. */
export const buildBinary = (label: string) => {
  const dir = mkdtempSync(join(tmpdir(), `router-${label}-`))
  const binary = join(dir, "sip-tenant-router")
  const build = Bun.spawnSync(["bun", "build", join(ROOT, "src/main.ts"), join(ROOT, "src/store/sqlite/StoreWorker.ts"), "--compile", "--minify", "--outfile", binary], {
    stderr: "pipe",
    stdout: "pipe"
  })
  expect(build.exitCode, build.stderr.toString()).toBe(0)
  return { dir, binary }
}
