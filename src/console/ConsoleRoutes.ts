import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer } from "effect"
import type { RouterConfig } from "../domain/Config.ts"

/**
 * The console at `/console/`: one HTML page for every path under it (the app
 * routes in the browser, so a deep link opens the same view), and its script
 * and style under content-hashed names. Everything comes from this process;
 * the policy below lets the page load nothing from elsewhere and run no inline
 * script.
 */

const policy = (frameAncestors: ReadonlyArray<string>) =>
  [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
    `frame-ancestors ${frameAncestors.length > 0 ? frameAncestors.join(" ") : "'none'"}`
  ].join("; ")

const loadAssets = Effect.promise(async () => {
  const { consoleBundle } = await import("./ConsoleAssets.ts")
  const version = Bun.hash(consoleBundle.script + consoleBundle.style).toString(36)
  const script = `/console/assets/app-${version}.js`
  const style = `/console/assets/app-${version}.css`
  const page =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>sip-tenant-router</title><link rel="stylesheet" href="${style}"><script type="module" src="${script}"></script></head>` +
    `<body><div id="app"></div></body></html>`
  return new Map([
    [script, { body: consoleBundle.script, contentType: "text/javascript; charset=utf-8" }],
    [style, { body: consoleBundle.style, contentType: "text/css; charset=utf-8" }],
    ["page", { body: page, contentType: "text/html; charset=utf-8" }]
  ])
})

export const consoleRoutes = (config: RouterConfig) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const assets = yield* Effect.cached(loadAssets)
      const headers = {
        "content-security-policy": policy(config.admin.portalFrameAncestors),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer"
      }
      const page = Effect.map(assets, (found) =>
        HttpServerResponse.text(found.get("page")!.body, { contentType: "text/html; charset=utf-8", headers: { ...headers, "cache-control": "no-store" } })
      )
      const asset = Effect.gen(function* () {
        const { url } = yield* HttpServerRequest.HttpServerRequest
        const found = (yield* assets).get(new URL(url, "http://router").pathname)
        return found
          ? HttpServerResponse.text(found.body, { contentType: found.contentType, headers: { ...headers, "cache-control": "public, max-age=31536000, immutable" } })
          : HttpServerResponse.unsafeJson({ error: { code: "not_found", message: "no such console asset" } }, { status: 404 })
      })
      return Layer.mergeAll(
        // The router matches `/console/` here too (it ignores a trailing slash).
        HttpLayerRouter.add("GET", "/console", page),
        HttpLayerRouter.add("GET", "/console/assets/*", asset),
        HttpLayerRouter.add("GET", "/console/*", page)
      )
    })
  )
