/**
 * Telemetry through the real router: spans exported by OTLP/HTTP (JSON) to a
 * local collector, the `traceparent` tenants receive, trace ids in the logs,
 * and /metrics checked by promtool and scraped by a real Prometheus.
 */
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import type { Subprocess } from "bun"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Either } from "effect"
import { decodeConfig } from "../src/domain/Config.ts"
import { API_KEY, API_SECRET, sipParticipantEvent } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { ADMIN_TOKEN, DEFAULT_SECRET, eventually, startRouter, testConfig, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/

let rooms = 0
const callTo = (host: string) => sipParticipantEvent("participant_joined", { room: `room-otel-${Date.now().toString(36)}-${++rooms}`, xToIp: host })

const hookConfig = (receiver: Receiver, host: string) => ({ hooks: [{ host, url: `${receiver.url}/voice` }] })

// ---------------------------------------------------------------- a collector

interface ExportedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, unknown>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
  readonly status: { readonly code?: number; readonly message?: string }
  readonly service: unknown
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
const valueOf = (v: AnyValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue))
const attributesOf = (list: ReadonlyArray<{ key: string; value: AnyValue }> = []) => Object.fromEntries(list.map(({ key, value }) => [key, valueOf(value)]))

/** An OTLP/HTTP receiver for JSON exports: it keeps every span and counts metric exports. */
const startCollector = () => {
  const spans: Array<ExportedSpan> = []
  const metricNames = new Set<string>()
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const path = new URL(request.url).pathname
      if (request.method !== "POST") return new Response(null, { status: 405 })
      const body = (await request.json()) as any
      if (path === "/v1/traces") {
        for (const rs of body.resourceSpans ?? []) {
          const service = attributesOf(rs.resource?.attributes)["service.name"]
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? [])
              spans.push({
                traceId: s.traceId,
                spanId: s.spanId,
                ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
                name: s.name,
                kind: s.kind,
                attributes: attributesOf(s.attributes),
                links: (s.links ?? []).map((l: any) => ({ traceId: l.traceId, spanId: l.spanId })),
                status: s.status ?? {},
                service
              })
        }
      } else if (path === "/v1/metrics") {
        for (const rm of body.resourceMetrics ?? []) for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) metricNames.add(m.name)
      } else return new Response(null, { status: 404 })
      return Response.json({})
    }
  })
  return { url: `http://127.0.0.1:${server.port}`, spans, metricNames, stop: () => server.stop(true) }
}

const stops: Array<() => unknown> = []
afterAll(async () => {
  for (const stop of stops.reverse()) await stop()
})

// ---------------------------------------------------------------- spans

describe("traces exported by OTLP", () => {
  test("a webhook's span and its phases, the delivery attempt under it with a link, the tenant's traceparent and the log lines agree", async () => {
    const collector = startCollector()
    stops.push(collector.stop)
    const receiver = startReceiver(DEFAULT_SECRET)
    stops.push(receiver.stop)
    const host = "calls.traced.example"
    const router = await startRouter({
      ...hookConfig(receiver, host),
      telemetry: { serviceName: "router-under-test", otlp: { endpoint: collector.url, protocol: "http/json", interval: "1s" } }
    })
    stops.push(() => router.stop())
    const event = callTo(host)
    expect((await router.post(event)).status).toBe(200)
    await receiver.waitFor((r) => r.some((x) => x.json.data.id === event.id))
    const traceparent = receiver.received.find((x) => x.json.data.id === event.id)!.headers.traceparent!
    const [, traceId = "", attemptSpanId = ""] = TRACEPARENT.exec(traceparent)!

    const spanNamed = (name: string) => collector.spans.find((s) => s.traceId === traceId && s.name === name)
    await eventually(() => ["POST /livekit/webhook", "verify", "resolve", "store", "delivery attempt"].every((n) => spanNamed(n) !== undefined), 10_000, "the event's spans")
    const webhook = spanNamed("POST /livekit/webhook")!
    expect(webhook.service).toBe("router-under-test")
    expect(webhook.parentSpanId).toBeUndefined()
    expect(webhook.attributes).toMatchObject({ "livekit.event_id": event.id, "livekit.event": "participant_joined", tenant: host, "http.response.status_code": 200 })
    for (const phase of ["verify", "resolve", "store"]) expect(spanNamed(phase)!.parentSpanId).toBe(webhook.spanId)
    expect(spanNamed("resolve")!.attributes.tenant).toBe(host)

    const attempt = spanNamed("delivery attempt")!
    expect(attempt.spanId).toBe(attemptSpanId)
    expect(attempt.parentSpanId).toBe(webhook.spanId)
    expect(attempt.links).toEqual([{ traceId, spanId: webhook.spanId }])
    expect(attempt.attributes).toMatchObject({
      "livekit.event_id": event.id,
      "livekit.event": "participant_joined",
      tenant: host,
      "url.full": `${receiver.url}/voice`,
      "http.response.status_code": 200,
      "delivery.attempt": 1
    })

    // The batch spans share the provider and link to the spans of their items.
    await eventually(() => collector.spans.some((s) => s.name === "ingest batch" && s.links.some((l) => l.spanId === webhook.spanId)), 10_000, "the ingest batch span")
    await eventually(() => collector.spans.some((s) => s.name === "record delivery attempts" && s.links.some((l) => l.spanId === attemptSpanId)), 10_000, "the record span")

    const line = router.logs.find((l) => l.msg === "delivery attempt" && l.eventId === event.id)!
    expect(line).toMatchObject({ trace_id: traceId, span_id: attemptSpanId })
    // Effect's metrics go the same way.
    await eventually(() => collector.metricNames.has("tenant_router_webhooks_received_total"), 10_000, "an OTLP metrics export")
  }, 30_000)

  test("a failed attempt is an error span; after a restart the next attempt still joins the webhook's trace", async () => {
    const collector = startCollector()
    stops.push(collector.stop)
    const down = startReceiver(DEFAULT_SECRET, [{ status: 503 }])
    const host = "calls.restarted.example"
    const dir = mkdtempSync(join(tmpdir(), "router-otel-"))
    stops.push(() => rmSync(dir, { recursive: true, force: true }))
    const config = testConfig(dir, {
      ...hookConfig(down, host),
      delivery: { timeout: "1s", maxAttempts: 20, initialBackoff: "100ms", maxBackoff: "300ms" },
      telemetry: { otlp: { endpoint: collector.url, protocol: "http/json" } }
    })
    const first = await startRouter(() => config, dir)
    const event = callTo(host)
    expect((await first.post(event)).status).toBe(200)
    await eventually(() => down.hits >= 1, 10_000, "a first attempt")
    await first.stop()
    const port = down.port
    down.stop()

    const webhook = collector.spans.find((s) => s.name === "POST /livekit/webhook" && s.attributes["livekit.event_id"] === event.id)!
    expect(webhook).toBeDefined()
    const failed = collector.spans.find((s) => s.name === "delivery attempt" && s.traceId === webhook.traceId)!
    expect(failed.attributes["http.response.status_code"]).toBe(503)
    expect(failed.status.code).toBe(2) // ERROR

    const up = startReceiver(DEFAULT_SECRET, [{ status: 200 }], port)
    stops.push(up.stop)
    const second = await startRouter(() => config, dir)
    stops.push(() => second.stop())
    await up.waitFor((r) => r.some((x) => x.json.data.id === event.id))
    const traceparent = up.received.find((x) => x.json.data.id === event.id)!.headers.traceparent!
    const [, traceId = "", spanId = ""] = TRACEPARENT.exec(traceparent)!
    expect(traceId).toBe(webhook.traceId)
    await eventually(() => collector.spans.some((s) => s.spanId === spanId), 10_000, "the attempt after the restart")
    const after = collector.spans.find((s) => s.spanId === spanId)!
    expect(after.parentSpanId).toBe(webhook.spanId)
    expect(after.links).toEqual([{ traceId: webhook.traceId, spanId: webhook.spanId }])
    expect(after.attributes["http.response.status_code"]).toBe(200)
  }, 40_000)

  test("a sample ratio of 0 records nothing, and the tenant still gets the (unsampled) trace", async () => {
    const collector = startCollector()
    stops.push(collector.stop)
    const receiver = startReceiver(DEFAULT_SECRET)
    stops.push(receiver.stop)
    const host = "calls.unsampled.example"
    const router = await startRouter({ ...hookConfig(receiver, host), telemetry: { sampleRatio: 0, otlp: { endpoint: collector.url, protocol: "http/json" } } })
    stops.push(() => router.stop())
    const event = callTo(host)
    expect((await router.post(event)).status).toBe(200)
    await receiver.waitFor((r) => r.some((x) => x.json.data.id === event.id))
    const traceparent = receiver.received.find((x) => x.json.data.id === event.id)!.headers.traceparent!
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
    await Bun.sleep(1_500)
    expect(collector.spans.filter((s) => s.attributes["livekit.event_id"] === event.id)).toEqual([])
  }, 30_000)
})

describe("without telemetry", () => {
  test("every attempt carries a fresh, valid traceparent, and no log line names a span", async () => {
    const receiver = startReceiver(DEFAULT_SECRET, [{ status: 503 }, { status: 200 }])
    stops.push(receiver.stop)
    const host = "calls.untraced.example"
    const router = await startRouter(hookConfig(receiver, host))
    stops.push(() => router.stop())
    const event = callTo(host)
    expect((await router.post(event)).status).toBe(200)
    await eventually(() => receiver.hits >= 2, 10_000, "a retry")
    const headers = receiver.received.filter((x) => x.json.data.id === event.id).map((x) => x.headers.traceparent!)
    expect(headers).toHaveLength(2)
    for (const header of headers) expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    expect(new Set(headers.map((h) => h.slice(3, 35))).size).toBe(2)
    await eventually(() => router.logs.filter((l) => l.msg === "delivery attempt").length >= 2, 5_000, "the attempt lines")
    expect(router.logs.filter((l) => l.trace_id !== undefined)).toEqual([])
  }, 20_000)

  test("a test send carries a traceparent too", async () => {
    const receiver = startReceiver(DEFAULT_SECRET)
    stops.push(receiver.stop)
    const host = "calls.testsend.example"
    const router = await startRouter(hookConfig(receiver, host))
    stops.push(() => router.stop())
    expect((await router.admin("POST", `/v1/hooks/${host}/test`)).status).toBe(200)
    await receiver.waitFor((r) => r.length >= 1)
    expect(receiver.received[0]!.headers.traceparent).toMatch(TRACEPARENT)
  }, 20_000)
})

// ---------------------------------------------------------------- config

describe("telemetry config", () => {
  const base = { livekit: { apiKey: API_KEY, apiSecret: API_SECRET } }
  const decode = (doc: Record<string, unknown>, env: Record<string, string> = {}) => decodeConfig({ ...base, ...doc }, env)

  test("defaults: nothing exported, http/protobuf, every trace kept", () => {
    const config = Either.getOrThrow(decode({}))
    expect(config.telemetry).toMatchObject({ serviceName: "sip-tenant-router", sampleRatio: 1, otlp: { protocol: "http/protobuf" } })
    expect(config.telemetry.otlp.endpoint).toBeUndefined()
  })

  test("OpenTelemetry's standard variables apply, and are checked like the file", () => {
    const config = Either.getOrThrow(
      decode({ telemetry: { otlp: { protocol: "http/protobuf" } } }, {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "router-eu"
      })
    )
    expect(config.telemetry).toMatchObject({ serviceName: "router-eu", otlp: { endpoint: "http://127.0.0.1:4318", protocol: "http/json" } })
    const refused = decode({}, { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })
    expect(Either.isLeft(refused) && refused.left.key).toBe("OTEL_EXPORTER_OTLP_PROTOCOL (env)")
  })

  test("bad values name their key", () => {
    const keyOf = (telemetry: unknown) => Either.match(decode({ telemetry }), { onLeft: (e) => e.key, onRight: () => "accepted" })
    expect(keyOf({ sampleRatio: 1.5 })).toBe("telemetry.sampleRatio")
    expect(keyOf({ otlp: { endpoint: "collector:4318" } })).toBe("telemetry.otlp.endpoint")
    expect(keyOf({ otlp: { endpoint: "http://collector:4318", extra: 1 } })).toBe("telemetry.otlp.extra")
    expect(keyOf({ sampleRatio: 0.25, otlp: { endpoint: "https://collector.example:4318" } })).toBe("accepted")
  })
})

// ---------------------------------------------------------------- /metrics with Prometheus' own tools

const PROMTOOL = Bun.which("promtool")
const PROMETHEUS = Bun.which("prometheus")
// A laptop without the tools may skip; CI must fail instead of going green.
const SKIP = (!PROMTOOL || !PROMETHEUS) && process.env.CI !== "true"
const requireTool = (path: string | null, name: string) => {
  if (!path) throw new Error(`${name} not found on PATH; install it with: apt-get install -y prometheus`)
  return path
}

/** A router that has received, refused, delivered and failed something, so every metric family has samples. */
const busyRouter = async (overrides: Record<string, unknown> = {}): Promise<RunningRouter> => {
  const receiver = startReceiver(DEFAULT_SECRET, [{ status: 500 }, { status: 200 }])
  stops.push(receiver.stop)
  const router = await startRouter({ ...hookConfig(receiver, "calls.scraped.example"), ...overrides })
  stops.push(() => router.stop())
  expect((await router.post(callTo("calls.scraped.example"))).status).toBe(200)
  expect((await router.post(callTo("calls.nobody.example"))).status).toBe(200)
  expect((await router.post(callTo("calls.scraped.example"), { authorization: "Bearer forged" })).status).toBe(401)
  await eventually(async () => (await router.metric("tenant_router_deliveries_total", { outcome: "delivered" })) >= 1, 10_000, "a delivery")
  return router
}

describe("/metrics for Prometheus", () => {
  test.skipIf(SKIP)("promtool and prometheus are installed (required in CI)", () => {
    requireTool(PROMTOOL, "promtool")
    requireTool(PROMETHEUS, "prometheus")
  })

  test.skipIf(SKIP)("the text passes promtool check metrics", async () => {
    const promtool = requireTool(PROMTOOL, "promtool")
    const router = await busyRouter()
    const text = await (await fetch(`${router.url}/metrics`)).text()
    expect(text).toContain("tenant_router_delivery_duration_seconds_bucket")
    const check = Bun.spawn([promtool, "check", "metrics"], { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" })
    const [code, out, err] = await Promise.all([check.exited, new Response(check.stdout).text(), new Response(check.stderr).text()])
    expect({ code, problems: (out + err).trim() }).toEqual({ code: 0, problems: "" })
  }, 20_000)

  test.skipIf(SKIP)("a real Prometheus scrapes the router with admin.metricsToken and answers queries with its values", async () => {
    const prometheus = requireTool(PROMETHEUS, "prometheus")
    const metricsToken = "metrics-token-for-prometheus-0123"
    const router = await busyRouter({ admin: { tokens: [ADMIN_TOKEN], metricsToken } })
    expect((await fetch(`${router.url}/metrics`)).status).toBe(401)
    const accepted = await router.metric("tenant_router_webhooks_received_total", { outcome: "accepted" })
    const dir = mkdtempSync(join(tmpdir(), "prometheus-"))
    stops.push(() => rmSync(dir, { recursive: true, force: true }))
    const target = new URL(router.url).host
    writeFileSync(
      join(dir, "prometheus.yml"),
      Bun.YAML.stringify({
        global: { scrape_interval: "1s", scrape_timeout: "1s" },
        scrape_configs: [{ job_name: "router", authorization: { type: "Bearer", credentials: metricsToken }, static_configs: [{ targets: [target] }] }]
      })
    )
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
    const port = probe.port
    probe.stop(true)
    const server: Subprocess = Bun.spawn(
      [prometheus, `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
      { cwd: dir, stdout: "ignore", stderr: "pipe" }
    )
    stops.push(() => (server.kill("SIGKILL"), server.exited))
    const query = async () => {
      const url = `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent('tenant_router_webhooks_received_total{outcome="accepted"}')}`
      const answer = (await (await fetch(url, { signal: AbortSignal.timeout(1_000) })).json()) as any
      return answer.data?.result?.[0]?.value?.[1] as string | undefined
    }
    await eventually(async () => (await query().catch(() => undefined)) !== undefined, 30_000, "Prometheus to have scraped the router")
    expect(Number(await query())).toBe(accepted)
  }, 60_000)
})
