/**
 * The compose stack (compose.yaml, livekit/, config/router.compose.yaml,
 * Dockerfile) agrees with itself and with what the router depends on:
 * LiveKit posts to the router's port with the key pair the router verifies,
 * LiveKit SIP turns X-To-IP into sip.h.x-to-ip and trusts only the Kamailio
 * edge, and docker-compose resolves the file with its healthchecks and start
 * order. docker-compose validates files without a Docker engine.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { existsSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Either, Redacted } from "effect"
import { parseConfigText } from "../src/domain/Config.ts"
import { startRouter } from "./support/router.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ROOT = resolve(import.meta.dir, "..")
const read = (path: string) => readFileSync(join(ROOT, path), "utf8")

type Healthcheck = { test: string[] }
type Service = {
  build?: unknown
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
  networks?: string[] | Record<string, { ipv4_address?: string } | null>
  healthcheck?: Healthcheck
  depends_on?: string[] | Record<string, { condition: string }>
}
const compose = Bun.YAML.parse(read("compose.yaml")) as {
  services: Record<string, Service>
  volumes: Record<string, unknown>
  networks: { edge: { ipam: { config: Array<{ subnet: string }> } } }
}
const service = (name: string): Service => {
  const s = compose.services[name]
  if (!s) throw new Error(`compose.yaml has no service ${name}`)
  return s
}
const livekit = Bun.YAML.parse(read("livekit/livekit.yaml")) as {
  keys: Record<string, string>
  webhook: { api_key: string; urls: string[] }
  redis: { address: string }
}
const sip = Bun.YAML.parse(read("livekit/sip.yaml")) as {
  api_key: string
  api_secret: string
  ws_url: string
  redis: { address: string }
  listen_ip: string
  local_net: string
  health_port: number
}

/** The host path of a container path, through the service's bind mounts (`./src:/target[:ro]`). */
const hostPath = (s: Service, containerPath: string): string => {
  for (const volume of s.volumes ?? []) {
    const [source = "", target = ""] = volume.split(":")
    if (source.startsWith("./") && (containerPath === target || containerPath.startsWith(`${target}/`))) {
      return join(ROOT, source, containerPath.slice(target.length))
    }
  }
  throw new Error(`no bind mount holds ${containerPath}`)
}

/** The sources a service mounts: host paths (./...) and named volumes. */
const mounts = (s: Service) => (s.volumes ?? []).map((v) => v.split(":")[0] ?? "")

const ipOn = (s: Service, network: string) => (Array.isArray(s.networks) ? undefined : s.networks?.[network]?.ipv4_address)
const networksOf = (s: Service) => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}))

const ROUTER = service("router")
const routerConfigPath = ROUTER.environment?.ROUTER_CONFIG ?? ""
const routerConfigText = readFileSync(hostPath(ROUTER, routerConfigPath), "utf8")
const routerConfig = Either.getOrThrowWith(parseConfigText(routerConfigText), (e) => new Error(`${routerConfigPath}: ${e.message}`))

/** Whether an IPv4 address lies in a CIDR block. */
const inSubnet = (ip: string, cidr: string) => {
  const [base = "", bits = "32"] = cidr.split("/")
  const n = (a: string) => a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0)
  const size = 2 ** (32 - Number(bits))
  return Math.floor(n(ip) / size) === Math.floor(n(base) / size)
}

describe("compose.yaml, LiveKit and the router agree", () => {
  test("defines the five services", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["kamailio", "livekit", "livekit-sip", "redis", "router"])
  })

  test("every bind-mounted file or folder exists; the store is on a named volume", () => {
    const all = Object.values(compose.services).flatMap(mounts)
    for (const source of all.filter((m) => m.startsWith("./"))) {
      expect({ source, exists: existsSync(join(ROOT, source)) }).toEqual({ source, exists: true })
    }
    expect(hostPath(service("kamailio"), "/etc/kamailio/edge.cfg")).toBe(join(ROOT, "kamailio/kamailio.cfg"))
    expect(hostPath(service("livekit"), "/etc/livekit.yaml")).toBe(join(ROOT, "livekit/livekit.yaml"))
    expect(hostPath(service("livekit-sip"), "/sip/config.yaml")).toBe(join(ROOT, "livekit/sip.yaml"))
    expect(hostPath(ROUTER, routerConfigPath)).toBe(join(ROOT, "config/router.compose.yaml"))
    // A named volume survives `docker compose down`; the store path lies inside it.
    const store = (ROUTER.volumes ?? []).find((v) => !v.startsWith("./"))?.split(":") ?? []
    expect(Object.keys(compose.volumes)).toContain(store[0] ?? "")
    expect(routerConfig.store.path.startsWith(`${store[1]}/`)).toBe(true)
  })

  test("the router's compose config decodes with the router's own decoder and listens on all addresses", () => {
    const decoded = parseConfigText(routerConfigText)
    expect(Either.isRight(decoded) ? "ok" : decoded.left.message).toBe("ok")
    // LiveKit reaches the router over the compose network, never on loopback.
    expect(routerConfig.server.host).toBe("0.0.0.0")
  })

  test("LiveKit posts webhooks to the router service, on its port, at /livekit/webhook", () => {
    expect(livekit.webhook.urls).toHaveLength(1)
    const url = new URL(livekit.webhook.urls[0] ?? "")
    expect(url.pathname).toBe("/livekit/webhook")
    expect(url.hostname).toBe("router")
    expect(Number(url.port)).toBe(routerConfig.server.port)
    // Whatever the router publishes on the host, its container port is the same one.
    expect(ROUTER.ports?.map((p) => Number(p.split(":").at(-1)))).toEqual([routerConfig.server.port])
  })

  test("one LiveKit key pair: the webhook key, the router's and LiveKit SIP's", () => {
    expect(Object.keys(livekit.keys)).toContain(livekit.webhook.api_key)
    const pair = { key: livekit.webhook.api_key, secret: livekit.keys[livekit.webhook.api_key] ?? "(not in keys)" }
    expect({ key: routerConfig.livekit.apiKey, secret: Redacted.value(routerConfig.livekit.apiSecret) }).toEqual(pair)
    expect({ key: sip.api_key, secret: sip.api_secret }).toEqual(pair)
    expect(sip.redis.address).toBe(livekit.redis.address)
    expect(sip.ws_url).toBe("ws://livekit:7880")
  })

  test("the inbound trunk maps X-To-IP and the To header, and only trusts the kamailio edge", () => {
    const { trunk } = JSON.parse(read("livekit/inbound-trunk.json")) as {
      trunk: { allowed_addresses: string[]; headers_to_attributes: Record<string, string>; include_headers: string }
    }
    expect(trunk.headers_to_attributes["X-To-IP"]).toBe("sip.h.x-to-ip")
    expect(trunk.include_headers).toBe("SIP_ALL_HEADERS") // yields sip.h.to, the router's fallback
    expect(trunk.allowed_addresses).toEqual([`${ipOn(service("kamailio"), "edge")}/32`])
  })

  test("LiveKit SIP's signalling is reachable from the edge network only", () => {
    const lkSip = service("livekit-sip")
    expect(sip.listen_ip).toBe(ipOn(lkSip, "edge") ?? "")
    const subnet = compose.networks.edge.ipam.config[0]?.subnet ?? ""
    expect(sip.local_net).toBe(subnet)
    expect(inSubnet(sip.listen_ip, subnet)).toBe(true)
    const onEdge = Object.keys(compose.services).filter((name) => networksOf(service(name)).includes("edge"))
    expect(onEdge.sort()).toEqual(["kamailio", "livekit-sip"])
    // Only the edge publishes SIP; Redis publishes nothing.
    const sipPorts = Object.entries(compose.services).filter(([, s]) => (s.ports ?? []).some((p) => p.startsWith("5060:")))
    expect(sipPorts.map(([name]) => name)).toEqual(["kamailio"])
    expect(service("redis").ports).toBeUndefined()
    expect(service("livekit-sip").healthcheck?.test).toContain(`http://127.0.0.1:${sip.health_port}/`)
  })

  test("the dispatch rule gives each call its own call- room", () => {
    const { dispatch_rule } = JSON.parse(read("livekit/dispatch-rule.json")) as {
      dispatch_rule: { rule: { dispatchRuleIndividual?: { roomPrefix: string } } }
    }
    expect(dispatch_rule.rule.dispatchRuleIndividual?.roomPrefix).toBe("call-")
  })

  test("the router image is this repo run by the tested Bun, as a non-root user", () => {
    expect(ROUTER.build).toBe(".")
    const dockerfile = read("Dockerfile")
    const bunVersion = (JSON.parse(read("package.json")) as { devDependencies: Record<string, string> }).devDependencies["bun-types"]
    expect(dockerfile).toContain(`FROM oven/bun:${bunVersion}\n`)
    expect(dockerfile).toContain("bun install --frozen-lockfile --production")
    expect(dockerfile).toMatch(/^USER (?!root)\w+$/m)
    expect(dockerfile).toContain('CMD ["bun", "run", "src/main.ts"]')
  })

  test("the router's healthcheck passes against the router running its compose config", async () => {
    const [kind, bun, flag, script = ""] = ROUTER.healthcheck?.test ?? []
    expect([kind, bun, flag]).toEqual(["CMD", "bun", "-e"])
    const readyz = `http://127.0.0.1:${routerConfig.server.port}/readyz`
    expect(script).toContain(readyz)
    const raw = Bun.YAML.parse(routerConfigText) as Record<string, any>
    // Loopback, a free port and a temporary store; the rest exactly as shipped.
    const router = await startRouter((dir) => ({
      ...raw,
      server: { ...raw.server, host: "127.0.0.1", port: 0 },
      store: { path: join(dir, "router.db") }
    }))
    try {
      const probe = Bun.spawnSync(["bun", "-e", script.replace(readyz, `${router.url}/readyz`)], { stderr: "pipe" })
      expect({ exit: probe.exitCode, stderr: probe.stderr.toString() }).toEqual({ exit: 0, stderr: "" })
    } finally {
      await router.stop()
    }
  })
})

// ------------------------------------------------------------ docker-compose

const DOCKER_COMPOSE = Bun.which("docker-compose")
// A laptop without it may skip; CI must fail instead of going green.
const SKIP = !DOCKER_COMPOSE && process.env.CI !== "true"

describe("docker-compose resolves compose.yaml", () => {
  test.skipIf(SKIP)("with a healthcheck for every service and healthy dependencies in start order", () => {
    if (!DOCKER_COMPOSE) throw new Error("docker-compose not found on PATH; install it with: apt-get install -y docker-compose")
    const r = Bun.spawnSync([DOCKER_COMPOSE, "-f", "compose.yaml", "config"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" })
    if (r.exitCode !== 0) throw new Error(`docker-compose config failed:\n${r.stderr.toString()}`)
    const resolved = Bun.YAML.parse(r.stdout.toString()) as {
      services: Record<string, Service & { build?: { context: string } }>
    }
    const services = resolved.services
    expect(Object.keys(services).sort()).toEqual(Object.keys(compose.services).sort())
    for (const [name, s] of Object.entries(services)) {
      expect({ name, healthcheck: s.healthcheck?.test?.[0] }).toEqual({ name, healthcheck: "CMD" })
    }
    const waitsFor = (name: string) =>
      Object.entries(services[name]?.depends_on ?? {}).map(([dep, { condition }]) => `${dep}:${condition}`).sort()
    expect(waitsFor("livekit")).toEqual(["redis:service_healthy", "router:service_healthy"])
    expect(waitsFor("livekit-sip")).toEqual(["livekit:service_healthy", "redis:service_healthy"])
    expect(waitsFor("kamailio")).toEqual(["livekit-sip:service_healthy"])
    expect(services.router?.build?.context).toBe(ROOT)
  })
})
