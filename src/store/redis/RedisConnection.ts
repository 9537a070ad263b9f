import { RedisClient } from "bun"
import { Effect, Stream } from "effect"
import { StoreUnavailable } from "../../domain/Errors.ts"

// An outage must turn into a 503 well inside LiveKit's own request timeout.
const CONNECT_TIMEOUT_MS = 1_000
const COMMAND_TIMEOUT = "2 seconds"
const RESUBSCRIBE_AFTER_MS = 250

/** One Redis connection that fails fast while Redis is away and reconnects on the next command once it is back. */
export interface RedisConnection {
  readonly send: (command: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, StoreUnavailable>
  /** A Lua script, sent by digest (EVALSHA) and by source only when Redis does not know it (after a restart). */
  readonly script: (source: string) => (args: ReadonlyArray<string>) => Effect.Effect<unknown, StoreUnavailable>
  /** Emits once per message on `channel`, and once after every (re)subscription, when messages may have been missed. */
  readonly changes: (channel: string) => Stream.Stream<void>
}

const unavailable = (cause: unknown) => new StoreUnavailable({ cause })

const clientFor = (url: string) =>
  // Reconnection is ours (on demand): Bun's own gives up after maxRetries and queued commands would hide an outage.
  new RedisClient(url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: CONNECT_TIMEOUT_MS })

/** Opens the connection, connecting again on demand after it is lost. */
export const openRedis = (url: string) =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(Effect.sync(() => clientFor(url)), (c) => Effect.sync(() => c.close()))
    let connecting: Promise<void> | undefined
    const connected = () => {
      if (client.connected) return Promise.resolve()
      connecting ??= client.connect().finally(() => {
        connecting = undefined
      })
      return connecting
    }
    const send: RedisConnection["send"] = (command, args) =>
      Effect.tryPromise({ try: () => connected().then(() => client.send(command, [...args]) as Promise<unknown>), catch: unavailable }).pipe(
        Effect.timeoutFail({ duration: COMMAND_TIMEOUT, onTimeout: () => unavailable(`redis did not answer ${command} in ${COMMAND_TIMEOUT}`) })
      )
    const script: RedisConnection["script"] = (source) => {
      const sha = new Bun.CryptoHasher("sha1").update(source).digest("hex")
      return (args) =>
        send("EVALSHA", [sha, "0", ...args]).pipe(
          Effect.catchIf(
            (e) => String(e.cause).includes("NOSCRIPT"),
            () => send("EVAL", [source, "0", ...args])
          )
        )
    }
    yield* Effect.tryPromise({ try: connected, catch: unavailable })
    return { send, script, changes: (channel: string) => subscription(url, channel) } satisfies RedisConnection
  })

/** A dedicated subscriber connection, replaced whenever it closes, for as long as the stream runs. */
const subscription = (url: string, channel: string) =>
  Stream.asyncScoped<void>((emit) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        let current: RedisClient | undefined
        let stopped = false
        let timer: ReturnType<typeof setTimeout> | undefined
        const retry = () => {
          current?.close()
          current = undefined
          if (!stopped) timer = setTimeout(open, RESUBSCRIBE_AFTER_MS)
        }
        const open = () => {
          const client = (current = clientFor(url))
          client.onclose = () => {
            if (current === client) retry()
          }
          client
            .connect()
            .then(() => client.subscribe(channel, () => void emit.single(undefined)))
            .then(
              () => void emit.single(undefined),
              () => {
                if (current === client) retry()
              }
            )
        }
        open()
        return () => {
          stopped = true
          clearTimeout(timer)
          current?.close()
        }
      }),
      (stop) => Effect.sync(stop)
    )
  )
