import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"

/**
 * A real redis-server for tests, on a free loopback port in a temp dir, with
 * the persistence docs/scale-out.md requires (appendonly, fsync on every write), so a
 * restart keeps every acknowledged event.
 */
export interface TestRedis {
  readonly port: number
  /** `redis://127.0.0.1:port/db` */
  readonly url: (db?: number) => string
  /** Stops it (SIGTERM, or SIGKILL to crash it) and starts it again on the same port and data. */
  readonly restart: (signal?: NodeJS.Signals, downMs?: number) => Promise<void>
  readonly stopServer: (signal?: NodeJS.Signals) => Promise<void>
  readonly startServer: () => Promise<void>
  readonly stop: () => Promise<void>
}

export const redisServerPath = Bun.which("redis-server")

/**
 * Whether the Redis tests run here. Under CI they must: a missing redis-server
 * fails the suite instead of skipping it.
 */
export const redisAvailable = (): boolean => {
  if (redisServerPath) return true
  if (process.env.CI === "true") throw new Error("redis-server is not installed, and CI=true requires the Redis tests to run")
  return false
}

const freePort = () => {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  return port
}

/** Whether the server answers PING with PONG: it accepts connections before it has loaded its data, and answers LOADING until then. */
const pong = (port: number) =>
  new Promise<boolean>((resolve) => {
    let answer = ""
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (socket) => void socket.write("PING\r\n"),
        data: (socket, data) => {
          answer += data.toString()
          if (answer.includes("\r\n")) {
            resolve(answer.startsWith("+PONG"))
            socket.end()
          }
        },
        close: () => resolve(false),
        error: () => resolve(false)
      }
    }).catch(() => resolve(false))
  })

const waitForPing = async (port: number, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await pong(port)) return
    await Bun.sleep(25)
  }
  throw new Error(`redis-server on port ${port} did not start`)
}

export const startRedis = async (): Promise<TestRedis> => {
  if (!redisServerPath) throw new Error("redis-server is not installed")
  const dir = mkdtempSync(join(tmpdir(), "router-redis-"))
  const port = freePort()
  let server: Subprocess | undefined
  const startServer = async () => {
    server = Bun.spawn(
      [redisServerPath, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
      { stdout: "ignore", stderr: "inherit" }
    )
    await waitForPing(port)
  }
  const stopServer = async (signal: NodeJS.Signals = "SIGTERM") => {
    server?.kill(signal)
    await server?.exited
    server = undefined
  }
  await startServer()
  return {
    port,
    url: (db = 0) => `redis://127.0.0.1:${port}/${db}`,
    restart: async (signal = "SIGTERM", downMs = 0) => {
      await stopServer(signal)
      await Bun.sleep(downMs)
      await startServer()
    },
    stopServer,
    startServer,
    stop: async () => {
      await stopServer("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
