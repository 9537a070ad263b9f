/**
 * The live stream's hub in-process, over an in-memory feed and Effect's
 * TestClock: the heartbeat's cadence, resumes that join the live feed with no
 * gap and no duplicate while the feed grows, and shutdown. The HTTP side is in
 * stream.test.ts.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Duration, Effect, Exit, Layer, Option, Redacted, Scope, TestClock, TestContext } from "effect"
import { Webhook } from "standardwebhooks"
import type { WebhookSecret } from "../src/domain/Hook.ts"
import type { DeliveryChange, DeliveryDetail } from "../src/domain/Delivery.ts"
import { compileTable, HookTable } from "../src/hooks/HookTable.ts"
import { HEARTBEAT_EVERY, StreamHub, type StreamScope } from "../src/http/StreamHub.ts"
import { Lifecycle } from "../src/Lifecycle.ts"
import { DeliveryHistory } from "../src/store/DeliveryHistory.ts"
import { parseFrames } from "./support/sse.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const SECRET = "whsec_" + Buffer.alloc(32, 5).toString("base64")
const ALL: StreamScope = { _tag: "All" }

/** A feed in memory: ids are sequence numbers, as SQLite's are. */
const makeFeed = () => {
  const changes: Array<DeliveryChange> = []
  const add = (count: number, tenant = "a.example") => {
    for (let i = 0; i < count; i++) {
      const seq = changes.length + 1
      changes.push({ id: String(seq), deliveryId: seq, tenant, eventId: `EV_${seq}`, eventType: "participant_joined", room: "r", status: "pending", attempts: 0, at: seq * 1000 })
    }
  }
  /** Changes committed right after each read, as the router's writes land while the hub reads. */
  const during: { read: number; onRead?: (() => void) | undefined } = { read: 0 }
  const history = {
    changesAfter: (after: string, limit: number) =>
      Effect.sync(() => {
        const page = changes.filter((c) => Number(c.id) > Number(after)).slice(0, limit)
        add(during.read, during.read % 2 === 0 ? "a.example" : "b.example")
        during.onRead?.()
        return page
      }),
    lastChange: Effect.sync(() => changes.at(-1)?.id ?? "0"),
    delivery: (id: number) =>
      Effect.sync(() => {
        const change = changes[id - 1]
        return change === undefined
          ? Option.none()
          : Option.some({ ...change, id, url: "https://tenant.example/hook", secret: null, body: JSON.stringify({ n: id }) } as unknown as DeliveryDetail)
      })
  }
  return { changes, add, history, during }
}

/** The hub over `feed`, on the TestClock, with a reader per stream that keeps what arrives. */
const withHub = <A>(feed: ReturnType<typeof makeFeed>, body: (hub: StreamHub, lifecycle: Lifecycle) => Effect.Effect<A, unknown, Scope.Scope>) => {
  const services = Layer.mergeAll(
    Layer.succeed(DeliveryHistory, feed.history as unknown as DeliveryHistory["Type"]),
    Layer.succeed(HookTable, { inForce: () => compileTable([], [], { secret: Redacted.make(SECRET) as WebhookSecret }) } as unknown as HookTable),
    Lifecycle.Default
  )
  return Effect.runPromise(
    Effect.scoped(Effect.flatMap(Effect.zip(StreamHub, Lifecycle), ([hub, lifecycle]) => body(hub, lifecycle))).pipe(
      Effect.provide(StreamHub.Default.pipe(Layer.provideMerge(services))),
      Effect.provide(TestContext.TestContext)
    )
  )
}

/** Reads a stream as it arrives: its text, and whether it ended. */
const collect = (stream: ReadableStream<Uint8Array>) => {
  const state = { text: "", ended: false }
  const decoder = new TextDecoder()
  const reader = stream.getReader()
  void (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return void (state.ended = true)
      state.text += decoder.decode(value, { stream: true })
    }
  })()
  return { state, reader, frames: () => parseFrames(state.text) }
}

/** Lets the poller and the readers run (real turns of the event loop; the TestClock stands still). */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))
const advance = (duration: Duration.DurationInput) => Effect.zipRight(TestClock.adjust(duration), Effect.zipRight(settle, settle))

describe("the stream hub", () => {
  test("a comment at once and a heartbeat every 15 s, by the clock", () =>
    withHub(makeFeed(), (hub) =>
      Effect.gen(function* () {
        const stream = collect(yield* hub.open(ALL, false, undefined))
        yield* advance("1 millis")
        expect(stream.frames().comments).toEqual(["stream open"])
        yield* advance(Duration.subtract(HEARTBEAT_EVERY, "1 second"))
        expect(stream.frames().comments).toEqual(["stream open"])
        yield* advance("1 second")
        expect(stream.frames().comments).toEqual(["stream open", "heartbeat"])
        yield* advance(HEARTBEAT_EVERY)
        expect(stream.frames().comments).toEqual(["stream open", "heartbeat", "heartbeat"])
      })
    ))

  test("a resume across several pages joins the live feed while it grows: every change once, in order", () => {
    const feed = makeFeed()
    feed.add(1_200)
    feed.add(300, "b.example")
    return withHub(feed, (hub) =>
      Effect.gen(function* () {
        const everything = collect(yield* hub.open(ALL, false, "0"))
        const onlyA = collect(yield* hub.open({ _tag: "Tenant", tenant: "a.example" }, false, "700"))
        const latest = collect(yield* hub.open(ALL, false, undefined))
        // One more opens in the middle of a poll, between two of its reads.
        let reads = 0
        let midPoll: { stream: ReturnType<typeof collect>; after: number } | undefined
        feed.during.onRead = () => {
          if (++reads !== 5) return
          midPoll = { stream: collect(Effect.runSync(hub.open(ALL, false, undefined))), after: feed.changes.length }
        }
        // The feed grows while they resume: between polls, and between the reads of one poll.
        feed.during.read = 3
        for (let i = 0; i < 12; i++) {
          feed.add(50, i % 2 === 0 ? "a.example" : "b.example")
          yield* advance("250 millis")
        }
        feed.during.read = 0
        yield* advance("1 second")
        const ids = (stream: ReturnType<typeof collect>) => stream.frames().events.map((e) => Number(e.id))
        const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
        expect(ids(everything)).toEqual(range(1, feed.changes.length))
        expect(ids(onlyA)).toEqual(feed.changes.filter((c) => Number(c.id) > 700 && c.tenant === "a.example").map((c) => Number(c.id)))
        expect(ids(latest)).toEqual(range(1_501, feed.changes.length))
        expect(ids(midPoll!.stream)).toEqual(range(midPoll!.after + 1, feed.changes.length))
      })
    )
  })

  test("bodies are signed at the clock's time with the delivery's secret", () => {
    const feed = makeFeed()
    return withHub(feed, (hub) =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.UTC(2031, 0, 1))
        const stream = collect(yield* hub.open(ALL, true, undefined))
        yield* advance("1 millis")
        feed.add(1)
        yield* advance("250 millis")
        const [event] = stream.frames().events
        expect(event!.data.headers["webhook-timestamp"]).toBe(String(Date.UTC(2031, 0, 1, 0, 0, 0, 251) / 1000 | 0))
        // Standard Webhooks refuses old timestamps: verified at the clock's time, it passes.
        const verifier = new Webhook(SECRET)
        expect(() => verifier.verify(event!.data.body, event!.data.headers)).toThrow()
        const realNow = Date.now
        Date.now = () => Date.UTC(2031, 0, 1, 0, 0, 1)
        try {
          expect(verifier.verify(event!.data.body, event!.data.headers)).toEqual({ n: 1 })
        } finally {
          Date.now = realNow
        }
      })
    )
  })

  test("shutdown ends every stream with a comment at the next poll, and refuses new ones", () =>
    withHub(makeFeed(), (hub, lifecycle) =>
      Effect.gen(function* () {
        const stream = collect(yield* hub.open(ALL, false, undefined))
        yield* advance("1 millis")
        yield* lifecycle.beginDrain
        yield* advance("250 millis")
        expect(stream.state.ended).toBe(true)
        expect(stream.frames().comments).toEqual(["stream open", "shutting down"])
        const refused = yield* Effect.exit(hub.open(ALL, false, undefined))
        expect(Exit.isFailure(refused) && JSON.stringify(refused.cause)).toContain("ShuttingDown")
      })
    ))
})
