import { expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { buildBinary, untilListening } from "./support/binary.ts"
import { ADMIN_TOKEN, testConfig } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

test("the single binary is also the command line: --help, completions, and admin commands against itself serving", async () => {
  const { dir, binary } = buildBinary("binary-cli")
  const run = (args: ReadonlyArray<string>) => {
    const done = Bun.spawnSync([binary, ...args], { cwd: dir, stdout: "pipe", stderr: "pipe", env: { ...process.env, ROUTER_URL: "", ROUTER_ADMIN_TOKEN: "", ROUTER_CONFIG: "" } })
    return { code: done.exitCode, stdout: done.stdout.toString(), stderr: done.stderr.toString() }
  }

  const help = run(["--help"])
  expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: "" })
  expect(help.stdout).toContain("hooks set HOST --url URL")
  expect(run(["--completions", "bash"]).stdout).toContain("complete -F")
  expect(run(["hooks", "get", "bad..host", "--token", ADMIN_TOKEN]).code).toBe(2)

  const configPath = join(dir, "router.yaml")
  writeFileSync(configPath, Bun.YAML.stringify(testConfig(dir, { hooks: [{ host: "binary.example.com", url: "https://binary.example.com/voice" }] })))
  const server = Bun.spawn([binary, "serve", "--config", configPath], { cwd: dir, stdout: "pipe", stderr: "pipe" })
  try {
    const { port } = await untilListening(server.stdout)
    const listed = run(["hooks", "list", "--url", `http://127.0.0.1:${port}`, "--token", ADMIN_TOKEN])
    expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: "" })
    expect(listed.stdout).toMatch(/^binary\.example\.com +https:\/\/binary\.example\.com\/voice +file +all +- +- +- +no$/m)
  } finally {
    server.kill("SIGTERM")
    expect(await server.exited).toBe(0)
  }
}, 60_000)
