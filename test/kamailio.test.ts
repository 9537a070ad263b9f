/**
 * The SIP edge, for real: Kamailio (kamailio/kamailio.cfg) between a sipp
 * caller that forges X-To-IP and a sipp callee standing in for LiveKit SIP.
 * The callee scenario (test/edge/uas.xml) fails the call unless exactly the
 * dialled domain arrives in X-To-IP, so its exit code is the assertion.
 * Other scenario pairs there cover CANCEL and a BYE from LiveKit's side.
 * Everything runs on 127.0.0.1 with ports picked at run time. The compose
 * stack's files are checked in test/stack.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { eventually } from "./support/router.ts";
import { TEST_TIMEOUT_MS } from "./support/setup.ts";

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS);

const ROOT = resolve(import.meta.dir, "..");
const CFG = join(ROOT, "kamailio/kamailio.cfg");
const EDGE = join(import.meta.dir, "edge");
const SBIN = "/usr/local/sbin:/usr/sbin:/sbin"; // kamailio lives in sbin
const HOST = "127.0.0.1";
// Explicit per-test bound (sipp itself gives up after 20 s).
const CALL_TIMEOUT = 30_000;

const which = (name: string) => Bun.which(name) ?? Bun.which(name, { PATH: SBIN });
const KAMAILIO = which("kamailio");
const SIPP = which("sipp");
const MISSING = [KAMAILIO ? "" : "kamailio", SIPP ? "" : "sipp"].filter(Boolean);
const MISSING_MSG =
  `${MISSING.join(" and ")} not found on PATH or in ${SBIN}; ` +
  "install them with: apt-get install -y kamailio sip-tester";
// A laptop without the tools may skip; CI must fail instead of going green.
const SKIP = MISSING.length > 0 && process.env.CI !== "true";

function requireTools(): { kamailio: string; sipp: string } {
  if (!KAMAILIO || !SIPP) throw new Error(MISSING_MSG);
  return { kamailio: KAMAILIO, sipp: SIPP };
}

// ---------------------------------------------------------------- processes

/** Every child runs in its own process group, so one kill reaches Kamailio's workers too. */
const children = new Set<Subprocess>();

function spawn(cmd: string[], cwd: string, out: string, err: string): Subprocess {
  const p = Bun.spawn(cmd, {
    cwd,
    stdin: "ignore",
    stdout: Bun.file(out),
    stderr: Bun.file(err),
    detached: true,
  });
  children.add(p);
  return p;
}

function killGroup(p: Subprocess, signal: NodeJS.Signals): void {
  try {
    process.kill(-p.pid, signal);
  } catch {
    // group already gone
  }
}

async function stop(p: Subprocess): Promise<void> {
  killGroup(p, "SIGTERM"); // Kamailio's main process stops its workers on TERM
  const ended = await Promise.race([p.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
  killGroup(p, "SIGKILL"); // stragglers, or a main process that ignored TERM
  if (!ended) await p.exited;
  children.delete(p);
}

// Last resort if the runner dies between beforeAll and afterAll.
process.on("exit", () => {
  for (const p of children) killGroup(p, "SIGKILL");
});

/** Resolves with the exit code, killing the process group if it overruns. */
async function exitCode(p: Subprocess, limitMs: number): Promise<number> {
  const timer = setTimeout(() => killGroup(p, "SIGKILL"), limitMs);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
    children.delete(p);
  }
}

// -------------------------------------------------------------------- ports

const usedPorts = new Set<number>();

/** A loopback port free for both TCP and UDP right now (Kamailio listens on both). */
async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const tcp = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
    const port = tcp.port;
    try {
      if (usedPorts.has(port)) continue;
      const udp = await Bun.udpSocket({ hostname: HOST, port }).catch(() => null);
      if (!udp) continue;
      udp.close();
      usedPorts.add(port);
      return port;
    } finally {
      tcp.stop(true);
    }
  }
  throw new Error("no free loopback port for TCP+UDP");
}

/**
 * Waits until something listens on the port, by reading /proc/net: unlike a
 * probe connection this does not disturb sipp. (Kamailio sets SO_REUSEADDR on
 * UDP, so a UDP clash would go unnoticed: only TCP bind errors show up.)
 */
async function waitListening(port: number, proto: "tcp" | "udp", p: Subprocess, what: string) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (p.exitCode !== null || p.signalCode !== null) {
      throw new Error(`${what} exited (code ${p.exitCode}, signal ${p.signalCode}) before listening`);
    }
    const table = existsSync(`/proc/net/${proto}`) ? readFileSync(`/proc/net/${proto}`, "utf8") : "";
    // Columns: sl local_address rem_address st ... (trim: sl is not always padded).
    // TCP must be in LISTEN (0A); any bound UDP socket will do.
    const found = table.split("\n").some((line) => {
      const [, local, , st] = line.trim().split(/\s+/);
      return local?.endsWith(hex) === true && (proto === "udp" || st === "0A");
    });
    if (found) return;
    await Bun.sleep(25);
  }
  throw new Error(`${what} did not listen on ${proto} ${port} within 5 s`);
}

// ---------------------------------------------------------------- helpers

const tail = (path: string, lines = 30) =>
  existsSync(path) ? readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n") : "(none)";

/**
 * Scenario pairs in test/edge besides the plain call (uac.xml/uas.xml, which
 * checks X-To-IP): the caller cancels while ringing; LiveKit's side hangs up.
 */
type Flow = "" | "-cancel" | "-hangup";

/** sipp does not expand [keys] inside <ereg regexp>, so each domain gets its own copy. */
function uasScenarioFor(domain: string, dir: string): string {
  const template = readFileSync(join(EDGE, "uas.xml"), "utf8");
  const fixed = 'regexp="^ *calls\\.drsmith\\.com *$"';
  if (!template.includes(fixed)) throw new Error(`test/edge/uas.xml no longer contains ${fixed}`);
  const escaped = domain.replace(/[.[\]()*+?^$|\\{}]/g, "\\$&");
  const file = join(dir, `uas-${domain}.xml`);
  writeFileSync(file, template.replace(fixed, `regexp="^ *${escaped} *$"`));
  return file;
}

/** One raw SIP request over UDP; returns the first reply's status line. */
async function sipUdp(port: number, method: string, extra: string[] = [], maxForwards = 70): Promise<string> {
  const replies: string[] = [];
  const sock = await Bun.udpSocket({
    hostname: HOST,
    port: 0,
    socket: { data: (_s, buf) => void replies.push(buf.toString()) },
  });
  const id = crypto.randomUUID();
  const msg = [
    `${method} sip:edge@${HOST}:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${HOST}:${sock.port};branch=z9hG4bK-${id}`,
    `Max-Forwards: ${maxForwards}`,
    `From: <sip:probe@${HOST}>;tag=${id.slice(0, 8)}`,
    `To: <sip:edge@${HOST}>`,
    `Call-ID: ${id}`,
    `CSeq: 1 ${method}`,
    ...extra,
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
  try {
    for (let attempt = 0; attempt < 10 && replies.length === 0; attempt++) {
      sock.send(msg, port, HOST);
      for (let i = 0; i < 10 && replies.length === 0; i++) await Bun.sleep(20);
    }
  } finally {
    sock.close();
  }
  return replies[0]?.split("\r\n")[0] ?? "(no reply)";
}

// ------------------------------------------------------------- edge tests

test.skipIf(SKIP)("kamailio and sipp are installed (required in CI)", () => {
  requireTools();
});

describe("kamailio edge stamps X-To-IP (real kamailio + sipp)", () => {
  let dir = "";
  let kam: Subprocess | undefined;
  let kamPort = 0;
  let uasPort = 0;
  let kamLog = "";
  let kamCmd: string[] = [];

  beforeAll(async () => {
    if (MISSING.length > 0) return; // each test reports it (or is skipped)
    const { kamailio } = requireTools();
    dir = mkdtempSync(join(tmpdir(), "edge-"));
    kamPort = await freePort();
    uasPort = await freePort();
    kamLog = join(dir, "kamailio.log");
    // -DD: stay in the foreground; -E: log to stderr; -Y/-w/-P: runtime dir,
    // cwd and pid file in the temp dir so no /var/run write and no clash with
    // a system instance; -m/-M: 64 MB shared, 8 MB per process is plenty.
    kamCmd = [
      kamailio, "-DD", "-E", "-m", "64", "-M", "8",
      "-f", CFG, "-Y", dir, "-w", dir, "-P", join(dir, "kamailio.pid"),
      "-A", `LISTEN_UDP=udp:${HOST}:${kamPort}`,
      "-A", `LISTEN_TCP=tcp:${HOST}:${kamPort}`,
      "-A", `NEXT_HOP="sip:${HOST}:${uasPort}"`,
    ];
    kam = spawn(kamCmd, dir, join(dir, "kamailio.out"), kamLog);
    try {
      await waitListening(kamPort, "tcp", kam, "kamailio");
      await waitListening(kamPort, "udp", kam, "kamailio");
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${kamCmd.join(" ")}\n${tail(kamLog)}`);
    }
  }, 15_000);

  afterAll(async () => {
    await Promise.all([...children].map(stop));
    if (dir && process.env.KEEP_EDGE_LOGS !== "1") rmSync(dir, { recursive: true, force: true });
  }, 15_000);

  /**
   * One call: sipp UAS on uasPort, sipp UAC through Kamailio (or straight to
   * the UAS). The caller dials `dial` (default: the domain); the flow picks
   * the scenario pair test/edge/ua{c,s}<flow>.xml.
   */
  async function call(opts: { transport: "u1" | "t1"; domain: string; dial?: string; flow?: Flow; bypassEdge?: boolean; uasScenario?: string }) {
    const { sipp } = requireTools();
    const flow = opts.flow ?? "";
    const dial = opts.dial ?? opts.domain;
    const tag = `${opts.transport}-${dial}${flow}${opts.bypassEdge ? "-bypass" : ""}`;
    const f = (side: string, kind: string) => join(dir, `${tag}.${side}.${kind}`);
    const bounded = ["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin", "-bind_local", "-i", HOST];
    const traces = (side: string) => [
      "-trace_err", "-error_file", f(side, "errors.log"),
      "-trace_msg", "-message_file", f(side, "messages.log"),
    ];

    const uasFile = opts.uasScenario ? join(EDGE, opts.uasScenario) : flow === "" ? uasScenarioFor(opts.domain, dir) : join(EDGE, `uas${flow}.xml`);
    const uas = spawn(
      [sipp, "-sf", uasFile, "-t", opts.transport, "-p", String(uasPort), ...bounded,
        ...traces("uas"), "-trace_logs", "-log_file", f("uas", "actions.log")],
      dir, f("uas", "stdout"), f("uas", "stderr"),
    );
    await waitListening(uasPort, opts.transport === "t1" ? "tcp" : "udp", uas, "sipp UAS");

    const target = `${HOST}:${opts.bypassEdge ? uasPort : kamPort}`;
    const uac = spawn(
      [sipp, target, "-sf", join(EDGE, `uac${flow}.xml`), "-t", opts.transport, "-s", "reception",
        "-key", "domain", dial, "-p", String(await freePort()), ...bounded, ...traces("uac")],
      dir, f("uac", "stdout"), f("uac", "stderr"),
    );
    const [uacCode, uasCode] = await Promise.all([exitCode(uac, 25_000), exitCode(uas, 25_000)]);
    const report = [
      `UAC exit ${uacCode}, UAS exit ${uasCode} (0 = all calls OK, 1 = some failed, 99 = none processed)`,
      `--- UAS errors\n${tail(f("uas", "errors.log"))}`,
      `--- UAS scenario log\n${tail(f("uas", "actions.log"))}`,
      `--- UAS stderr\n${tail(f("uas", "stderr"), 10)}`,
      `--- UAC errors\n${tail(f("uac", "errors.log"))}`,
      `--- UAC stderr\n${tail(f("uac", "stderr"), 10)}`,
      `--- UAC screen\n${tail(f("uac", "stdout"), 60)}`,
      // Which message went missing, and where: what each side sent and received, in order.
      `--- UAS messages\n${tail(f("uas", "messages.log"), 80)}`,
      `--- UAC messages\n${tail(f("uac", "messages.log"), 80)}`,
      `--- kamailio (${kamCmd.join(" ")})\n${tail(kamLog)}`,
    ].join("\n");
    return { uacCode, uasCode, report, uasErrors: tail(f("uas", "errors.log")), kamLog: readFileSync(kamLog, "utf8") };
  }

  /** A call whose both sides complete; for the plain flow, the dialled domain was stamped. */
  async function expectCallOk(transport: "u1" | "t1", domain: string, opts: { dial?: string; flow?: Flow } = {}) {
    const r = await call({ transport, domain, ...opts });
    if (r.uasCode !== 0 || r.uacCode !== 0) throw new Error(r.report);
    expect(r.kamLog).toContain(`new call to domain ${domain} `);
  }

  test.skipIf(SKIP)("UDP: forged X-To-IP is replaced by the dialled domain", async () => {
    await expectCallOk("u1", "calls.drsmith.com");
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("TCP: same over TCP, relayed on TCP", async () => {
    await expectCallOk("t1", "calls.drsmith.com");
    expect(readFileSync(kamLog, "utf8")).toContain(`relaying to sip:${HOST}:${uasPort};transport=tcp`);
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("another tenant's domain arrives intact (TCP then UDP)", async () => {
    await expectCallOk("t1", "calls.citydental.com");
    await expectCallOk("u1", "calls.citydental.com");
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("a port in the request URI stays out of X-To-IP", async () => {
    await expectCallOk("u1", "calls.drsmith.com", { dial: "calls.drsmith.com:5080" });
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("control: the UAS check fails when the edge is bypassed", async () => {
    // Proves uas.xml really asserts: the forged header reaches it unfiltered.
    // sipp still completes the call, so only the UAS exit code shows it.
    const r = await call({ transport: "u1", domain: "calls.drsmith.com", bypassEdge: true });
    expect(r.uasCode).toBe(1);
    expect(r.uasErrors).toContain("evil.example");
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("the caller discards provisional answers that come after the 200, and completes the call", async () => {
    // Straight to a callee that sends them late: proves uac.xml's transactions, on which every edge call relies.
    const r = await call({ transport: "u1", domain: "calls.drsmith.com", bypassEdge: true, uasScenario: "uas-late-provisional.xml" });
    if (r.uasCode !== 0 || r.uacCode !== 0) throw new Error(r.report);
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("CANCEL while ringing follows the INVITE; the 487 comes back (UDP, TCP)", async () => {
    await expectCallOk("u1", "calls.drsmith.com", { flow: "-cancel" });
    await expectCallOk("t1", "calls.drsmith.com", { flow: "-cancel" });
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("LiveKit's side hangs up: its BYE reaches the caller through the edge (UDP, TCP)", async () => {
    await expectCallOk("u1", "calls.drsmith.com", { flow: "-hangup" });
    await expectCallOk("t1", "calls.drsmith.com", { flow: "-hangup" });
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("answers OPTIONS keepalives, refuses other out-of-dialog junk", async () => {
    requireTools();
    expect(await sipUdp(kamPort, "OPTIONS")).toBe("SIP/2.0 200 OK");
    expect(await sipUdp(kamPort, "REGISTER", [`Contact: <sip:probe@${HOST}>`])).toBe("SIP/2.0 403 Forbidden");
    expect(await sipUdp(kamPort, "MESSAGE")).toBe("SIP/2.0 403 Forbidden");
    // Looping requests stop at the edge before any other logic.
    expect(await sipUdp(kamPort, "OPTIONS", [], 0)).toBe("SIP/2.0 483 Too Many Hops");
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("malformed requests get sanity's 400 and a warning", async () => {
    requireTools();
    expect(await sipUdp(kamPort, "OPTIONS", ["Expires: soon"])).toBe("SIP/2.0 400 Expires value is illegal");
    // The warning is written just after the reply is sent.
    await eventually(() => readFileSync(kamLog, "utf8").includes("malformed SIP from 127.0.0.1:"), 2000, "the warning");
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("compose.yaml's healthcheck probe passes against it, and fails without it", () => {
    requireTools();
    const compose = Bun.YAML.parse(readFileSync(join(ROOT, "compose.yaml"), "utf8")) as {
      services: { kamailio: { healthcheck: { test: string[] } } };
    };
    const [kind, shell, flag, script = ""] = compose.services.kamailio.healthcheck.test;
    expect([kind, shell, flag]).toEqual(["CMD", "bash", "-c"]);
    const socket = "/dev/tcp/127.0.0.1/5060";
    expect(script).toContain(socket);
    const probe = (port: number) =>
      Bun.spawnSync(["bash", "-c", script.replace(socket, `/dev/tcp/127.0.0.1/${port}`)], { stderr: "pipe" }).exitCode;
    expect(probe(kamPort)).toBe(0);
    expect(probe(uasPort)).not.toBe(0); // nothing listens there between calls
  }, CALL_TIMEOUT);

  test.skipIf(SKIP)("without LISTEN_* it listens on real addresses, never 0.0.0.0", () => {
    // 0.0.0.0 would land in Via and Record-Route, where nobody can reach it.
    const { kamailio } = requireTools();
    const r = Bun.spawnSync([kamailio, "-c", "-f", CFG], { stderr: "pipe", stdout: "pipe" });
    const out = `${r.stdout.toString()}${r.stderr.toString()}`;
    if (r.exitCode !== 0) throw new Error(out);
    expect(out).toContain("udp: 127.0.0.1");
    expect(out).toContain("tcp: 127.0.0.1");
    expect(out).not.toContain("0.0.0.0");
  });
});
