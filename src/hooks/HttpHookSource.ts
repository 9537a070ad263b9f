import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import { Context, Duration, Effect, Either, identity, Layer, Option, Schedule, Schema, SubscriptionRef } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { firstProblem } from "../domain/Errors.ts"
import { emptyHookSet, HookSet, hookSet, hookSetProblem, hookWithoutSecret } from "../domain/Hook.ts"
import { parseJsonWithin } from "../domain/Untrusted.ts"
import { HookStore, REMOTE_HOOKS_KEY } from "../store/HookStore.ts"

const FETCH_TIMEOUT = Duration.seconds(10)

/** What is kept across restarts: the last good table and the ETag it came with. */
const Cached = Schema.parseJson(Schema.Struct({ etag: Schema.NullOr(Schema.String), set: HookSet }))

/** A redirect is the endpoint's answer (refused as one), not somewhere else to fetch the table from. */
const NoRedirectFetch = FetchHttpClient.layer.pipe(Layer.provide(Layer.succeed(FetchHttpClient.RequestInit, { redirect: "manual" })))

/**
 * Hooks and numbers served by another system as JSON (`{"hooks": [...],
 * "numbers": [...]}`), for platforms whose tenant list lives elsewhere. Polled
 * every `remoteHooks.interval` with If-None-Match; a bad answer is logged and
 * the last good table stays in force. The last good table is kept in the
 * store (HookStore's cache), so a restart while the endpoint is down still routes.
 */
export class RemoteHooks extends Context.Tag("RemoteHooks")<RemoteHooks, SubscriptionRef.SubscriptionRef<HookSet>>() {
  static readonly Default = Layer.scoped(
    RemoteHooks,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const store = yield* HookStore
      const source = config.remoteHooks
      if (source === undefined) return yield* SubscriptionRef.make(emptyHookSet)
      const decodeSet = Schema.decodeUnknownEither(hookSet(config.defaultCountry), { onExcessProperty: "error" })
      // Not traced: a poll is no one's request, and the endpoint is not told our trace ids.
      const client = HttpClient.withTracerDisabledWhen(yield* HttpClient.HttpClient, () => true)

      const cached = Option.flatMap(yield* store.cached(REMOTE_HOOKS_KEY), (text) => Either.getRight(Schema.decodeEither(Cached)(text)))
      const current = yield* SubscriptionRef.make(Option.match(cached, { onNone: () => emptyHookSet, onSome: (c) => c.set }))
      let etag = Option.match(cached, { onNone: () => null, onSome: (c) => c.etag })

      const refuse = (problem: string) =>
        Effect.logWarning("remote hook table refused; the last good table stays in force").pipe(
          Effect.annotateLogs({ url: source.url, problem })
        )

      /** Logged in the fetch error's own words, as before (the client's message adds only the request line). */
      const unreachable = (error: HttpClientError.HttpClientError) => refuse(error.cause instanceof Error ? error.cause.message : error.message)

      const poll = Effect.gen(function* () {
        const request = HttpClientRequest.get(source.url).pipe(
          HttpClientRequest.acceptJson,
          etag ? HttpClientRequest.setHeader("if-none-match", etag) : identity,
          source.token ? HttpClientRequest.bearerToken(source.token) : identity
        )
        const response = yield* client.execute(request).pipe(Effect.timeout(FETCH_TIMEOUT))
        if (response.status === 304) return
        const text = yield* response.text
        if (response.status !== 200) return yield* refuse(`answered ${response.status}`)
        const json = parseJsonWithin(text)
        if (Either.isLeft(json)) return yield* refuse(`body is ${json.left}`)
        const decoded = decodeSet(json.right)
        if (Either.isLeft(decoded)) {
          const { key, problem } = firstProblem(decoded.left, "body")
          return yield* refuse(`${key}: ${problem}`)
        }
        const unsigned = config.signing.secret === undefined ? hookWithoutSecret(decoded.right) : undefined
        if (unsigned !== undefined) return yield* refuse(`hooks.${unsigned}.secret: required, since signing.secret is not set`)
        const problem = hookSetProblem(decoded.right, config.security.allowPrivateTargets)
        if (problem) return yield* refuse(`${problem.key}: ${problem.problem}`)
        etag = response.headers["etag"] ?? null
        yield* SubscriptionRef.set(current, decoded.right)
        yield* store.cache(REMOTE_HOOKS_KEY, Schema.encodeSync(Cached)({ etag, set: decoded.right }))
        yield* Effect.log("remote hooks loaded").pipe(
          Effect.annotateLogs({ url: source.url, hooks: decoded.right.hooks.length, numbers: decoded.right.numbers.length })
        )
      }).pipe(
        Effect.catchTags({
          RequestError: unreachable,
          ResponseError: unreachable,
          TimeoutException: () => refuse(`no answer within ${Duration.format(FETCH_TIMEOUT)}`)
        }),
        Effect.catchTag("StoreUnavailable", (e) => Effect.logWarning("remote hook table not cached", e.cause))
      )

      yield* poll.pipe(Effect.repeat(Schedule.spaced(source.interval)), Effect.forkScoped)
      return current
    })
  ).pipe(Layer.provide(NoRedirectFetch))
}
