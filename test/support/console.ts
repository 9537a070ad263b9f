import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expect } from "bun:test"
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core"
import { sipParticipantEvent } from "./livekit.ts"
import { startReceiver, startScriptedEndpoint } from "./receiver.ts"
import { DEFAULT_SECRET, eventually, type RunningRouter } from "./router.ts"

/** Helpers for the console's browser tests: Chromium, signing in, and data made through the API first. */

export const CHROMIUM = "/usr/bin/chromium"
// Without Chromium a local run skips; under CI=true it fails instead (.ci/run installs it).
export const SKIP = !existsSync(CHROMIUM) && process.env.CI !== "true"

/** How long one wait for something on a page may take. */
export const WAIT = { timeout: 10_000 }

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

export const launch = () => chromium.launch({ executablePath: CHROMIUM, args: ARGS })

/**
 * A fresh context (no cookies) and page that records every request it makes,
 * so a test can check that nothing leaves the router's origin.
 */
export const openPage = async (browser: Browser, options: { colorScheme?: "light" | "dark" } = {}) => {
  const context: BrowserContext = await browser.newContext({ colorScheme: options.colorScheme ?? "light" })
  const page: Page = await context.newPage()
  const requested: Array<string> = []
  page.on("request", (request) => void requested.push(request.url()))
  return { context, page, requested }
}

/** Every request went to the router, or one of them (data:, blob: and about: stay in the page). */
export const expectOnlyRouter = (requested: ReadonlyArray<string>, ...routers: ReadonlyArray<RunningRouter>) => {
  const origins = routers.map((router) => new URL(router.url).origin)
  const elsewhere = requested.filter((url) => !/^(data:|blob:|about:)/.test(url) && !origins.includes(new URL(url).origin))
  expect(elsewhere).toEqual([])
  expect(requested.length).toBeGreaterThan(0)
}

/** Signs in through the form, as an operator would, and waits for the page's navigation. */
export const signIn = async (page: Page, router: RunningRouter, token: string, path = "/console/") => {
  await page.goto(router.url + path)
  await page.getByLabel("Admin token").fill(token, WAIT)
  await page.getByRole("button", { name: "Sign in" }).click(WAIT)
  await page.getByRole("navigation").waitFor(WAIT)
}

export const heading = (page: Page, name: string | RegExp) => page.getByRole("heading", { level: 1, name }).waitFor(WAIT)

export const temporaryDir = (label: string) => {
  const dir = mkdtempSync(join(tmpdir(), `console-${label}-`))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * Tenants' endpoints for the console's data: one that answers 200, one that
 * always answers 500 (its deliveries end `failed` after the test config's
 * three quick attempts).
 */
export const startTenants = () => {
  const good = startReceiver(DEFAULT_SECRET)
  const broken = startScriptedEndpoint(DEFAULT_SECRET, () => 500)
  return { good, broken, stop: () => (good.stop(), broken.stop()) }
}

let rooms = 0
export const uniqueRoom = (label: string) => `call-${label}-${Date.now().toString(36)}-${++rooms}`

/** A SIP caller joining `room` through `domain`, as LiveKit signs it. */
export const placeCall = async (router: RunningRouter, room: string, domain: string) => {
  const response = await router.post(sipParticipantEvent("participant_joined", { room, xToIp: domain }))
  expect(response.status).toBe(200)
}

/** Puts an API hook and checks the router took it. */
export const putHook = async (router: RunningRouter, host: string, url: string) => {
  const response = await router.admin("PUT", `/v1/hooks/${host}`, { url, events: ["*"] })
  expect([200, 201]).toContain(response.status)
}

/** Waits until the API lists a delivery of `tenant` with `status` (in `room`, if given), and returns it. */
export const deliveryOf = async (router: RunningRouter, tenant: string, status: string, room?: string) => {
  let found: any
  await eventually(
    async () => {
      const page: any = await (await router.admin("GET", `/v1/deliveries?tenant=${tenant}&status=${status}${room ? `&room=${room}` : ""}`)).json()
      found = page.items?.[0]
      return found !== undefined
    },
    15_000,
    `a ${status} delivery of ${tenant}`
  )
  return found
}
