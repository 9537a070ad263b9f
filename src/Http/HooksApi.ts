import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { HookFields, HostPattern, type ActiveHook, type Hook } from "../Domain/Hook.ts"
import { HookTable } from "../HookTable.ts"
import { generateSecret } from "../Signing.ts"
import { admin, decodeBody, decodeParam } from "./Admin.ts"

/** Secrets are write-only: listings say whether a hook has its own, never what it is. */
const publicView = (hook: ActiveHook) => ({
  host: hook.host,
  url: hook.url,
  events: hook.events ?? null,
  rateLimit: hook.rateLimit ?? null,
  source: hook.source,
  hasOwnSecret: hook.secret !== undefined
})

const hostParam = decodeParam("host", HostPattern)

const ListHooks = HttpLayerRouter.add(
  "GET",
  "/v1/hooks",
  admin(
    Effect.gen(function* () {
      const hooks = yield* (yield* HookTable).list
      return HttpServerResponse.unsafeJson({ hooks: hooks.map(publicView) })
    })
  )
)

const PutHook = HttpLayerRouter.add("PUT", "/v1/hooks/:host", (request) =>
  admin(
    Effect.gen(function* () {
      const host = yield* hostParam
      const fields = yield* decodeBody(HookFields, request)
      // A hook without a secret of its own gets a fresh one, shown only in this response.
      const generated = fields.secret === undefined ? generateSecret() : undefined
      const hook: Hook = { host, url: fields.url, events: fields.events, rateLimit: fields.rateLimit, secret: fields.secret ?? generated }
      const outcome = yield* (yield* HookTable).put(hook)
      return HttpServerResponse.unsafeJson(
        { ...publicView({ ...hook, source: "api" }), ...(generated ? { secret: generated } : {}) },
        { status: outcome === "created" ? 201 : 200 }
      )
    })
  )
)

const DeleteHook = HttpLayerRouter.add(
  "DELETE",
  "/v1/hooks/:host",
  admin(
    Effect.gen(function* () {
      yield* (yield* HookTable).remove(yield* hostParam)
      return HttpServerResponse.empty({ status: 204 })
    })
  )
)

export const HooksApi = Layer.mergeAll(ListHooks, PutHook, DeleteHook)
