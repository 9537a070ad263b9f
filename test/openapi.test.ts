/**
 * The OpenAPI document the router generates from its API definition: valid
 * OpenAPI 3.1, complete, and true to the routes (every documented operation
 * is served by the running router and answers with a documented status).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Validator } from "@seriousme/openapi-schema-validator"
import { ADMIN_TOKEN, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

/** Every admin endpoint, as docs/admin-api.md lists them. */
const ENDPOINTS = [
  "GET /v1/hooks",
  "GET /v1/hooks/{host}",
  "PUT /v1/hooks/{host}",
  "PATCH /v1/hooks/{host}",
  "DELETE /v1/hooks/{host}",
  "POST /v1/hooks/{host}/rotate-secret",
  "POST /v1/hooks/{host}/test",
  "GET /v1/numbers",
  "GET /v1/numbers/{number}",
  "PUT /v1/numbers/{number}",
  "DELETE /v1/numbers/{number}",
  "GET /v1/deliveries",
  "GET /v1/deliveries/{id}",
  "POST /v1/deliveries/{id}/retry",
  "POST /v1/hooks/{host}/enable",
  "POST /v1/tenants/{host}/recover",
  "GET /v1/unroutable",
  "POST /v1/unroutable/replay",
  "POST /v1/explain",
  "GET /v1/unroutable/domains",
  "GET /v1/calls",
  "GET /v1/calls/{room}",
  "GET /v1/stream",
  "POST /v1/tokens",
  "GET /v1/tokens",
  "DELETE /v1/tokens/{id}",
  "POST /v1/tenants/{host}/portal-links",
  "POST /v1/sessions",
  "POST /v1/store/reencrypt",
  "POST /v1/portal-links/redeem",
  "GET /v1/sessions/current",
  "DELETE /v1/sessions/current",
  "GET /v1/overview",
  "GET /v1/backup"
]

/** Signing in is what a credential is for: these two take none. */
const SIGN_IN = ["POST /v1/sessions", "POST /v1/portal-links/redeem"]

type Spec = Record<string, any>

/** The operations of the document, as "METHOD /path" with the operation itself. */
const operationsOf = (spec: Spec): Array<[string, Spec]> =>
  Object.entries<Spec>(spec.paths).flatMap(([path, item]) => Object.entries<Spec>(item).map(([method, op]): [string, Spec] => [`${method.toUpperCase()} ${path}`, op]))

const resolve = (spec: Spec, schema: Spec): Spec => (schema.$ref ? resolve(spec, spec.components.schemas[schema.$ref.split("/").pop()]) : schema)

/** Values that decode, so a walk reaches each handler (which then answers 404, 400 or 2xx: all documented). */
const SAMPLE: Record<string, string> = { host: "walk.example.com", number: "%2B15550009999", id: "1", room: "walk-room" }

describe("GET /openapi.json", () => {
  let router: RunningRouter
  let spec: Spec
  beforeAll(async () => {
    router = await startRouter()
    const response = await fetch(`${router.url}/openapi.json`)
    expect(response.status).toBe(200)
    spec = (await response.json()) as Spec
  })
  afterAll(async () => {
    await router?.stop()
  })

  test("is a valid OpenAPI 3.1 document, served without a token", async () => {
    expect(spec.openapi).toMatch(/^3\.1\./)
    const result = await new Validator().validate(spec)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  test("documents every admin path and method, and nothing else", () => {
    expect(operationsOf(spec).map(([name]) => name).sort()).toEqual([...ENDPOINTS].sort())
  })

  test("every operation but signing in needs the bearer token or the console's session cookie", () => {
    expect(spec.components.securitySchemes).toEqual({
      bearer: { type: "http", scheme: "bearer" },
      session: { type: "apiKey", in: "cookie", name: "srt_session" }
    })
    expect(spec.security ?? []).toEqual([])
    for (const [name, op] of operationsOf(spec)) {
      const expected = SIGN_IN.includes(name) ? [] : [{ bearer: [] }, { session: [] }]
      expect({ name, security: op.security ?? [] }).toEqual({ name, security: expected })
    }
  })

  test("request and response schemas: bodies, parameters, and every error as {error: {code, message}}", () => {
    const put = spec.paths["/v1/hooks/{host}"].put
    expect(Object.keys(resolve(spec, put.requestBody.content["application/json"].schema).properties)).toEqual(["url", "secret", "events", "rateLimit", "maxAge", "headers", "auth"])
    expect(Object.keys(put.responses)).toEqual(expect.arrayContaining(["200", "201", "400", "401", "403", "409", "413", "503"]))
    const patch = spec.paths["/v1/hooks/{host}"].patch
    const patchBody = resolve(spec, patch.requestBody.content["application/json"].schema)
    expect(Object.keys(patchBody.properties)).toEqual(["url", "secret", "events", "rateLimit", "maxAge", "headers", "auth"])
    expect(patchBody.required ?? []).toEqual([])
    expect(Object.keys(patch.responses)).toEqual(expect.arrayContaining(["200", "400", "401", "403", "404", "409", "413", "503"]))
    expect(spec.paths["/v1/deliveries"].get.parameters.map((p: Spec) => p.name)).toEqual(["status", "tenant", "limit", "cursor", "room", "eventId", "eventType", "domain"])
    expect(spec.paths["/v1/calls"].get.parameters.map((p: Spec) => p.name)).toEqual(["tenant", "status", "number", "domain", "since", "until", "limit", "cursor"])
    for (const [name, op] of operationsOf(spec)) {
      expect({ name, documents401: "401" in op.responses }).toEqual({ name, documents401: true })
      for (const [status, response] of Object.entries<Spec>(op.responses)) {
        if (Number(status) < 400) continue
        const schema = resolve(spec, response.content["application/json"].schema)
        const shapes = (schema.anyOf ?? [schema]).map((s: Spec) => resolve(spec, s))
        for (const shape of shapes) {
          expect({ name, status, required: shape.required }).toEqual({ name, status, required: ["error"] })
          expect(Object.keys(shape.properties.error.properties).sort()).toEqual(["code", "message"])
        }
      }
    }
  })

  test("tokens: the creation's body and its 201 with the token, the list without it, a revoke's 204 or 404", () => {
    const post = spec.paths["/v1/tokens"].post
    const body = resolve(spec, post.requestBody.content["application/json"].schema)
    expect({ properties: Object.keys(body.properties), required: body.required }).toEqual({ properties: ["hosts", "label"], required: ["hosts"] })
    expect(Object.keys(resolve(spec, post.responses["201"].content["application/json"].schema).properties).sort()).toEqual(["createdAt", "hosts", "id", "label", "token"])
    expect(Object.keys(spec.components.schemas.Token.properties).sort()).toEqual(["createdAt", "hosts", "id", "label"])
    expect(Object.keys(spec.paths["/v1/tokens/{id}"].delete.responses)).toEqual(expect.arrayContaining(["204", "400", "401", "403", "404", "503"]))
  })

  test("calls, their timeline and unroutable domains are named components; every unroutable reason is listed, tenant_conflict included", () => {
    const schemas = spec.components.schemas
    for (const name of ["Call", "CallPage", "CallDetail", "CallRouting", "TimelineEvent", "TimelineAttempt", "TimelineExpired", "TimelineDisabled", "UnroutableDomain"]) {
      expect({ name, defined: name in schemas }).toEqual({ name, defined: true })
    }
    const call = spec.paths["/v1/calls/{room}"].get.responses["200"].content["application/json"].schema
    expect(resolve(spec, call).properties.timeline.items.anyOf.map((s: Spec) => resolve(spec, s).properties.kind.enum)).toEqual([["event"], ["attempt"], ["expired"], ["disabled"]])
    const reasons = ["missing_header", "malformed_header", "unknown_domain", "tenant_conflict"]
    expect(schemas.UnroutableEvent.properties.reason.enum).toEqual(reasons)
    expect(schemas.UnroutableDomain.properties.reason.enum).toEqual(reasons)
    expect(schemas.CallRouting.properties.reason.anyOf[0].enum).toEqual(reasons)
  })

  test("the overview is a named component with the console's fields, its minutes and counts named too", () => {
    const overview = resolve(spec, spec.paths["/v1/overview"].get.responses["200"].content["application/json"].schema)
    expect(overview).toBe(spec.components.schemas.Overview)
    expect(Object.keys(overview.properties)).toEqual(["from", "to", "minutes", "successRate", "p99Ms", "queue", "tenants", "unroutable"])
    expect(Object.keys(spec.components.schemas.OverviewMinute.properties)).toEqual(["at", "succeeded", "failed"])
    expect(Object.keys(spec.components.schemas.UnroutableCount.properties)).toEqual(["domain", "count"])
    expect(Object.keys(overview.properties.queue.properties)).toEqual(["pending", "oldestPendingAt"])
    expect(Object.keys(overview.properties.tenants.properties)).toEqual(["failing", "disabled"])
    expect(Object.keys(spec.paths["/v1/overview"].get.responses)).toEqual(expect.arrayContaining(["200", "401", "403", "503"]))
  })

  test("every documented operation is routed: with and without a token it answers a documented status, never 'no such endpoint'", async () => {
    for (const [name, op] of operationsOf(spec)) {
      const [method, template] = name.split(" ") as [string, string]
      const path = template.replace(/\{(\w+)\}/g, (_, param: string) => SAMPLE[param]!) + (template.endsWith("/recover") ? "?since=2020-01-01" : "")
      for (const token of [ADMIN_TOKEN, "not-a-token-0123456789"]) {
        const response = await router.admin(method, path, method === "PUT" || method === "PATCH" ? {} : undefined, token)
        // The live stream answers with events until the client leaves: its status is the answer.
        const streaming = response.headers.get("content-type")?.startsWith("text/event-stream") === true
        if (streaming) await response.body?.cancel()
        const body = (streaming ? null : await response.json().catch(() => null)) as { error?: { message?: string } } | null
        expect({ name, token: token === ADMIN_TOKEN, documented: String(response.status) in op.responses }).toEqual({ name, token: token === ADMIN_TOKEN, documented: true })
        expect(body?.error?.message).not.toBe("no such endpoint")
      }
    }
  })
})

test("admin.docs: false turns /openapi.json and /docs off (404); the API itself stays", async () => {
  const router = await startRouter({ admin: { tokens: [ADMIN_TOKEN], docs: false } })
  try {
    for (const path of ["/openapi.json", "/docs"]) {
      const response = await fetch(`${router.url}${path}`)
      expect({ path, status: response.status }).toEqual({ path, status: 404 })
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found")
    }
    expect((await router.admin("GET", "/v1/hooks")).status).toBe(200)
  } finally {
    await router.stop()
  }
}, 20_000)
