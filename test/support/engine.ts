/**
 * The delivery engine in-process, on a clock the test moves: the real engine
 * layers over a real (in-memory SQLite) store and the real hook table, with a
 * scripted sender in place of the network. Attempts happen only when the test
 * advances the clock, so timings are exact and runs are deterministic.
 */
import { Context, Effect, Either, Exit, Layer, Logger, Random, Scope } from "effect"
import { AppConfig } from "../../src/AppConfig.ts"
import { AlertQueue } from "../../src/delivery/AlertQueue.ts"
import { DeliveryAdmin } from "../../src/delivery/DeliveryAdmin.ts"
import { manualClock } from "../../src/delivery/EngineClock.ts"
import { DeliveryEngineLive } from "../../src/delivery/Forwarder.ts"
import { LaneWindow } from "../../src/delivery/LaneWindow.ts"
import { WebhookSender, type Outgoing } from "../../src/delivery/WebhookSender.ts"
import { decodeConfig } from "../../src/domain/Config.ts"
import type { Delivery, NewDelivery } from "../../src/domain/Delivery.ts"
import { TenantRejected, TenantUnreachable, type DeliveryError } from "../../src/domain/Errors.ts"
import { FileHooks } from "../../src/hooks/FileHookSource.ts"
import { LiveConfig } from "../../src/LiveConfig.ts"
import { HookTable } from "../../src/hooks/HookTable.ts"
import { RemoteHooks } from "../../src/hooks/HttpHookSource.ts"
import { Lifecycle } from "../../src/Lifecycle.ts"
import { StoreLive } from "../../src/store/StoreLive.ts"
import { Store } from "./store.ts"
import { TracingLive } from "../../src/telemetry/TracingLive.ts"
import { DEFAULT_SECRET } from "./router.ts"

/** What a scripted tenant answers: a status (2xx delivers), a network failure, a 429/503 with Retry-After seconds. */
export type Answer = number | "unreachable" | { readonly status: number; readonly retryAfterSeconds: number }

/** One attempt as the scripted tenant saw it, on both clocks. */
export interface Sent {
  readonly url: string
  readonly eventId: string
  readonly mono: number
  readonly wall: number
}

const outcomeOf = (answer: Answer): Either.Either<number, DeliveryError> => {
  if (answer === "unreachable") return Either.left(new TenantUnreachable({ message: "connection refused" }))
  if (typeof answer === "number") return answer >= 200 && answer < 300 ? Either.right(answer) : Either.left(new TenantRejected({ status: answer, retryAfterMs: undefined }))
  return Either.left(new TenantRejected({ status: answer.status, retryAfterMs: answer.retryAfterSeconds * 1000 }))
}

export interface EngineOptions {
  /** The config document's delivery, hooks, alerts ... sections; merged over quick defaults. */
  readonly config?: Record<string, unknown>
  /** What each tenant (by url) answers to an attempt; the default answers 200. */
  readonly answer?: (sent: Sent, nth: number) => Answer
  /** How long each attempt takes, in ms on the engine's clock. */
  readonly latencyMs?: (sent: Sent) => number
  /** Seeds the jitter. */
  readonly seed?: string
}

export const startEngine = async (options: EngineOptions = {}) => {
  const clock = manualClock()
  const raw = {
    livekit: { apiKey: "key", apiSecret: "secret" },
    signing: { secret: DEFAULT_SECRET },
    security: { allowPrivateTargets: true },
    store: { path: ":memory:" },
    ...options.config,
    delivery: { maxAttempts: 5, initialBackoff: "1s", maxBackoff: "10s", ...(options.config?.delivery as object | undefined) }
  }
  const decoded = decodeConfig(raw)
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  const config = decoded.right
  const sent: Array<Sent> = []
  let inFlight = 0
  let maxInFlight = 0
  const inFlightByUrl = new Map<string, number>()
  const maxInFlightByUrl = new Map<string, number>()

  const attempt = (outgoing: Outgoing, _span: unknown, signal: AbortSignal) => {
    const one: Sent = { url: outgoing.url, eventId: outgoing.eventId, mono: clock.clock.monoMs(), wall: clock.clock.wallMs() }
    const nth = sent.filter((s) => s.eventId === one.eventId).length
    sent.push(one)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    inFlightByUrl.set(one.url, (inFlightByUrl.get(one.url) ?? 0) + 1)
    maxInFlightByUrl.set(one.url, Math.max(maxInFlightByUrl.get(one.url) ?? 0, inFlightByUrl.get(one.url)!))
    const answer = (options.answer ?? (() => 200))(one, nth)
    return new Promise<Either.Either<number, DeliveryError>>((resolve) => {
      const done = () => {
        inFlight--
        inFlightByUrl.set(one.url, inFlightByUrl.get(one.url)! - 1)
        resolve(signal.aborted ? Either.left(new TenantUnreachable({ message: "aborted" })) : outcomeOf(answer))
      }
      const latency = options.latencyMs?.(one) ?? 0
      if (latency === 0) queueMicrotask(done)
      else clock.clock.after(latency, done)
    })
  }
  const sender = Layer.succeed(WebhookSender, WebhookSender.make({ attempt, send: () => Effect.die("no test sends here") }))

  const layer = DeliveryEngineLive.pipe(
    Layer.provideMerge(Layer.mergeAll(HookTable.Default, sender)),
    Layer.provideMerge(Layer.mergeAll(FileHooks.Default, RemoteHooks.Default).pipe(Layer.provideMerge(LiveConfig.layer(config)))),
    Layer.provideMerge(Layer.mergeAll(StoreLive.memory(), Lifecycle.Default, AppConfig.layer(config), TracingLive(config), clock.layer)),
    // Seeded, so the retry schedule's jitter is the same in every run.
    Layer.provide(Layer.mergeAll(Layer.setRandom(Random.make(options.seed ?? "engine")), Logger.replace(Logger.defaultLogger, Logger.none)))
  )
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const run = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof layer>>) => Effect.runPromise(Effect.provide(effect, context))
  const store = Effect.runSync(Effect.provide(Store, context))
  const window = Context.get(context, LaneWindow)
  let seq = 0

  /** Stores deliveries as Ingest would (one write), and hands them to the engine. */
  const accept = async (deliveries: ReadonlyArray<Partial<NewDelivery> & { readonly url: string }>): Promise<Array<Delivery>> => {
    const at = clock.clock.wallMs()
    const results = await run(
      store.acceptAll(
        deliveries.map((d) => {
          const eventId = d.eventId ?? `EV_${++seq}`
          const delivery: NewDelivery = {
            eventId,
            eventType: "participant_joined",
            tenant: new URL(d.url).hostname,
            room: null,
            domain: null,
            body: JSON.stringify({ event: "participant_joined", id: eventId }),
            eventCreatedAt: at,
            secret: null,
            trace: null,
            call: null,
            ...d
          }
          return { eventId, receivedAt: at, delivery, pinChange: undefined, unroutable: undefined }
        })
      )
    )
    const queued = results.flatMap((r) => (r._tag === "Accepted" && r.delivery ? [r.delivery] : []))
    window.enqueueAll(queued)
    return queued
  }

  return {
    clock,
    config,
    sent,
    accept,
    run,
    store,
    admin: Context.get(context, DeliveryAdmin),
    alerts: Context.get(context, AlertQueue),
    maxInFlight: () => maxInFlight,
    maxInFlightOf: (url: string) => maxInFlightByUrl.get(url) ?? 0,
    /** When each attempt at `eventId` was made, on the monotonic clock. */
    attemptsOf: (eventId: string) => sent.filter((s) => s.eventId === eventId).map((s) => s.mono),
    /** The delivery as the store has it now. */
    delivery: async (id: number) => {
      const found = await run(store.delivery(id))
      if (found._tag === "None") throw new Error(`no delivery ${id}`)
      return found.value
    },
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export type Engine = Awaited<ReturnType<typeof startEngine>>
