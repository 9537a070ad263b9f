/**
 * Screenshots of every console page, light and dark, for the docs: starts a
 * router of its own with a few hooks, calls and a failed delivery (as the
 * console tests make them), signs in as an operator and as a tenant through a
 * portal link, and writes docs/console/PAGE-SCHEME.png. Needs Chromium.
 *
 *   bun run scripts/console-screenshots.ts
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { deliveryOf, launch, placeCall, putHook, signIn, startTenants, uniqueRoom } from "../test/support/console.ts"
import { ADMIN_TOKEN, startRouter } from "../test/support/router.ts"

const OUT = join(import.meta.dir, "..", "docs", "console")
const SCHEMES = ["light", "dark"] as const
const HOSTS = { drsmith: "calls.drsmith.example", citydental: "calls.citydental.example" }

mkdirSync(OUT, { recursive: true })
const tenants = startTenants()
const router = await startRouter({ admin: { tokens: [ADMIN_TOKEN] } })
try {
  await putHook(router, HOSTS.drsmith, `${tenants.good.url}/voice`)
  await putHook(router, HOSTS.citydental, `${tenants.broken.url}/voice`)
  const room = uniqueRoom("drsmith")
  await placeCall(router, room, HOSTS.drsmith)
  await placeCall(router, uniqueRoom("drsmith"), HOSTS.drsmith)
  await placeCall(router, uniqueRoom("citydental"), HOSTS.citydental)
  await placeCall(router, uniqueRoom("unknown"), "calls.drsmith.example.net")
  const failed = await deliveryOf(router, HOSTS.citydental, "failed")
  await router.admin("PUT", "/v1/numbers/+15557654321", { host: HOSTS.drsmith })

  const browser = await launch()
  const shoot = async (page: Page, name: string, scheme: string) => {
    await page.waitForTimeout(800)
    await page.screenshot({ path: join(OUT, `${name}-${scheme}.png`), fullPage: true })
  }
  for (const scheme of SCHEMES) {
    const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    await page.goto(`${router.url}/console/`)
    await shoot(page, "sign-in", scheme)
    await signIn(page, router, ADMIN_TOKEN)
    const pages: ReadonlyArray<readonly [string, string]> = [
      ["overview", "/console/"],
      ["calls", "/console/calls"],
      ["call", `/console/calls/${room}`],
      ["deliveries", "/console/deliveries"],
      ["delivery", `/console/deliveries/${failed.id}`],
      ["hooks", "/console/hooks"],
      ["hook", `/console/hooks/${HOSTS.citydental}`],
      ["numbers", "/console/numbers"],
      ["unroutable", "/console/unroutable"]
    ]
    for (const [name, path] of pages) {
      await page.goto(router.url + path)
      await shoot(page, name, scheme)
    }
    await page.goto(`${router.url}/console/live`)
    await page.getByText("Connected to the live stream").waitFor({ timeout: 10_000 })
    await placeCall(router, uniqueRoom("drsmith"), HOSTS.drsmith)
    await shoot(page, "live", scheme)
    await context.close()

    const link = (await (await router.admin("POST", `/v1/tenants/${HOSTS.drsmith}/portal-links`)).json()) as { url: string }
    const portal = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 800 } })
    const tenantPage = await portal.newPage()
    await tenantPage.goto(link.url)
    await tenantPage.getByRole("heading", { level: 1, name: "Calls" }).waitFor({ timeout: 10_000 })
    await shoot(tenantPage, "portal-calls", scheme)
    await portal.close()
  }
  await browser.close()
  console.log(`screenshots in ${OUT}`)
} finally {
  await router.stop()
  tenants.stop()
}
