/**
 * The console, for an operator, in a real headless Chromium against the real
 * router: signing in with the admin token, one journey per page on data made
 * through the API first (hooks, calls signed as LiveKit signs them, a failed
 * delivery), and sign-out. Pages are driven by role and label, as a user of a
 * screen reader would; no request any page makes leaves the router's origin.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import type { Browser, Page } from "playwright-core"
import {
  SKIP, WAIT, deliveryOf, expectOnlyRouter, heading, launch, openPage, placeCall, putHook, signIn, startTenants, temporaryDir, uniqueRoom
} from "./support/console.ts"
import { ADMIN_TOKEN, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const GOOD = "good.console.example"
const BROKEN = "broken.console.example"
const DOOMED = "doomed.console.example"
const NOBODY = "nobody.console.example"

describe.skipIf(SKIP)("the console for an operator", () => {
  const { dir, remove } = temporaryDir("operator")
  const tenants = startTenants()
  // `listed` is the Deliveries page's own failed call: the Call page's test retries `broken`'s delivery.
  const rooms = { good: uniqueRoom("good"), broken: uniqueRoom("broken"), listed: uniqueRoom("listed"), nobody: uniqueRoom("nobody") }
  let router: RunningRouter
  let browser: Browser
  let failed: { id: number; eventId: string; attempts: number }
  // Every request of every page, checked in the last test.
  const requested: Array<string> = []

  const signedIn = async (path: string) => {
    const opened = await openPage(browser)
    opened.page.on("request", (request) => void requested.push(request.url()))
    await signIn(opened.page, router, ADMIN_TOKEN, path)
    return opened
  }
  const rowWith = (page: Page, text: string) => page.getByRole("row").filter({ hasText: text })

  beforeAll(async () => {
    // disableAfter 1s: the doomed hook is disabled by its second failing call; the circuit never opens.
    router = await startRouter({ delivery: { timeout: "1s", maxAttempts: 3, initialBackoff: "50ms", maxBackoff: "200ms", circuitBreaker: { failureThreshold: 1000 }, disableAfter: "1s" } }, dir)
    await putHook(router, GOOD, `${tenants.good.url}/voice`)
    await putHook(router, BROKEN, `${tenants.broken.url}/voice`)
    await placeCall(router, rooms.good, GOOD)
    await placeCall(router, rooms.broken, BROKEN)
    await placeCall(router, rooms.listed, BROKEN)
    await placeCall(router, rooms.nobody, NOBODY)
    failed = await deliveryOf(router, BROKEN, "failed", rooms.listed)
    await deliveryOf(router, BROKEN, "failed", rooms.broken)
    await deliveryOf(router, GOOD, "delivered")
    browser = await launch()
  }, 40_000)

  afterAll(async () => {
    await browser?.close()
    await router?.stop()
    tenants.stop()
    remove()
  })

  test("a refused token shows an alert; the admin token signs in on the page asked for; sign-out ends the session", async () => {
    const { context, page } = await openPage(browser)
    page.on("request", (request) => void requested.push(request.url()))
    await page.goto(`${router.url}/console/calls`)
    await heading(page, "Sign in")
    await page.getByLabel("Admin token").fill("not-a-token-the-router-knows")
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.getByRole("alert").waitFor(WAIT)
    expect(await page.getByRole("alert").innerText()).toContain("refused")

    await page.getByLabel("Admin token").fill(ADMIN_TOKEN)
    await page.getByRole("button", { name: "Sign in" }).click()
    await heading(page, "Calls")
    const nav = page.getByRole("navigation")
    expect(await nav.count()).toBe(1)
    expect(await nav.getByRole("link").allInnerTexts()).toEqual(["Overview", "Calls", "Deliveries", "Hooks", "Numbers", "Unroutable", "Live"])
    // The token became an HttpOnly cookie: nothing of it is readable from the page.
    expect(await page.evaluate<string>("document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")).not.toContain(ADMIN_TOKEN)

    await page.getByRole("button", { name: "Sign out" }).click()
    await page.getByLabel("Admin token").waitFor(WAIT)
    // Ended on the server: a reload shows the sign-in form again.
    await page.reload()
    await heading(page, "Sign in")
    expect((await page.request.get(`${router.url}/v1/sessions/current`)).status()).toBe(401)
    await context.close()
  })

  test("each page's h1 is its name, reached through the navigation links", async () => {
    const { context, page } = await signedIn("/console/")
    for (const name of ["Calls", "Deliveries", "Hooks", "Numbers", "Unroutable", "Live", "Overview"]) {
      await page.getByRole("navigation").getByRole("link", { name, exact: true }).click()
      await heading(page, name)
    }
    await context.close()
  })

  test("Overview: the hour's success rate, latency, queue, tenants and unroutable domains, with a chart", async () => {
    const { context, page } = await signedIn("/console/")
    await heading(page, "Overview")
    await page.getByRole("img", { name: /Delivery attempts per minute/ }).waitFor(WAIT)
    const text = await page.getByRole("main").innerText()
    for (const label of ["Success rate", "p99 attempt latency", "Queue depth", "Oldest pending", "Failing", "Disabled", NOBODY]) expect(text).toContain(label)
    await context.close()
  })

  test("Calls: every call newest first, search as you type, filters in the URL, and a new call appears by itself", async () => {
    const { context, page } = await signedIn("/console/calls")
    await heading(page, "Calls")
    for (const room of Object.values(rooms)) await page.getByRole("link", { name: room }).waitFor(WAIT)

    await page.getByLabel("Search calls").fill(rooms.broken)
    await page.waitForURL(/[?&]q=/, WAIT)
    await page.getByRole("link", { name: rooms.good }).waitFor({ state: "detached", ...WAIT })
    await page.getByRole("link", { name: rooms.broken }).waitFor(WAIT)

    await page.getByLabel("Search calls").fill(NOBODY)
    await page.getByLabel("Search calls").press("Enter")
    await page.getByRole("link", { name: rooms.nobody }).waitFor(WAIT)
    await page.getByRole("link", { name: rooms.broken }).waitFor({ state: "detached", ...WAIT })

    await page.getByLabel("Search calls").fill("")
    await page.getByLabel("Search calls").press("Enter")
    await page.getByLabel("Status").selectOption("unrouted")
    await page.waitForURL(/status=unrouted/, WAIT)
    await page.getByRole("link", { name: rooms.good }).waitFor({ state: "detached", ...WAIT })
    expect(await rowWith(page, rooms.nobody).innerText()).toContain("unrouted")

    // The same URL in another tab shows the same view.
    const other = await context.newPage()
    await other.goto(page.url())
    await heading(other, "Calls")
    expect(await other.getByLabel("Status").inputValue()).toBe("unrouted")
    await other.getByRole("link", { name: rooms.nobody }).waitFor(WAIT)
    expect(await other.getByRole("link", { name: rooms.good }).count()).toBe(0)

    // Live: a call placed now shows up without a reload.
    await page.getByLabel("Status").selectOption("")
    await page.getByText("Connected to the live stream").waitFor(WAIT)
    const late = uniqueRoom("late")
    await placeCall(router, late, GOOD)
    await page.getByRole("link", { name: late }).waitFor(WAIT)
    await context.close()
  })

  test("Call: the record and the timeline of events and attempts; a failed delivery retried from there", async () => {
    const { context, page } = await signedIn("/console/calls")
    await page.getByRole("link", { name: rooms.good }).click()
    await heading(page, new RegExp(rooms.good))
    const timeline = page.getByRole("region", { name: "Timeline" })
    await timeline.getByText("HTTP 200").waitFor(WAIT)
    expect(await timeline.innerText()).toContain("participant_joined")
    expect(await page.getByRole("main").innerText()).toContain(GOOD)
    // A time is focusable and gives the absolute time.
    const time = timeline.locator("time").first()
    expect(await time.getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(await time.getAttribute("title")).toMatch(/\d{4}/)
    await time.focus()
    expect(await page.evaluate<string>("document.activeElement.tagName")).toBe("TIME")

    await page.goto(`${router.url}/console/calls/${rooms.broken}`)
    await heading(page, new RegExp(rooms.broken))
    await page.getByRole("region", { name: "Timeline" }).getByText("HTTP 500").first().waitFor(WAIT)
    await page.getByRole("button", { name: "Retry" }).click()
    await page.getByRole("status").filter({ hasText: "requeued" }).waitFor(WAIT)
    await context.close()
  })

  test("Deliveries: the Status filter takes the API's statuses; a failed row shows its fields and retries; a delivery opens in its own tab", async () => {
    const { context, page } = await signedIn("/console/deliveries")
    await heading(page, "Deliveries")
    const options = await page.getByLabel("Status").locator("option").evaluateAll((all: Array<{ value: string }>) => all.map((o) => o.value))
    expect(options).toEqual(["", "pending", "failed", "delivered", "expired"])
    await page.getByLabel("Status").selectOption("failed")
    await page.waitForURL(/status=failed/, WAIT)
    const row = rowWith(page, failed.eventId)
    await row.waitFor(WAIT)
    const cells = await row.getByRole("cell").allInnerTexts()
    expect(cells.join(" | ")).toContain(String(failed.id))
    for (const value of ["participant_joined", BROKEN, "failed"]) expect(cells).toContainEqual(expect.stringContaining(value))
    // Its attempts, in their column, as the API counts them (3 here, fewer if the hook's disable overtook them).
    const columns = await page.getByRole("columnheader").allInnerTexts()
    expect(cells[columns.findIndex((name) => /^attempts$/i.test(name.trim()))]).toBe(String(failed.attempts))
    // A middle click opens the delivery in a new tab, at its own URL.
    const [tab] = await Promise.all([context.waitForEvent("page", WAIT), row.getByRole("link", { name: String(failed.id), exact: true }).click({ button: "middle" })])
    await tab!.waitForLoadState()
    expect(new URL(tab!.url()).pathname).toBe(`/console/deliveries/${failed.id}`)
    await heading(tab!, `Delivery ${failed.id}`)
    await tab!.getByRole("cell", { name: "HTTP 500" }).first().waitFor(WAIT)

    // Retried, it leaves the failed list; the page says so outside the row.
    await row.getByRole("button", { name: "Retry" }).click()
    await page.getByRole("status").filter({ hasText: `Delivery ${failed.id} requeued` }).waitFor(WAIT)

    // Recover the tenant's failed deliveries since an hour ago.
    await page.getByLabel("Tenant").selectOption(BROKEN)
    await page.waitForURL(/tenant=broken/, WAIT)
    const since = new Date(Date.now() - 3_600_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 19)
    await page.getByLabel("Since").fill(since)
    await page.getByRole("button", { name: "Recover" }).click()
    await page.getByRole("status").filter({ hasText: /Requeued \d+ failed deliver/ }).waitFor(WAIT)
    await context.close()
  })

  test("Hooks: New hook saves one and shows its secret once; its page rotates the secret, sends a test event and enables it when disabled", async () => {
    const { context, page } = await signedIn("/console/hooks")
    await heading(page, "Hooks")
    // Health in words: the tenant whose every attempt fails is not shown as well.
    await rowWith(page, BROKEN).getByText(/failing|disabled/).waitFor(WAIT)
    expect(await rowWith(page, GOOD).innerText()).toContain("enabled")
    await page.getByRole("button", { name: "New hook" }).click()
    await page.getByLabel("Host").fill(DOOMED)
    await page.getByLabel("URL").fill(`${tenants.broken.url}/voice`)
    await page.getByRole("button", { name: "Save" }).click()
    const created = await page.getByLabel("New secret").inputValue(WAIT)
    expect(created).toMatch(/^whsec_/)
    await page.getByRole("table").getByRole("link", { name: DOOMED }).click()
    await heading(page, new RegExp(DOOMED.replaceAll(".", "\\.")))

    await page.getByRole("button", { name: "Rotate secret" }).click()
    await page.getByLabel("New secret").waitFor(WAIT)
    const rotated = await page.getByLabel("New secret").inputValue()
    expect(rotated).toMatch(/^whsec_/)
    expect(rotated).not.toBe(created)

    await page.getByRole("button", { name: "Send test event" }).click()
    await page.getByRole("alert").filter({ hasText: "not delivered: HTTP 500" }).waitFor(WAIT)
    expect(await page.getByRole("button", { name: "Enable" }).count()).toBe(0)

    // Failing calls until the hook has failed for over a second (disableAfter 1s): a call every half second,
    // so a slow machine that delays the first failure only takes more calls, at most 30.
    const disabled = async () => ((await (await router.admin("GET", `/v1/hooks/${DOOMED}`)).json()) as any).disabled === true
    for (let call = 0; call < 30 && !(await disabled()); call++) {
      await placeCall(router, uniqueRoom("doomed"), DOOMED)
      await Bun.sleep(500)
    }
    await eventually(disabled, 15_000, "the hook disabled")
    await page.reload()
    await page.getByRole("button", { name: "Enable" }).click(WAIT)
    await page.getByRole("status").filter({ hasText: "is enabled" }).waitFor(WAIT)
    await page.getByRole("button", { name: "Enable" }).waitFor({ state: "detached", ...WAIT })

    // Edit changes what the form changes and keeps the rest.
    await page.getByRole("button", { name: "Edit" }).click()
    await page.getByLabel("Max age").fill("30s")
    await page.getByRole("button", { name: "Save" }).click()
    await page.getByRole("definition").filter({ hasText: "30s" }).waitFor(WAIT)
    const hook = (await (await router.admin("GET", `/v1/hooks/${DOOMED}`)).json()) as any
    expect({ maxAge: hook.maxAge, url: hook.url, events: hook.events }).toEqual({ maxAge: "30s", url: `${tenants.broken.url}/voice`, events: null })
    await context.close()
  })

  test("Numbers: a number mapped to a hook is listed, and removed", async () => {
    const { context, page } = await signedIn("/console/numbers")
    await heading(page, "Numbers")
    await page.getByLabel("Number", { exact: true }).fill("+1 (555) 010-4477")
    await page.getByLabel("Host").fill(GOOD)
    await page.getByRole("button", { name: "Map number" }).click()
    const row = rowWith(page, "+15550104477")
    await row.waitFor(WAIT)
    expect(await row.innerText()).toContain(GOOD)
    await row.getByRole("button", { name: /Remove/ }).click()
    await row.waitFor({ state: "detached", ...WAIT })
    await context.close()
  })

  test("Unroutable: a row per domain with its count, and Create hook opens the form with its host", async () => {
    const { context, page } = await signedIn("/console/unroutable")
    await heading(page, "Unroutable")
    const row = rowWith(page, NOBODY)
    await row.waitFor(WAIT)
    expect(await row.getByRole("cell", { name: "1", exact: true }).count()).toBe(1)
    await row.getByRole("button", { name: "Create hook" }).click()
    await heading(page, "Hooks")
    expect(await page.getByLabel("Host").inputValue(WAIT)).toBe(NOBODY)
    await context.close()
  })

  test("Live: changes arrive as they happen, and Pause holds them back until Resume", async () => {
    const { context, page } = await signedIn("/console/live")
    await heading(page, "Live")
    await page.getByText("Connected to the live stream").waitFor(WAIT)
    const first = uniqueRoom("live")
    await placeCall(router, first, GOOD)
    await page.getByRole("link", { name: first }).first().waitFor(WAIT)

    await page.getByRole("button", { name: "Pause" }).click()
    const held = uniqueRoom("held")
    await placeCall(router, held, GOOD)
    await page.getByText(/paused, [1-9]\d* changes? held back/).waitFor(WAIT)
    expect(await page.getByRole("link", { name: held }).count()).toBe(0)
    await page.getByRole("button", { name: "Resume" }).click()
    await page.getByRole("link", { name: held }).first().waitFor(WAIT)

    await context.close()
  })

  test("Live says when the stream is down, and reconnects by itself", async () => {
    const { context, page } = await signedIn("/console/calls")
    // The stream refused at the network: the page must not look live.
    await context.route("**/v1/stream*", (route) => route.abort())
    await page.getByRole("navigation").getByRole("link", { name: "Live", exact: true }).click()
    await page.getByText(/Disconnected from the live stream/).waitFor(WAIT)
    await context.unroute("**/v1/stream*")
    await page.getByText("Connected to the live stream").waitFor({ timeout: 20_000 })
    await context.close()
  })

  test("the keyboard alone signs in and moves between pages, with focus visible and on the new page's h1", async () => {
    const { context, page } = await openPage(browser)
    page.on("request", (request) => void requested.push(request.url()))
    await page.goto(`${router.url}/console/`)
    await heading(page, "Sign in")
    await page.keyboard.press("Tab")
    expect(await page.evaluate<string>("document.activeElement.id")).toBe("token")
    await page.keyboard.type(ADMIN_TOKEN)
    await page.keyboard.press("Enter")
    await heading(page, "Overview")
    // Tab forward (a bounded number of times) to the Deliveries link.
    for (let i = 0; i < 12 && (await page.evaluate<string>("document.activeElement.textContent")) !== "Deliveries"; i++) await page.keyboard.press("Tab")
    expect(await page.evaluate<string>("document.activeElement.textContent")).toBe("Deliveries")
    expect(await page.evaluate<string>("getComputedStyle(document.activeElement).outlineStyle")).not.toBe("none")
    await page.keyboard.press("Enter")
    await heading(page, "Deliveries")
    expect(await page.evaluate<string>("document.activeElement.tagName + ' ' + document.activeElement.textContent")).toBe("H1 Deliveries")
    await context.close()
  })

  test("dark mode follows the system's choice", async () => {
    const background = async (colorScheme: "light" | "dark") => {
      const { context, page } = await openPage(browser, { colorScheme })
      await page.goto(`${router.url}/console/`)
      await heading(page, "Sign in")
      const value = await page.evaluate("getComputedStyle(document.body).backgroundColor")
      await context.close()
      return value
    }
    expect(await background("dark")).not.toBe(await background("light"))
  })

  test("no request of any page left the router's origin", () => {
    expectOnlyRouter(requested, router)
  })
})
