/**
 * GET /docs renders the API reference in a real headless Chromium, from the
 * router alone: the hooks operations are on the page, and no request the page
 * makes leaves 127.0.0.1.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chromium, type BrowserContext } from "playwright-core"
import { startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const CHROMIUM = "/usr/bin/chromium"
// Without Chromium a local run skips this; under CI=true it fails instead (.ci/run installs it).
const SKIP = !existsSync(CHROMIUM) && process.env.CI !== "true"

let router: RunningRouter
let browser: BrowserContext
const profile = mkdtempSync(join(tmpdir(), "docs-chromium-"))

beforeAll(async () => {
  if (SKIP) return
  router = await startRouter()
  // A fresh profile: nothing cached or configured from an earlier run.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })
}, 30_000)

afterAll(async () => {
  await browser?.close()
  await router?.stop()
  rmSync(profile, { recursive: true, force: true })
})

test.skipIf(SKIP)("chromium is installed (required in CI)", () => {
  expect(existsSync(CHROMIUM)).toBe(true)
})

test.skipIf(SKIP)(
  "/docs shows the hooks operations, with every request the page makes going to the router",
  async () => {
    const page = await browser.newPage()
    const requested: Array<string> = []
    page.on("request", (request) => void requested.push(request.url()))
    const response = await page.goto(`${router.url}/docs`, { waitUntil: "load" })
    expect(response?.status()).toBe(200)
    // The sidebar renders before the reference itself: wait for both before reading the page.
    await page.getByText("Create or replace an API hook").first().waitFor({ timeout: 20_000 })
    await page.getByText("sip-tenant-router admin API").first().waitFor({ timeout: 20_000 })
    const text = await page.locator("body").innerText()
    for (const summary of ["List hooks", "Get a hook", "Remove an API hook", "Rotate a hook's secret", "Send one signed router.test event"]) {
      expect(text).toContain(summary)
    }
    expect(text).toContain("sip-tenant-router admin API")
    // Let the page settle, so late requests (fonts, telemetry, a CDN) would be seen too.
    await page.waitForTimeout(1_000)
    const elsewhere = requested.filter((url) => !/^(data:|blob:|about:)/.test(url) && new URL(url).hostname !== "127.0.0.1")
    expect(elsewhere).toEqual([])
    expect(requested.length).toBeGreaterThan(0)
    await page.close()
  },
  60_000
)
