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

/** Reads a started router's stdout up to its `listening` line: its port, and the JSON lines before it (start-up warnings). */
export const untilListening = async (stdout: ReadableStream<Uint8Array>, deadlineMs = 15_000) => {
  const reader = stdout.getReader()
  const before: Array<Record<string, unknown>> = []
  const deadline = Date.now() + deadlineMs
  let buffer = ""
  try {
    while (Date.now() < deadline) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += new TextDecoder().decode(value)
      let newline: number
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>
        buffer = buffer.slice(newline + 1)
        if (line.msg === "listening") return { port: line.port as number, before }
        before.push(line)
      }
    }
  } finally {
    reader.releaseLock()
  }
  throw new Error(`no listening line; printed before: ${JSON.stringify(before)}`)
}
