import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { DeliveryAdmin } from "../delivery/DeliveryAdmin.ts"
import { AdminApi, CurrentPrincipal } from "./Api.ts"
import { requireAccess } from "./Authorization.ts"

export const TenantsLive = HttpApiBuilder.group(AdminApi, "tenants", (handlers) =>
  Effect.gen(function* () {
    const admin = yield* DeliveryAdmin
    return handlers.handle("recover", ({ path: { host }, urlParams: { since } }) =>
      Effect.gen(function* () {
        yield* requireAccess(yield* CurrentPrincipal, host)
        const requeued = yield* admin.recover(host, since.getTime())
        return { tenant: host, since: since.toISOString(), requeued }
      })
    )
  })
)
