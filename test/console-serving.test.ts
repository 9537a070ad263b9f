/**
 * How the router serves the console, over plain HTTP: one page for every path
 * under /console/, its script and style under content-hashed names, a policy
 * that lets the page load nothing from elsewhere and run no inline script,
 * framing only by the origins the operator lists, and `admin.console: false`.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ADMIN_TOKEN, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const MAIN = join(import.meta.dir, "..", "src", "main.ts")

const directives = (policy: string | null) =>
  new Map((policy ?? "").split(";").map((directive) => {
    const [name, ...values] = directive.trim().split(/\s+/)
    return [name!, values] as const
  }))

describe("the console, served", () => {
  let router: RunningRouter
  beforeAll(async () => {
    router = await startRouter()
  })
  afterAll(() => router.stop())

  test("every path under /console/ is the same page, which runs only the router's own script", async () => {
    const pages = await Promise.all(["/console", "/console/", "/console/calls?status=ended&q=%2B1555", "/console/calls/room-1", "/console/hooks/calls.drsmith.com"].map((path) => fetch(`${router.url}${path}`)))
    const texts = await Promise.all(pages.map((page) => page.text()))
    for (const page of pages) {
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
      expect(page.headers.get("cache-control")).toBe("no-store")
      expect(page.headers.get("x-content-type-options")).toBe("nosniff")
      expect(page.headers.get("referrer-policy")).toBe("no-referrer")
    }
    expect(new Set(texts).size).toBe(1)
    const html = texts[0]!
    // Every script has a source on this origin; nothing inline, nothing from elsewhere.
    expect([...html.matchAll(/<script\b([^>]*)>([^<]*)<\/script>/g)].map(([, attributes, body]) => [/src="\/console\//.test(attributes!), body])).toEqual([[true, ""]])
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
    expect(html).not.toContain("style=")

    const policy = directives(pages[0]!.headers.get("content-security-policy"))
    expect(policy.get("default-src")).toEqual(["'self'"])
    expect(policy.get("script-src")).toEqual(["'self'"])
    expect(policy.get("style-src")).toEqual(["'self'"])
    expect(policy.get("connect-src")).toEqual(["'self'"])
    expect(policy.get("frame-ancestors")).toEqual(["'none'"])
    expect(policy.get("base-uri")).toEqual(["'none'"])
  })

  test("the script and style are under content-hashed names, cached for good; any other asset is a JSON 404", async () => {
    const html = await (await fetch(`${router.url}/console/`)).text()
    const script = /src="(\/console\/assets\/app-[a-z0-9]+\.js)"/.exec(html)![1]!
    const style = /href="(\/console\/assets\/app-[a-z0-9]+\.css)"/.exec(html)![1]!
    for (const [path, type] of [[script, "text/javascript; charset=utf-8"], [style, "text/css; charset=utf-8"]] as const) {
      const asset = await fetch(`${router.url}${path}`)
      expect(asset.status).toBe(200)
      expect(asset.headers.get("content-type")).toBe(type)
      expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable")
      expect((await asset.text()).length).toBeGreaterThan(0)
    }
    const stale = await fetch(`${router.url}/console/assets/app-0000.js`)
    expect(stale.status).toBe(404)
    expect(await stale.json()).toEqual({ error: { code: "not_found", message: "no such console asset" } })
  })
})

describe("configured", () => {
  test("admin.portalFrameAncestors lets the operator's product frame the portal, and nobody else", async () => {
    const router = await startRouter({ admin: { tokens: [ADMIN_TOKEN], portalFrameAncestors: ["https://app.example.com", "https://*.example.net"] } })
    try {
      const page = await fetch(`${router.url}/console/`)
      expect(directives(page.headers.get("content-security-policy")).get("frame-ancestors")).toEqual(["https://app.example.com", "https://*.example.net"])
    } finally {
      await router.stop()
    }
  })

  test("an entry that is not an origin is refused at start, naming the key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "console-config-"))
    try {
      const configPath = join(dir, "router.yaml")
      writeFileSync(configPath, Bun.YAML.stringify(testConfig(dir, { admin: { tokens: [ADMIN_TOKEN], portalFrameAncestors: ["https://a.example; script-src *"] } })))
      const checked = Bun.spawnSync(["bun", "run", MAIN, "check-config", configPath], { stdout: "pipe", stderr: "pipe" })
      expect(checked.exitCode).not.toBe(0)
      expect(checked.stderr.toString() + checked.stdout.toString()).toContain("admin.portalFrameAncestors.0")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test("admin.console: false: /console/ is a JSON 404, and the API still takes sessions", async () => {
    const router = await startRouter({ admin: { tokens: [ADMIN_TOKEN], console: false } })
    try {
      const page = await fetch(`${router.url}/console/`)
      expect(page.status).toBe(404)
      expect(await page.json()).toEqual({ error: { code: "not_found", message: "no such endpoint" } })
      const signedIn = await fetch(`${router.url}/v1/sessions`, { method: "POST", body: JSON.stringify({ token: ADMIN_TOKEN }) })
      expect(signedIn.status).toBe(201)
    } finally {
      await router.stop()
    }
  })
})
