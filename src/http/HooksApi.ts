import { randomUUID } from "node:crypto"
import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Clock, Duration, Effect, Either, Layer } from "effect"
import { AppConfig } from "../AppConfig.ts"
import { envelope } from "../domain/Envelope.ts"
import { NotFound } from "../domain/Errors.ts"
import { HookFields, HostPattern, signingSecrets, type ActiveHook } from "../domain/Hook.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { describeFailure, WebhookSender } from "../delivery/WebhookSender.ts"
import { iso } from "./Responses.ts"
import { admin, decodeBody, decodeParam, mayAccess, requireAccess, type Principal } from "./Admin.ts"

/** Secrets are write-only: views say whether a hook has its own, never what it is. */
const publicView = (hook: ActiveHook) => ({
  host: hook.host,
  url: hook.url,
  events: hook.events ?? null,
  rateLimit: hook.rateLimit ?? null,
  source: hook.source,
  hasOwnSecret: hook.secret !== undefined
})

const hostParam = decodeParam("host", HostPattern)

/** The hook the path names, if the caller may see it. */
const addressedHook = (principal: Principal) =>
  Effect.gen(function* () {
    const host = yield* hostParam
    yield* requireAccess(principal, host)
    const hook = yield* (yield* HookTable).get(host)
    return hook ?? (yield* new NotFound({ message: `no hook for ${host}` }))
  })

const ListHooks = HttpLayerRouter.add(
  "GET",
  "/v1/hooks",
  admin((principal) =>
    Effect.gen(function* () {
      const hooks = yield* (yield* HookTable).list
      return HttpServerResponse.unsafeJson({ hooks: hooks.filter((hook) => mayAccess(principal, hook.host)).map(publicView) })
    })
  )
)

const GetHook = HttpLayerRouter.add(
  "GET",
  "/v1/hooks/:host",
  admin((principal) => Effect.map(addressedHook(principal), (hook) => HttpServerResponse.unsafeJson(publicView(hook))))
)

const PutHook = HttpLayerRouter.add("PUT", "/v1/hooks/:host", (request) =>
  admin((principal) =>
    Effect.gen(function* () {
      const host = yield* hostParam
      yield* requireAccess(principal, host)
      const fields = yield* decodeBody(HookFields, request)
      const hooks = yield* HookTable
      const { outcome, generatedSecret } = yield* hooks.put({ host, ...fields })
      const saved = yield* addressedHook(principal)
      // A generated secret is shown in this response only; the router never returns it again.
      return HttpServerResponse.unsafeJson(
        { ...publicView(saved), ...(generatedSecret ? { secret: generatedSecret } : {}) },
        { status: outcome === "created" ? 201 : 200 }
      )
    })
  )
)

const DeleteHook = HttpLayerRouter.add(
  "DELETE",
  "/v1/hooks/:host",
  admin((principal) =>
    Effect.gen(function* () {
      const host = yield* hostParam
      yield* requireAccess(principal, host)
      yield* (yield* HookTable).remove(host)
      return HttpServerResponse.empty({ status: 204 })
    })
  )
)

/** The new secret is shown once; the old one keeps signing until `previousSecretExpiresAt`. */
const RotateSecret = HttpLayerRouter.add(
  "POST",
  "/v1/hooks/:host/rotate-secret",
  admin((principal) =>
    Effect.gen(function* () {
      const host = yield* hostParam
      yield* requireAccess(principal, host)
      const { secret, previousUntil } = yield* (yield* HookTable).rotateSecret(host)
      return HttpServerResponse.unsafeJson({ host, secret, previousSecretExpiresAt: iso(previousUntil) })
    })
  )
)

/** Sends one signed `router.test` event, without retries, and reports the tenant's answer. */
const TestHook = HttpLayerRouter.add(
  "POST",
  "/v1/hooks/:host/test",
  admin((principal) =>
    Effect.gen(function* () {
      const config = yield* AppConfig
      const hook = yield* addressedHook(principal)
      const now = yield* Clock.currentTimeMillis
      const eventId = `test_${randomUUID()}`
      const body = envelope({
        type: "router.test",
        timestampMs: now,
        tenant: hook.host,
        call: { room: null, sipCallId: null, from: null, to: null, domain: null },
        rawEvent: JSON.stringify({ event: "router.test", id: eventId, createdAt: String(Math.floor(now / 1000)) })
      })
      const sender = yield* WebhookSender
      const [elapsed, outcome] = yield* Effect.timed(
        Effect.either(sender.send({ url: hook.url, eventId, body, secrets: signingSecrets(hook, config.signing.secret, now) }))
      )
      const answer = Either.isRight(outcome) ? { status: outcome.right, error: null } : describeFailure(outcome.left)
      return HttpServerResponse.unsafeJson({
        host: hook.host,
        url: hook.url,
        eventId,
        delivered: Either.isRight(outcome),
        status: answer.status,
        error: answer.error,
        latencyMs: Math.round(Duration.toMillis(elapsed))
      })
    })
  )
)

export const HooksApi = Layer.mergeAll(ListHooks, GetHook, PutHook, DeleteHook, RotateSecret, TestHook)
