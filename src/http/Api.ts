import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import { Context, Schema } from "effect"
import { TokenChanges, TokenCreatedView, TokenId, TokenListView } from "../domain/AdminToken.ts"
import { CallDetailView, CallListParams, CallPageView } from "../domain/CallViews.ts"
import {
  DeliveryDetailView,
  DeliveryId,
  DeliveryListParams,
  DeliveryPageView,
  DeliveryView,
  RecoverParams,
  RecoveryView,
  ReplayRequest,
  ReplayView,
  RoomName,
  UnroutableDomainListView,
  UnroutableListParams,
  UnroutableListView
} from "../domain/DeliveryViews.ts"
import { ExplainRequest, ExplainView } from "../domain/ExplainViews.ts"
import { PortalLinkView, RedeemRequest, SESSION_COOKIE, SessionView, SignInRequest } from "../domain/Session.ts"
import { OverviewView } from "../domain/OverviewViews.ts"
import { StreamHeaders, StreamParams } from "../domain/DeliveryStream.ts"
import { BadRequestView, ConflictView, ForbiddenView, InternalView, NotFoundView, NotImplementedView, PayloadTooLargeView, ShuttingDownView, StoreUnavailableView, UnauthorizedView } from "../domain/ErrorViews.ts"
import { HostPattern, NumberText } from "../domain/Hook.ts"
import {
  HookChanges,
  HookCreatedView,
  HookListView,
  HookPatch,
  HookView,
  NumberChanges,
  NumberCreatedView,
  NumberListView,
  NumberView,
  PatchedHookView,
  RotationView,
  SavedHookView,
  TestResultView
} from "../domain/HookViews.ts"

/**
 * The admin API, defined once: the router serves it (handlers in the
 * *Handlers.ts files beside this one), `/openapi.json` and `/docs` describe
 * it, and the CLI's client is derived from it.
 */

/** Who is calling: an operator sees every host; a tenant token only its own. */
export type Principal = { readonly _tag: "Operator" } | { readonly _tag: "Tenant"; readonly hosts: ReadonlyArray<string> }

export class CurrentPrincipal extends Context.Tag("CurrentPrincipal")<CurrentPrincipal, Principal>() {}

/**
 * Operator and tenant bearer tokens, or the console's session cookie (see
 * Authorization.ts); a token made through the API is looked up in the store.
 * Every group but the sign-in one has it, on each endpoint after the JsonBody
 * middleware, so it runs first: nothing is read from an unauthorised request.
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: Schema.Union(UnauthorizedView, ForbiddenView, StoreUnavailableView),
  provides: CurrentPrincipal,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * A JSON body read within `server.maxBodyBytes` and nested at most 32 levels,
 * before HttpApi decodes the payload from it (see JsonBody.ts): it provides
 * the request the payload is read from.
 */
export class JsonBody extends HttpApiMiddleware.Tag<JsonBody>()("JsonBody", {
  failure: Schema.Union(PayloadTooLargeView, BadRequestView),
  provides: HttpServerRequest.HttpServerRequest
}) {}

const host = HttpApiSchema.param("host", HostPattern)
const number = HttpApiSchema.param("number", NumberText)
const id = HttpApiSchema.param("id", DeliveryId)
const room = HttpApiSchema.param("room", RoomName)
const tokenId = HttpApiSchema.param("id", TokenId)

export class HooksGroup extends HttpApiGroup.make("hooks")
  .add(HttpApiEndpoint.get("list", "/v1/hooks").addSuccess(HookListView).annotate(OpenApi.Summary, "List hooks"))
  .add(HttpApiEndpoint.get("get")`/v1/hooks/${host}`.addSuccess(HookView).addError(NotFoundView).annotate(OpenApi.Summary, "Get a hook"))
  .add(
    HttpApiEndpoint.put("put")`/v1/hooks/${host}`
      .setPayload(HookChanges)
      // The created answer first: a replaced hook (a plain view) is not one, and falls through to 200.
      .addSuccess(HookCreatedView)
      .addSuccess(SavedHookView)
      .addError(ConflictView)
      // Only when a concurrent DELETE removes the hook before it is read back.
      .addError(NotFoundView)
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Create or replace an API hook")
      .annotate(OpenApi.Description, "Fields left out are cleared; a replaced hook's answer names them in `cleared`. PATCH changes only the fields it is given.")
  )
  .add(
    HttpApiEndpoint.patch("patch")`/v1/hooks/${host}`
      .setPayload(HookPatch)
      .addSuccess(PatchedHookView)
      .addError(NotFoundView)
      .addError(ConflictView)
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Change some fields of an API hook")
      .annotate(
        OpenApi.Description,
        "Only the fields given change; the others, the secret included, are kept. null removes an optional field (events, rateLimit, maxAge, headers, auth); `cleared` names those it removed. 404 for an unknown host, 409 for a hook from the config file or the HTTP source."
      )
  )
  .add(
    HttpApiEndpoint.del("remove")`/v1/hooks/${host}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFoundView)
      .addError(ConflictView)
      .annotate(OpenApi.Summary, "Remove an API hook")
  )
  .add(
    HttpApiEndpoint.post("rotateSecret")`/v1/hooks/${host}/rotate-secret`
      .addSuccess(RotationView)
      .addError(NotFoundView)
      .addError(ConflictView)
      .annotate(OpenApi.Summary, "Rotate a hook's secret")
  )
  .add(
    HttpApiEndpoint.post("test")`/v1/hooks/${host}/test`
      .addSuccess(TestResultView)
      .addError(NotFoundView)
      .annotate(OpenApi.Summary, "Send one signed router.test event")
  )
  .add(
    HttpApiEndpoint.post("enable")`/v1/hooks/${host}/enable`
      .addSuccess(HookView)
      .addError(NotFoundView)
      .annotate(OpenApi.Summary, "Enable a hook its failures disabled")
      .annotate(OpenApi.Description, "New deliveries flow again; those that ended failed (disabled) are replayed by POST /v1/tenants/{host}/recover.")
  ) {}

export class NumbersGroup extends HttpApiGroup.make("numbers")
  .add(HttpApiEndpoint.get("list", "/v1/numbers").addSuccess(NumberListView).annotate(OpenApi.Summary, "List dialled numbers"))
  .add(HttpApiEndpoint.get("get")`/v1/numbers/${number}`.addSuccess(NumberView).addError(NotFoundView).annotate(OpenApi.Summary, "Get a number's route"))
  .add(
    HttpApiEndpoint.put("put")`/v1/numbers/${number}`
      .setPayload(NumberChanges)
      .addSuccess(NumberCreatedView)
      .addSuccess(NumberView)
      .addError(ConflictView)
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Route a dialled number to a hook host")
  )
  .add(
    HttpApiEndpoint.del("remove")`/v1/numbers/${number}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFoundView)
      .addError(ConflictView)
      .annotate(OpenApi.Summary, "Remove a number's route")
  ) {}

export class DeliveriesGroup extends HttpApiGroup.make("deliveries")
  .add(
    HttpApiEndpoint.get("list", "/v1/deliveries")
      .setUrlParams(DeliveryListParams)
      .addSuccess(DeliveryPageView)
      .annotate(OpenApi.Summary, "List deliveries, newest first")
      .annotate(OpenApi.Description, "A tenant token must name one of its hosts with `?tenant=`.")
  )
  .add(HttpApiEndpoint.get("get")`/v1/deliveries/${id}`.addSuccess(DeliveryDetailView).addError(NotFoundView).annotate(OpenApi.Summary, "Get a delivery with its attempts"))
  .add(
    HttpApiEndpoint.post("retry")`/v1/deliveries/${id}/retry`
      .addSuccess(DeliveryView, { status: 202 })
      .addError(NotFoundView)
      .addError(ConflictView)
      .annotate(OpenApi.Summary, "Requeue a failed delivery")
  ) {}

export class TenantsGroup extends HttpApiGroup.make("tenants")
  .add(
    HttpApiEndpoint.post("recover")`/v1/tenants/${host}/recover`
      .setUrlParams(RecoverParams)
      .addSuccess(RecoveryView, { status: 202 })
      .annotate(OpenApi.Summary, "Requeue a tenant's failed deliveries created since a time")
  )
  .add(
    HttpApiEndpoint.post("portalLink")`/v1/tenants/${host}/portal-links`
      .addSuccess(PortalLinkView, { status: 201 })
      .annotate(OpenApi.Summary, "A single-use link that signs a tenant into the console for this host (operators only)")
      .annotate(
        OpenApi.Description,
        "Valid for `admin.portalLinkTtl`, once. Its secret is in the URL fragment, which browsers never send to a server; opening it signs the tenant in with a tenant token's confinement to the host."
      )
  ) {}

/** Signing in to the console: the only endpoints that take no credential. */
export class SignInGroup extends HttpApiGroup.make("signIn")
  .add(
    HttpApiEndpoint.post("signIn", "/v1/sessions")
      .setPayload(SignInRequest)
      .addSuccess(SessionView, { status: 201 })
      .addError(UnauthorizedView)
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Exchange an admin or tenant token for a console session cookie")
      .annotate(OpenApi.Description, "The session has the token's rights, as they are on each request: revoking the token ends it. It lasts `admin.sessionTtl`.")
  )
  .add(
    HttpApiEndpoint.post("redeem", "/v1/portal-links/redeem")
      .setPayload(RedeemRequest)
      .addSuccess(SessionView, { status: 201 })
      .addError(UnauthorizedView)
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Open a tenant portal link (once) for a console session cookie")
  ) {}

export class SessionGroup extends HttpApiGroup.make("session")
  .add(HttpApiEndpoint.get("current", "/v1/sessions/current").addSuccess(SessionView).annotate(OpenApi.Summary, "Who the credential speaks for"))
  .add(
    HttpApiEndpoint.del("signOut", "/v1/sessions/current")
      .addSuccess(HttpApiSchema.NoContent)
      .annotate(OpenApi.Summary, "End the console session, on every instance, and clear its cookie")
  ) {}

export class CallsGroup extends HttpApiGroup.make("calls")
  .add(
    HttpApiEndpoint.get("list", "/v1/calls")
      .setUrlParams(CallListParams)
      .addSuccess(CallPageView)
      .annotate(OpenApi.Summary, "List calls, newest first")
      .annotate(
        OpenApi.Description,
        "Newest first by start (first seen, for a call that never started). `number` matches the caller's or the dialled number in any spelling; `since` is inclusive, `until` exclusive. A tenant token lists the calls of its own hosts; `tenant=` must be one of them."
      )
  )
  .add(
    HttpApiEndpoint.get("get")`/v1/calls/${room}`
      .addSuccess(CallDetailView)
      .addError(NotFoundView)
      .annotate(OpenApi.Summary, "Get a call with its timeline, by room name (the newest call of that name) or room sid")
  ) {}

export class UnroutableGroup extends HttpApiGroup.make("unroutable")
  .add(
    HttpApiEndpoint.get("list", "/v1/unroutable")
      .setUrlParams(UnroutableListParams)
      .addSuccess(UnroutableListView)
      .annotate(OpenApi.Summary, "Recent SIP events that reached no tenant (operators only)")
  )
  .add(
    HttpApiEndpoint.get("domains", "/v1/unroutable/domains")
      .addSuccess(UnroutableDomainListView)
      .annotate(OpenApi.Summary, "The unroutable events still kept, by domain and reason, most recently seen first (operators only)")
  )
  .add(
    HttpApiEndpoint.post("replay", "/v1/unroutable/replay")
      .setPayload(ReplayRequest)
      .addSuccess(ReplayView)
      .addError(ConflictView)
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Route again the calls a domain's hook came too late for (operators only)")
      .annotate(
        OpenApi.Description,
        "The stored unroutable events of the domain, with the other events of their calls that reached no tenant, routed through today's table in their original order per call, as if just arrived. Each event is replayed once. 409 while no hook matches the domain."
      )
  ) {}

export class ExplainGroup extends HttpApiGroup.make("explain").add(
  HttpApiEndpoint.post("explain", "/v1/explain")
    .setPayload(ExplainRequest)
    .addSuccess(ExplainView)
    .middleware(JsonBody)
    .annotate(OpenApi.Summary, "Where the router would send a call with these SIP attributes now, and why (operators only)")
) {}

export class StreamGroup extends HttpApiGroup.make("stream").add(
  HttpApiEndpoint.get("stream", "/v1/stream")
    .setUrlParams(StreamParams)
    .setHeaders(StreamHeaders)
    .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({ description: "Server-Sent Events, until the client leaves or the router stops" }))
    .addError(ShuttingDownView)
    .annotate(OpenApi.Summary, "A live stream of delivery changes (Server-Sent Events)")
    .annotate(
      OpenApi.Description,
      "An event (`id:` and one line of JSON `data:`) when a delivery is queued and after each attempt or expiry; a comment at once and every 15 s. " +
        "Last-Event-ID (or `?lastEventId=`) resumes with what the store still holds; without it, only newer changes. " +
        "A client that does not keep up is disconnected, to resume. A tenant token streams its own hosts."
    )
) {}

export class TokensGroup extends HttpApiGroup.make("tokens")
  .add(
    HttpApiEndpoint.post("create", "/v1/tokens")
      .setPayload(TokenChanges)
      .addSuccess(TokenCreatedView, { status: 201 })
      .middleware(JsonBody)
      .annotate(OpenApi.Summary, "Make a tenant token for some hosts (operators only)")
      .annotate(
        OpenApi.Description,
        "The token is in this answer only: the router keeps its SHA-256, never the token. It works at once on every instance, like a file tenant token for the same hosts."
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/tokens")
      .addSuccess(TokenListView)
      .annotate(OpenApi.Summary, "The tenant tokens made through the API, oldest first, without the tokens (operators only)")
  )
  .add(
    HttpApiEndpoint.del("revoke")`/v1/tokens/${tokenId}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFoundView)
      .annotate(OpenApi.Summary, "Revoke a token: refused from the next request on, on every instance (operators only)")
  ) {}

export class OverviewGroup extends HttpApiGroup.make("overview").add(
  HttpApiEndpoint.get("overview", "/v1/overview")
    .addSuccess(OverviewView)
    .annotate(OpenApi.Summary, "The last hour of delivery attempts, the queue, failing and disabled tenants, and the top unroutable domains (operators only)")
    .annotate(
      OpenApi.Description,
      "Attempts are counted per minute as they are recorded (each minute's tally is written with its attempts), so this reads at most 60 tallies, never the attempts. " +
        "The newest minute is the one in progress; p99Ms is the upper bound of the latency bucket that holds the 99th percentile."
    )
) {}

/** The SQLite database file itself, as a router opens it. */
export const BACKUP_CONTENT_TYPE = "application/vnd.sqlite3"

export class BackupGroup extends HttpApiGroup.make("backup").add(
  HttpApiEndpoint.get("backup", "/v1/backup")
    .addSuccess(HttpApiSchema.Uint8Array({ contentType: BACKUP_CONTENT_TYPE }).annotations({ description: "The SQLite database file: a router started on it serves from that point" }))
    .addError(NotImplementedView)
    .annotate(OpenApi.Summary, "A consistent snapshot of the SQLite store, taken while the router keeps serving (operators only)")
    .annotate(
      OpenApi.Description,
      "The body is the database as of the last commit (SQLite's VACUUM INTO), every acknowledged event and pending delivery in it. " +
        "Restore by stopping the router, putting the file in place of the store's file and starting it. On the Redis store: 501, since Redis is backed up on its own side (AOF or RDB)."
    )
).add(
  HttpApiEndpoint.post("reencrypt", "/v1/store/reencrypt")
    .addSuccess(Schema.Struct({ rewritten: Schema.Number, keyId: Schema.String }))
    .addError(ConflictView)
    .annotate(OpenApi.Summary, "Encrypt every secret the store holds with the first key of store.encryptionKey, plain ones too (operators only)")
    .annotate(OpenApi.Description, "Then a start with that key alone succeeds (see Encryption at rest in docs/operations.md). 409 without a key.")
) {}

/**
 * Two corrections to the generated document, so it says what the router does:
 * every operation that takes the bearer token takes the console's session
 * cookie instead (one middleware reads both; see Authorization.ts), and every
 * decode error is answered as `bad_request` (see AdminRoutes.ts), never in
 * HttpApi's own HttpApiDecodeError shape.
 */
const DECODE_ERROR = "#/components/schemas/HttpApiDecodeError"
const documentedAsServed = (spec: Record<string, any>) => {
  spec.components.securitySchemes.session = { type: "apiKey", in: "cookie", name: SESSION_COOKIE }
  for (const operations of Object.values<Record<string, any>>(spec.paths)) {
    for (const operation of Object.values<Record<string, any>>(operations)) {
      const security: Array<Record<string, Array<string>>> | undefined = operation.security
      if (security?.some((scheme) => "bearer" in scheme)) security.push({ session: [] })
      const media = operation.responses?.["400"]?.content?.["application/json"]
      const options: Array<{ $ref?: string }> | undefined = media?.schema?.anyOf
      if (options) {
        const kept = options.filter((option) => option.$ref !== DECODE_ERROR)
        media.schema = kept.length === 1 ? kept[0] : { anyOf: kept }
      }
    }
  }
  for (const name of ["HttpApiDecodeError", "Issue", "PropertyKey"]) delete spec.components.schemas[name]
  return spec
}

export class AdminApi extends HttpApi.make("admin")
  .add(HooksGroup.middlewareEndpoints(Authorization))
  .add(NumbersGroup.middlewareEndpoints(Authorization))
  .add(DeliveriesGroup.middlewareEndpoints(Authorization))
  .add(TenantsGroup.middlewareEndpoints(Authorization))
  .add(CallsGroup.middlewareEndpoints(Authorization))
  .add(UnroutableGroup.middlewareEndpoints(Authorization))
  .add(ExplainGroup.middlewareEndpoints(Authorization))
  .add(StreamGroup.middlewareEndpoints(Authorization))
  .add(TokensGroup.middlewareEndpoints(Authorization))
  .add(OverviewGroup.middlewareEndpoints(Authorization))
  .add(BackupGroup.middlewareEndpoints(Authorization))
  .add(SessionGroup.middlewareEndpoints(Authorization))
  .add(SignInGroup)
  .addError(BadRequestView)
  .addError(ForbiddenView)
  .addError(StoreUnavailableView)
  .addError(InternalView)
  .annotate(OpenApi.Transform, (spec) => documentedAsServed(spec))
  .annotate(OpenApi.Title, "sip-tenant-router admin API")
  .annotate(OpenApi.Description, 'Errors are `{"error":{"code","message"}}`; a 400 names the field at fault.') {}
