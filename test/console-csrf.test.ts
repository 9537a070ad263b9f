/**
 * Another site's page cannot act with an operator's console session, in a
 * real headless Chromium. The attacker's page is served from 127.0.0.1 on
 * another port: the same site, so SameSite=Strict does not keep the cookie
 * from riding along, and the router's check of the request's origin is what
 * refuses it. A form post and a no-cors fetch both get 403 and change
 * nothing; the same request from the console's own page goes through.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import type { Browser } from "playwright-core"
import { SKIP, WAIT, launch, openPage, signIn } from "./support/console.ts"
import { startReceiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const HOST = "calls.csrf.example"

/** The attacker's page: on load, a form posts to one endpoint and a fetch to another, both carrying whatever cookie the browser has for the router. */
const attackerPage = (router: string) => `<!doctype html><html><body>
<iframe name="sink" title="sink"></iframe>
<form id="f" method="POST" action="${router}/v1/hooks/${HOST}/test" target="sink"></form>
<script>
document.getElementById("f").submit()
fetch("${router}/v1/hooks/${HOST}/rotate-secret", { method: "POST", mode: "no-cors", credentials: "include" })
</script></body></html>`

describe.skipIf(SKIP)("a session cookie and another origin", () => {
  const tenant = startReceiver(DEFAULT_SECRET)
  let router: RunningRouter
  let attacker: ReturnType<typeof Bun.serve>
  let browser: Browser

  beforeAll(async () => {
    router = await startRouter()
    // The hook signs with the secret the receiver verifies with.
    expect((await router.admin("PUT", `/v1/hooks/${HOST}`, { url: `${tenant.url}/voice`, secret: DEFAULT_SECRET })).status).toBe(201)
    attacker = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(attackerPage(router.url), { headers: { "content-type": "text/html" } }) })
    browser = await launch()
  }, 30_000)

  afterAll(async () => {
    await browser?.close()
    attacker?.stop(true)
    tenant.stop()
    await router?.stop()
  })

  test("a form post and a fetch from another origin are refused with 403 and change nothing; the console's own request is made", async () => {
    const { page } = await openPage(browser)
    await signIn(page, router, ADMIN_TOKEN)

    const refused = ["test", "rotate-secret"].map((action) =>
      page.waitForResponse((response) => response.url() === `${router.url}/v1/hooks/${HOST}/${action}`, WAIT)
    )
    await page.goto(`http://127.0.0.1:${attacker.port}/`)
    // 403, not 401: the browser sent the session cookie, and the origin check refused it.
    expect((await Promise.all(refused)).map((response) => response.status())).toEqual([403, 403])

    // From the console's own page, the same session sends the test event.
    await page.goto(`${router.url}/console/hooks/${HOST}`)
    await page.getByRole("button", { name: "Send test event" }).click(WAIT)
    await tenant.waitFor((received) => received.length >= 1)
    await Bun.sleep(300)
    // One delivery, the console's, signed with one secret: the attacker's test event never went, nor did its rotation.
    expect(tenant.received.map((received) => received.json?.type)).toEqual(["router.test"])
    expect(tenant.received[0]!.headers["webhook-signature"]!.split(" ")).toHaveLength(1)
  })
})
