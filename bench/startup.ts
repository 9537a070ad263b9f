/**
 * Start-up and idle memory, on a minimal config (test/support/router.ts
 * testConfig: no hooks) with an empty store each time:
 * - the compiled binary, built once with the project's own `bun run build`
 *   (its output, dist/, is ignored by git, so the work tree stays clean);
 * - `bun start`'s way, `bun run src/main.ts`, for reference;
 * - an empty Bun process: bench/baseline-server.ts, a bare `Bun.serve` that
 *   answers /readyz (as any path) with 200.
 * Each is launched LAUNCHES times, interleaved so the machine's noise falls on
 * all alike: spawn to the first 200 of /readyz (polled every POLL_MS), then
 * resident memory IDLE_MS later. Medians. Every wait has a deadline.
 */
import { rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { testConfig } from "../test/support/router.ts"
import { percentile, readyAfter, residentBytes, spawnRouter, spawnServer, type Spawned } from "./harness.ts"

export const LAUNCHES = 5
export const POLL_MS = 2
export const IDLE_MS = 2_000
const READY_DEADLINE_MS = 30_000
const BUILD_DEADLINE_MS = 300_000
const ROOT = join(import.meta.dir, "..")
const BINARY = join(ROOT, "dist", "sip-tenant-router")

export interface Launches {
  /** Medians over the launches. */
  readonly readyMs: number
  readonly idleRssBytes: number
  readonly each: ReadonlyArray<{ readonly readyMs: number; readonly idleRssBytes: number }>
}

export interface StartupResult {
  /** Undefined when the build failed or the binary would not start, and why in `binaryUnavailable`. */
  readonly binary: Launches | undefined
  readonly binaryUnavailable?: string
  readonly bunStart: Launches
  readonly emptyBun: Launches
}

/** `bun run build` (whatever the script says today); the binary's path, or why there is none. */
const build = async (): Promise<{ binary: string } | { failed: string }> => {
  const startedAt = Date.now()
  const proc = Bun.spawn(["bun", "run", "build"], { cwd: ROOT, stdout: "ignore", stderr: "pipe" })
  const tooLate = setTimeout(() => proc.kill("SIGKILL"), BUILD_DEADLINE_MS)
  const [code, output] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
  clearTimeout(tooLate)
  if (code !== 0) {
    console.error(output)
    return { failed: `bun run build exited with ${code ?? proc.signalCode}` }
  }
  // An older binary left in dist/ must not pass for this build's (a second's slack for coarse file times).
  const written = (statSync(BINARY, { throwIfNoEntry: false })?.mtimeMs ?? 0) >= startedAt - 1_000
  return written ? { binary: BINARY } : { failed: "bun run build wrote no dist/sip-tenant-router" }
}

/** One launch: spawn to /readyz 200, then resident memory once idle; the process stopped and its folder removed. */
const launch = async (start: () => Promise<Spawned & { readonly dir?: string }>) => {
  const target = await start()
  try {
    const readyMs = await readyAfter(target, READY_DEADLINE_MS, POLL_MS)
    await Bun.sleep(IDLE_MS)
    return { readyMs, idleRssBytes: await residentBytes(target.pid) }
  } finally {
    await target.stop()
    if (target.dir) rmSync(target.dir, { recursive: true, force: true })
  }
}

const median = (values: ReadonlyArray<number>) => percentile(Float64Array.from(values).sort(), 0.5)
const summary = (each: ReadonlyArray<{ readyMs: number; idleRssBytes: number }>): Launches => ({
  readyMs: median(each.map((l) => l.readyMs)),
  idleRssBytes: median(each.map((l) => l.idleRssBytes)),
  each
})

export const startupRun = async (): Promise<StartupResult> => {
  const built = await build()
  let binaryUnavailable = "failed" in built ? built.failed : undefined
  const minimal = (dir: string) => testConfig(dir)
  const binary: Array<{ readyMs: number; idleRssBytes: number }> = []
  const bunStart: typeof binary = []
  const emptyBun: typeof binary = []
  for (let i = 0; i < LAUNCHES; i++) {
    if ("binary" in built && binaryUnavailable === undefined) {
      try {
        binary.push(await launch(() => spawnRouter(minimal, { binary: built.binary })))
      } catch (error) {
        console.error(error)
        binaryUnavailable = "the binary did not start"
      }
    }
    bunStart.push(await launch(() => spawnRouter(minimal)))
    emptyBun.push(await launch(() => spawnServer("baseline-server.ts")))
  }
  return {
    binary: binaryUnavailable === undefined ? summary(binary) : undefined,
    ...(binaryUnavailable === undefined ? {} : { binaryUnavailable }),
    bunStart: summary(bunStart),
    emptyBun: summary(emptyBun)
  }
}
