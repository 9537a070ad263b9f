import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireAccess } from "./Authorization.ts"
import { StreamHub, type StreamScope } from "./StreamHub.ts"

/**
 * `GET /v1/stream`: the caller's scope is settled here, once (a tenant named
 * must be the token's: else 403); the hub then streams it. The body is a
 * plain ReadableStream, so Effect's router is paid once per connection, not
 * per event.
 */
export const StreamLive = HttpApiBuilder.group(AdminApi, "stream", (handlers) =>
  Effect.gen(function* () {
    const hub = yield* StreamHub
    return handlers.handleRaw("stream", ({ urlParams, headers }) =>
      Effect.gen(function* () {
        const principal = yield* CurrentPrincipal
        if (urlParams.tenant !== undefined) yield* requireAccess(principal, urlParams.tenant)
        const scope: StreamScope =
          urlParams.tenant !== undefined ? { _tag: "Tenant", tenant: urlParams.tenant } : principal._tag === "Operator" ? { _tag: "All" } : { _tag: "Hosts", principal }
        // The header is what a reconnecting EventSource sends, so it is newer than the URL's.
        const body = yield* hub.open(scope, urlParams.bodies ?? false, headers["last-event-id"] ?? urlParams.lastEventId)
        return HttpServerResponse.raw(body, {
          contentType: "text/event-stream",
          // No proxy may hold the events back or keep them.
          headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
        })
      })
    )
  })
)
