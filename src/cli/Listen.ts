/**
 * `listen`: a tenant's deliveries, forwarded to an app on this machine as the
 * tenant receives them. It follows the router's live stream with bodies
 * (`GET /v1/stream?tenant=HOST&bodies=1`) and posts each queued delivery's
 * body with the Standard Webhooks headers the router signed, so the app's own
 * verification passes unchanged. When the stream breaks it reconnects with
 * backoff, resuming after the last event it saw.
 */
import { Command, Options } from "@effect/cli"
import * as Sse from "@effect/experimental/Sse"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Clock, Console, Data, Duration, Effect, Option, Redacted, Schema, Stream } from "effect"
import { DeliveryTenant } from "../domain/DeliveryViews.ts"
import { isQueued, StreamEvent } from "../domain/DeliveryStream.ts"
import { TargetUrl } from "../domain/Hook.ts"

export interface ListenOptions {
  readonly url: string
  readonly token: Redacted.Redacted
  readonly tenant: string
  readonly forwardTo: string
}

/** The router refused the subscription: retrying would not help. */
export class ListenRefused extends Data.TaggedError("ListenRefused")<{ readonly message: string }> {}

/** The stream could not be followed now (the router is away, restarting, or closed it): reconnect. */
class Interrupted extends Data.TaggedError("Interrupted")<{ readonly reason: string }> {}

/** How long the app may take to answer a forwarded delivery. */
const FORWARD_TIMEOUT = Duration.seconds(10)

/** 0.5 s, doubling to 10 s; back to the start once the stream is up again. */
const backoff = (failures: number) => Duration.millis(Math.min(500 * 2 ** failures, 10_000))

const decodeEvent = Schema.decodeUnknownOption(Schema.parseJson(StreamEvent))

const describeCause = (cause: unknown): string =>
  cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause)

/**
 * Notices go straight to stderr: the command line captures `Console.error`
 * for its usage errors (see Cli.ts), and these are not those.
 */
const notice = (text: string) => Effect.sync(() => void process.stderr.write(`${text}\n`))

/** One stdout line per forwarded delivery: when, what, the app's answer and how long it took. */
export const formatForwarded = (at: number, event: StreamEvent, outcome: string, ms: number) =>
  `${new Date(at).toISOString()}  ${event.eventType}  ${event.eventId}  ${outcome}  ${ms}ms`

/** The router's error answer, as the other commands print it. */
const refusal = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.map(
    Effect.orElseSucceed(response.json, () => undefined),
    (body: any) => `error: ${response.status} ${body?.error?.code ?? "error"}: ${body?.error?.message ?? "the router refused the stream"}`
  )

export const listen = (options: ListenOptions) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    // The app gets the request as the tenant would: no tracing headers of the CLI's own.
    const forwarder = HttpClient.withTracerPropagation(client, false)
    let lastEventId: string | undefined
    let failures = 0
    let connectedBefore = false

    const forward = (event: StreamEvent) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        if (event.body == null || event.headers == null) {
          return yield* Console.log(formatForwarded(started, event, "not forwarded: the router no longer holds its body", 0))
        }
        const request = HttpClientRequest.post(options.forwardTo).pipe(
          HttpClientRequest.bodyText(event.body, "application/json"),
          HttpClientRequest.setHeaders({ "user-agent": "sip-tenant-router listen", ...event.headers })
        )
        const outcome = yield* forwarder.execute(request).pipe(
          Effect.flatMap((response) => Effect.as(Effect.ignore(response.text), String(response.status))),
          Effect.scoped,
          Effect.timeoutFail({ duration: FORWARD_TIMEOUT, onTimeout: () => new Error(`no answer within ${Duration.format(FORWARD_TIMEOUT)}`) }),
          Effect.catchAll((error) => Effect.succeed(`error: ${describeCause(error)}`))
        )
        const finished = yield* Clock.currentTimeMillis
        yield* Console.log(formatForwarded(finished, event, outcome, finished - started))
      })

    const onEvent = (event: Sse.Event) =>
      Effect.suspend(() => {
        if (event.id !== undefined) lastEventId = event.id
        const decoded = decodeEvent(event.data)
        if (Option.isNone(decoded)) return notice(`skipped an event the router sent that this CLI does not read (id ${event.id})`)
        // One forward per queued delivery (accepted, or requeued); the changes after its attempts are the router's business.
        return isQueued(decoded.value) ? forward(decoded.value) : Effect.void
      })

    /** One subscription, from connecting until the stream ends or breaks. */
    const follow = Effect.gen(function* () {
      const request = HttpClientRequest.get(`${options.url}/v1/stream`).pipe(
        HttpClientRequest.setUrlParams({ tenant: options.tenant, bodies: "1" }),
        HttpClientRequest.bearerToken(Redacted.value(options.token)),
        HttpClientRequest.setHeaders({ accept: "text/event-stream", ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }) })
      )
      const response = yield* Effect.mapError(client.execute(request), (error) => new Interrupted({ reason: `cannot reach the router at ${options.url}: ${describeCause(error.cause ?? error)}` }))
      // A bad token, another tenant's host, or a router without the stream: waiting would not change the answer.
      if ([400, 401, 403, 404].includes(response.status)) return yield* new ListenRefused({ message: yield* refusal(response) })
      if (response.status !== 200) return yield* new Interrupted({ reason: (yield* refusal(response)).replace(/^error: /, "the router answered ") })
      yield* notice(
        connectedBefore
          ? `reconnected to ${options.url}${lastEventId === undefined ? "" : `; resuming after event ${lastEventId}`}`
          : `listening to ${options.tenant}'s deliveries at ${options.url}, forwarding them to ${options.forwardTo} (Ctrl-C to stop)`
      )
      connectedBefore = true
      failures = 0
      yield* response.stream.pipe(
        Stream.decodeText(),
        Stream.pipeThroughChannel(Sse.makeChannel()),
        Stream.runForEach(onEvent),
        Effect.mapError((error) => new Interrupted({ reason: `the stream broke: ${describeCause(error)}` }))
      )
      return yield* new Interrupted({ reason: "the router closed the stream" })
    }).pipe(Effect.scoped)

    for (;;) {
      const reason = yield* Effect.flip(follow).pipe(
        Effect.flatMap((error) => (error._tag === "ListenRefused" ? Effect.fail(error) : Effect.succeed(error.reason)))
      )
      const delay = backoff(failures++)
      yield* notice(`${reason}; reconnecting in ${Duration.format(delay)}`)
      yield* Effect.sleep(delay)
    }
  })

/** What the command takes from the rest of the command line (Cli.ts): its connection options, its option parser, its failure. */
export interface CommandParts<E> {
  readonly connection: Options.Options<{ readonly url: string; readonly token: Redacted.Redacted }>
  readonly option: <A>(name: string, schema: Schema.Schema<A, string>) => Options.Options<A>
  readonly failed: (message: string) => E
}

export const listenCommand = <E>({ connection, option, failed }: CommandParts<E>) =>
  Command.make(
    "listen",
    {
      connection,
      tenant: option("tenant", DeliveryTenant).pipe(Options.withDescription("the tenant's host (a tenant token: one of its own)")),
      forwardTo: option("forward-to", TargetUrl).pipe(Options.withDescription("the local app's webhook URL, e.g. http://localhost:3000/webhooks"))
    },
    ({ connection: { url, token }, tenant, forwardTo }) =>
      listen({ url, token, tenant, forwardTo }).pipe(
        Effect.mapError((error) => failed(error.message)),
        Effect.provide(FetchHttpClient.layer)
      )
  ).pipe(
    Command.withDescription(
      "follow the router's live stream and post each of the tenant's deliveries to a local app as the tenant receives it: the same body and webhook-id/-timestamp/-signature headers, signed now. One line per delivery on stdout; reconnects (resuming) when the router goes away; Ctrl-C stops"
    )
  )
