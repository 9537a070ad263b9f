/**
 * `POST /v1/explain` through the real router process: the decision it answers
 * for each way a call finds (or misses) its tenant, who may ask, what it
 * refuses, and that it is the decision the router then makes for a
 * LiveKit-signed event with the same attributes.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { sipParticipantEvent, type SipCall } from "./support/livekit.ts"
import { startReceiver, type Receiver } from "./support/receiver.ts"
import { DEFAULT_SECRET, eventually, startRouter, type RunningRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const TENANT_TOKEN = "tenant-token-for-explain-tests-0123"
const DOWN = "down.example.com"
const ROUTED_ATTRIBUTES = ["sip.h.x-to-ip", "sip.h.to", "sip.trunkPhoneNumber"]

let rooms = 0
const room = (name: string) => `explain-${name}-${Date.now().toString(36)}-${++rooms}`

const json = async (response: Response): Promise<any> => response.json()

describe("POST /v1/explain", () => {
  let router: RunningRouter
  let up: Receiver
  let down: Receiver

  const explain = async (attributes: Record<string, unknown>) => {
    const response = await router.admin("POST", "/v1/explain", { attributes })
    expect(response.status).toBe(200)
    return json(response)
  }

  beforeAll(async () => {
    up = startReceiver(DEFAULT_SECRET)
    down = startReceiver(DEFAULT_SECRET, [{ status: 503 }])
    router = await startRouter({
      // Failing for a second disables a tenant; the breaker stays out of the way.
      delivery: { maxAttempts: 100, circuitBreaker: { failureThreshold: 1000 }, disableAfter: "1s" },
      admin: { tenantTokens: [{ token: TENANT_TOKEN, hosts: ["calls.drsmith.com"] }] },
      sharedDomains: ["sip.carrier.net"],
      hooks: [
        { host: "calls.drsmith.com", url: `${up.url}/drsmith` },
        { host: "*.citydental.com", url: `${up.url}/dental` },
        { host: DOWN, url: `${down.url}/down` }
      ],
      numbers: [{ number: "+15557654321", host: "calls.drsmith.com" }]
    })
    // The real path to a disabled hook: its deliveries fail for disableAfter.
    expect((await router.post(sipParticipantEvent("participant_joined", { room: room("down"), xToIp: DOWN }))).status).toBe(200)
    await eventually(async () => (await json(await router.admin("GET", `/v1/hooks/${DOWN}`))).disabled === true, 15_000, "the failing hook to be disabled")
  })
  afterAll(async () => {
    await router?.stop()
    up?.stop()
    down?.stop()
  })

  test("an exact host: routed, with the rule, the pattern and each attribute's part; no hints", async () => {
    expect(await explain({ "sip.h.x-to-ip": "calls.drsmith.com", "sip.trunkPhoneNumber": "+15557654321" })).toEqual({
      routed: true,
      tenant: "calls.drsmith.com",
      url: `${up.url}/drsmith`,
      rule: "exact",
      pattern: "calls.drsmith.com",
      reason: null,
      steps: [
        { source: "sip.h.x-to-ip", value: "calls.drsmith.com", domain: "calls.drsmith.com", outcome: "matched" },
        { source: "sip.h.to", value: null, domain: null, outcome: "skipped" },
        { source: "sip.trunkPhoneNumber", value: "+15557654321", domain: null, outcome: "skipped" }
      ],
      hints: []
    })
  })

  test("a wildcard, through To when x-to-ip is absent", async () => {
    const answer = await explain({ "sip.h.to": "<sip:+15557654321@north.citydental.com>;tag=x" })
    expect(answer).toMatchObject({ routed: true, tenant: "*.citydental.com", rule: "wildcard", pattern: "*.citydental.com", hints: [] })
    expect(answer.steps.map((step: any) => step.outcome)).toEqual(["absent", "matched", "absent"])
  })

  test("a shared domain: the dialled number's mapping decides, whatever its spelling", async () => {
    const answer = await explain({ "sip.h.x-to-ip": "sip.carrier.net", "sip.trunkPhoneNumber": "+1 (555) 765-4321" })
    expect(answer).toMatchObject({ routed: true, tenant: "calls.drsmith.com", rule: "number", pattern: "+15557654321", hints: [] })
    expect(answer.steps).toEqual([
      { source: "sip.h.x-to-ip", value: "sip.carrier.net", domain: "sip.carrier.net", outcome: "skipped" },
      { source: "sip.h.to", value: null, domain: null, outcome: "skipped" },
      { source: "sip.trunkPhoneNumber", value: "+1 (555) 765-4321", domain: "+15557654321", outcome: "matched" }
    ])
  })

  test("an unknown domain near a hook: not routed, with a hint naming the hook", async () => {
    expect(await explain({ "sip.h.x-to-ip": "calls.drsmith.net" })).toMatchObject({
      routed: false,
      tenant: null,
      url: null,
      rule: null,
      pattern: null,
      reason: "unknown_domain",
      steps: [{ outcome: "no_hook", domain: "calls.drsmith.net" }, { outcome: "skipped" }, { outcome: "absent" }],
      hints: [expect.stringContaining("the hook calls.drsmith.com under another ending (net, not com)")]
    })
    const typo = await explain({ "sip.h.x-to-ip": "calls.drsmth.com" })
    expect(typo.hints).toEqual([expect.stringContaining('"calls.drsmth.com" is 1 edit from the hook calls.drsmith.com')])
  })

  test("an IP address: not routed, and said to be an address", async () => {
    const answer = await explain({ "sip.h.x-to-ip": "sip:+15557654321@203.0.113.7:5060", "sip.trunkPhoneNumber": "+15557654321" })
    expect(answer).toMatchObject({ routed: false, reason: "unknown_domain" })
    expect(answer.hints).toEqual([expect.stringContaining('IP address "203.0.113.7"')])
    expect(answer.hints[0]).toContain("+15557654321 is mapped to calls.drsmith.com")
  })

  test("malformed headers: each is unparseable, and the reason is malformed_header", async () => {
    const answer = await explain({ "sip.h.x-to-ip": "not a host!!", "sip.h.to": '"Unterminated <sip:foo@' })
    expect(answer).toMatchObject({ routed: false, reason: "malformed_header", hints: [] })
    expect(answer.steps.map((step: any) => step.outcome)).toEqual(["unparseable", "unparseable", "absent"])
  })

  test("a disabled hook: routed to it, with a hint saying since when and how to enable it", async () => {
    const { disabledAt } = await json(await router.admin("GET", `/v1/hooks/${DOWN}`))
    const answer = await explain({ "sip.h.x-to-ip": DOWN })
    expect(answer).toMatchObject({ routed: true, tenant: DOWN, rule: "exact" })
    expect(answer.hints).toEqual([expect.stringContaining(`The hook ${DOWN} is disabled since ${disabledAt}`)])
    expect(answer.hints[0]).toContain(`POST /v1/hooks/${DOWN}/enable`)
  })

  test("operators only: a tenant token is 403, no token 401", async () => {
    const body = { attributes: { "sip.h.x-to-ip": "calls.drsmith.com" } }
    const asTenant = await router.admin("POST", "/v1/explain", body, TENANT_TOKEN)
    expect(asTenant.status).toBe(403)
    expect((await json(asTenant)).error.code).toBe("forbidden")
    const anonymous = await fetch(`${router.url}/v1/explain`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    expect(anonymous.status).toBe(401)
  })

  test("bad bodies are a 400 naming the field", async () => {
    const cases: Array<[unknown, string]> = [
      [{ attributes: { "sip.h.from": "calls.drsmith.com" } }, "attributes.sip.h.from: "],
      [{ attributes: { "sip.h.to": 5 } }, "attributes.sip.h.to: "],
      [{ attributes: { "sip.trunkPhoneNumber": null } }, "attributes.sip.trunkPhoneNumber: "],
      [{ attributes: "calls.drsmith.com" }, "attributes: "],
      [{}, "attributes: "],
      [{ attributes: {}, verbose: true }, "verbose: "],
      ["{not json", "body: "]
    ]
    for (const [body, field] of cases) {
      const response = await router.admin("POST", "/v1/explain", body)
      const answer = await json(response)
      expect({ body, status: response.status, code: answer.error.code }).toEqual({ body, status: 400, code: "bad_request" })
      expect(answer.error.message.startsWith(field)).toBe(true)
    }
  })

  test("the answer is what the router then does with a LiveKit event carrying the same attributes", async () => {
    const calls: ReadonlyArray<Omit<SipCall, "room">> = [
      { xToIp: "calls.drsmith.com" },
      { to: "<sip:+15557654321@north.citydental.com>" },
      { xToIp: "sip.carrier.net", dialled: "+1 555 765 4321" },
      { xToIp: DOWN },
      { xToIp: "calls.drsmith.net" },
      { xToIp: "203.0.113.7" },
      { xToIp: "not a host!!", to: '"Unterminated <sip:foo@', dialled: "+15550009999" },
      { dialled: "+15550009999" }
    ]
    for (const call of calls) {
      const event = sipParticipantEvent("participant_joined", { room: room("agree"), ...call })
      const attributes = Object.fromEntries(Object.entries(event.participant.attributes).filter(([key]) => ROUTED_ATTRIBUTES.includes(key)))
      const answer = await explain(attributes)
      expect((await router.post(event)).status).toBe(200)
      const domain = answer.steps.find((step: any) => step.source !== "sip.trunkPhoneNumber" && step.domain !== null)?.domain ?? null
      if (answer.routed) {
        const page = await json(await router.admin("GET", `/v1/deliveries?tenant=${encodeURIComponent(answer.tenant)}&limit=1000`))
        const delivery = page.items.find((item: any) => item.eventId === event.id)
        expect({ call, tenant: delivery?.tenant, url: delivery?.url }).toEqual({ call, tenant: answer.tenant, url: answer.url })
      } else {
        const { items } = await json(await router.admin("GET", "/v1/unroutable?limit=1000"))
        const unroutable = items.find((item: any) => item.eventId === event.id)
        expect({ call, reason: unroutable?.reason, domain: unroutable?.domain }).toEqual({ call, reason: answer.reason, domain })
      }
    }
  })
})
