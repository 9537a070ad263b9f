import { expect } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import packageJson from "../../package.json"

const ROOT = join(import.meta.dir, "..", "..")
const OUTFILE = "dist/sip-tenant-router"

/**
 * `bun build --compile` exactly as package.json's build script runs it (its
 * flags, and the store's writer thread as a second entry point), into a fresh
 * folder instead of dist/.
 */
export const buildBinary = (label: string) => {
  const dir = mkdtempSync(join(tmpdir(), `router-${label}-`))
  const binary = join(dir, "sip-tenant-router")
  const [bun, ...args] = packageJson.scripts.build.split(" ")
  expect(bun).toBe("bun")
  expect(args).toContain(OUTFILE)
  const build = Bun.spawnSync([process.execPath, ...args.map((arg) => (arg === OUTFILE ? binary : arg))], { cwd: ROOT, stderr: "pipe", stdout: "pipe" })
  expect(build.exitCode, build.stderr.toString()).toBe(0)
  return { dir, binary }
}
