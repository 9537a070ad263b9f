import { randomUUID } from "node:crypto"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Clock, Duration, Effect, Either, Redacted } from "effect"
import { DeliveryAdmin } from "../delivery/DeliveryAdmin.ts"
import { HEALTHY, type TenantHealth } from "../domain/TenantHealth.ts"
import { describeFailure, WebhookSender } from "../delivery/WebhookSender.ts"
import { envelope } from "../domain/Envelope.ts"
import { NotFound } from "../domain/Errors.ts"
import { authorizationOf } from "../domain/HookHeaders.ts"
import { signingSecrets, type ActiveHook, type HostPattern } from "../domain/Hook.ts"
import { HookCreated, type HookView } from "../domain/HookViews.ts"
import { HookTable } from "../hooks/HookTable.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { mayAccess, requireAccess } from "./Authorization.ts"
import { iso } from "./Responses.ts"

const publicView = (hook: ActiveHook, health: TenantHealth = HEALTHY): HookView => ({
  host: hook.host,
  url: hook.url,
  events: hook.events ?? null,
  rateLimit: hook.rateLimit?.text ?? null,
  maxAge: hook.maxAge?.text ?? null,
  source: hook.source,
  hasOwnSecret: hook.secret !== undefined,
  headers: Object.keys(hook.headers ?? {}),
  hasAuth: hook.auth !== undefined,
  disabled: health.disabledAt !== null,
  disabledAt: health.disabledAt === null ? null : new Date(health.disabledAt).toISOString()
})

export const HooksLive = HttpApiBuilder.group(AdminApi, "hooks", (handlers) =>
  Effect.gen(function* () {
    const hooks = yield* HookTable
    const sender = yield* WebhookSender
    const admin = yield* DeliveryAdmin
    /** The hook's view with its tenant's health (auto-disable) from the store. */
    const viewOf = (hook: ActiveHook) => Effect.map(admin.healthOf(hook.host), (health) => publicView(hook, health))

    /** The caller may act on the host (403 otherwise). */
    const allowed = (host: HostPattern) => Effect.flatMap(CurrentPrincipal, (principal) => requireAccess(principal, host))

    /** The hook the path names, if the caller may see it. */
    const addressed = (host: HostPattern) =>
      Effect.gen(function* () {
        yield* allowed(host)
        return (yield* hooks.get(host)) ?? (yield* new NotFound({ message: `no hook for ${host}` }))
      })

    /** Sends one signed `router.test` event, without retries, and reports the tenant's answer. */
    const sendTest = (hook: ActiveHook) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const eventId = `test_${randomUUID()}`
        const body = envelope({
          type: "router.test",
          timestampMs: now,
          tenant: hook.host,
          call: { room: null, sipCallId: null, from: null, to: null, domain: null },
          data: JSON.stringify({ event: "router.test", id: eventId, createdAt: String(Math.floor(now / 1000)) })
        })
        const [elapsed, outcome] = yield* Effect.timed(
          Effect.either(sender.send({ url: hook.url, eventId, body, secrets: signingSecrets(hook, hooks.inForce().signing, now), headers: hook.headers, authorization: authorizationOf(hook.auth), tenant: hook.host }))
        )
        const answer = Either.isRight(outcome) ? { status: outcome.right, error: null } : describeFailure(outcome.left)
        return {
          host: hook.host,
          url: hook.url,
          eventId,
          delivered: Either.isRight(outcome),
          status: answer.status,
          error: answer.error,
          latencyMs: Math.round(Duration.toMillis(elapsed))
        }
      })

    return handlers
      .handle("list", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const all = yield* hooks.list
          return { hooks: yield* Effect.forEach(all.filter((hook) => mayAccess(principal, hook.host)), viewOf) }
        })
      )
      .handle("get", ({ path }) => Effect.flatMap(addressed(path.host), viewOf))
      .handle("put", ({ path, payload }) =>
        Effect.gen(function* () {
          yield* allowed(path.host)
          const { outcome, generatedSecret, cleared } = yield* hooks.put({ host: path.host, ...payload })
          const saved = { ...(yield* viewOf(yield* addressed(path.host))), ...(generatedSecret ? { secret: Redacted.value(generatedSecret) } : {}) }
          return outcome === "created" ? new HookCreated(saved) : { ...saved, cleared }
        })
      )
      .handle("patch", ({ path, payload }) =>
        Effect.gen(function* () {
          yield* allowed(path.host)
          const { cleared } = yield* hooks.patch(path.host, payload)
          return { ...(yield* viewOf(yield* addressed(path.host))), cleared }
        })
      )
      .handle("remove", ({ path }) => Effect.zipRight(allowed(path.host), hooks.remove(path.host)))
      .handle("rotateSecret", ({ path }) =>
        Effect.gen(function* () {
          yield* allowed(path.host)
          const { secret, previousUntil } = yield* hooks.rotateSecret(path.host)
          // The one answer that shows a secret: the new one, once.
          return { host: path.host, secret: Redacted.value(secret), previousSecretExpiresAt: iso(previousUntil) }
        })
      )
      .handle("test", ({ path }) => Effect.flatMap(addressed(path.host), sendTest))
      .handle("enable", ({ path }) =>
        Effect.gen(function* () {
          const hook = yield* addressed(path.host)
          yield* admin.enable(hook.host)
          return publicView(hook)
        })
      )
  })
)
