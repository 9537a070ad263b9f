/**
 * The tenant portal, in a real headless Chromium against the real router: a
 * portal link made with `POST /v1/tenants/{host}/portal-links` signs the
 * tenant in, and the console then shows that tenant's calls, deliveries,
 * hooks and live changes only, without Numbers or Unroutable. A used link and
 * an expired one sign nobody in and say so in an alert.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import type { Browser } from "playwright-core"
import { SKIP, WAIT, deliveryOf, expectOnlyRouter, heading, launch, openPage, placeCall, putHook, startTenants, temporaryDir, uniqueRoom } from "./support/console.ts"
import { startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const MINE = "mine.portal.example"
const THEIRS = "theirs.portal.example"

const portalLink = async (router: RunningRouter, host: string): Promise<string> => {
  const response = await router.admin("POST", `/v1/tenants/${host}/portal-links`)
  expect(response.status).toBe(201)
  const { url } = (await response.json()) as { url: string }
  expect(url).toContain("/console/portal#")
  return url
}

describe.skipIf(SKIP)("the tenant portal", () => {
  const { dir, remove } = temporaryDir("tenant")
  const tenants = startTenants()
  const rooms = { mine: uniqueRoom("mine"), theirs: uniqueRoom("theirs") }
  let router: RunningRouter
  let expiring: RunningRouter
  let browser: Browser
  const requested: Array<string> = []

  const openLink = async (url: string) => {
    const opened = await openPage(browser)
    opened.page.on("request", (request) => void requested.push(request.url()))
    await opened.page.goto(url)
    return opened
  }

  beforeAll(async () => {
    router = await startRouter({}, dir)
    // Its links expire before anyone can open them.
    expiring = await startRouter({ admin: { portalLinkTtl: "50ms" } })
    await putHook(router, MINE, `${tenants.good.url}/voice`)
    await putHook(expiring, MINE, `${tenants.good.url}/voice`)
    await putHook(router, THEIRS, `${tenants.broken.url}/voice`)
    await placeCall(router, rooms.mine, MINE)
    await placeCall(router, rooms.theirs, THEIRS)
    await deliveryOf(router, MINE, "delivered")
    await deliveryOf(router, THEIRS, "failed")
    browser = await launch()
  }, 40_000)

  afterAll(async () => {
    await browser?.close()
    await router?.stop()
    await expiring?.stop()
    tenants.stop()
    remove()
  })

  test("a portal link signs the tenant in to its own calls, deliveries, hooks and live changes; once only; sign-out ends it", async () => {
    const url = await portalLink(router, MINE)
    const { context, page } = await openLink(url)
    await heading(page, "Calls")
    // The secret is gone from the address bar (and so from history).
    expect(page.url()).not.toContain("#")
    const nav = page.getByRole("navigation")
    expect(await nav.getByRole("link").allInnerTexts()).toEqual(["Overview", "Calls", "Deliveries", "Hooks", "Live"])

    await page.getByRole("link", { name: rooms.mine }).waitFor(WAIT)
    expect(await page.getByRole("link", { name: rooms.theirs }).count()).toBe(0)

    await page.getByRole("link", { name: rooms.mine }).click()
    await heading(page, new RegExp(rooms.mine))
    await page.getByRole("region", { name: "Timeline" }).getByText("HTTP 200").waitFor(WAIT)

    await nav.getByRole("link", { name: "Overview", exact: true }).click()
    await heading(page, "Overview")
    await page.getByRole("main").getByRole("link", { name: MINE }).waitFor(WAIT)
    expect(await page.getByRole("main").innerText()).not.toContain(THEIRS)

    await nav.getByRole("link", { name: "Deliveries", exact: true }).click()
    await heading(page, "Deliveries")
    await page.getByRole("row").filter({ hasText: rooms.mine }).waitFor(WAIT)
    expect(await page.getByRole("main").innerText()).not.toContain(THEIRS)

    await nav.getByRole("link", { name: "Hooks", exact: true }).click()
    await heading(page, "Hooks")
    await page.getByRole("table").getByRole("link", { name: MINE }).waitFor(WAIT)
    expect(await page.getByRole("main").innerText()).not.toContain(THEIRS)
    await page.getByRole("table").getByRole("link", { name: MINE }).click()
    await heading(page, new RegExp(MINE.replaceAll(".", "\\.")))
    await page.getByRole("button", { name: "Send test event" }).click()
    await page.getByRole("status").filter({ hasText: "delivered: HTTP 200" }).waitFor(WAIT)
    // Portal links are the operators' to hand out.
    expect(await page.getByRole("button", { name: "Create portal link" }).count()).toBe(0)

    await nav.getByRole("link", { name: "Live", exact: true }).click()
    await heading(page, "Live")
    await page.getByText("Connected to the live stream").waitFor(WAIT)
    const live = uniqueRoom("live-mine")
    const hidden = uniqueRoom("live-theirs")
    await placeCall(router, hidden, THEIRS)
    await placeCall(router, live, MINE)
    await page.getByRole("link", { name: live }).first().waitFor(WAIT)
    expect(await page.getByRole("link", { name: hidden }).count()).toBe(0)

    // Another tenant's call and the operators' pages are not there for it.
    await page.goto(`${router.url}/console/calls/${rooms.theirs}`)
    await page.getByRole("alert").waitFor(WAIT)
    await page.goto(`${router.url}/console/numbers`)
    await heading(page, "Not found")

    // The link worked once: opened again, it signs nobody in.
    const again = await openLink(url)
    await again.page.getByRole("alert").waitFor(WAIT)
    expect(await again.page.getByRole("navigation").count()).toBe(0)
    await again.context.close()

    await page.getByRole("button", { name: "Sign out" }).click()
    await page.getByLabel("Admin token").waitFor(WAIT)
    expect((await page.request.get(`${router.url}/v1/sessions/current`)).status()).toBe(401)
    await context.close()
  })

  test("an expired portal link signs nobody in and says so", async () => {
    const url = await portalLink(expiring, MINE)
    await Bun.sleep(200)
    const { context, page } = await openLink(url)
    await heading(page, "Tenant portal")
    const alert = page.getByRole("alert")
    await alert.waitFor(WAIT)
    expect(await alert.innerText()).toMatch(/expired|used/i)
    expect(await page.getByRole("navigation").count()).toBe(0)
    expect((await page.request.get(`${expiring.url}/v1/sessions/current`)).status()).toBe(401)
    await context.close()
  })

  test("no request of the portal's pages left the router's origin", () => {
    expectOnlyRouter(requested, router, expiring)
  })
})
