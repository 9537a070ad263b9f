import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Data, Schema } from "effect"
import { HookFields, HostPattern, TargetUrl, type Hook } from "./Hook.ts"

/** What the admin API shows of hooks and numbers (`…View`), and the payloads that change them (`…Changes`). */

const Source = Schema.Literal("file", "http", "api")

/** Secrets, header values and credentials are write-only: a view says whether a hook has them, never what they are. */
export const HookView = Schema.Struct({
  host: Schema.String,
  url: Schema.String,
  events: Schema.NullOr(Schema.Array(Schema.String)),
  rateLimit: Schema.NullOr(Schema.String),
  maxAge: Schema.NullOr(Schema.String),
  source: Source,
  hasOwnSecret: Schema.Boolean,
  /** The names of the hook's own headers; their values are never shown. */
  headers: Schema.Array(Schema.String).annotations({ description: "The names of the hook's own headers; values are never shown." }),
  /** Whether deliveries carry the hook's `auth` as `Authorization`; the credentials are never shown. */
  hasAuth: Schema.Boolean.annotations({ description: "Whether deliveries carry the hook's auth as Authorization; credentials are never shown." }),
  /** Auto-disabled after failing for `delivery.disableAfter`: nothing is sent until it is enabled. */
  disabled: Schema.Boolean.annotations({ description: "Disabled after failing for delivery.disableAfter: nothing is sent until POST /v1/hooks/{host}/enable." }),
  disabledAt: Schema.NullOr(Schema.String).annotations({ description: "When it was disabled (ISO 8601), or null." })
}).annotations({ identifier: "Hook" })
export type HookView = typeof HookView.Type

export const HookListView = Schema.Struct({ hooks: Schema.Array(HookView) })

/** Unknown fields (or query parameters) are refused, so a typo (`evnets`) is not silently ignored. */
export const strict = { parseOptions: { onExcessProperty: "error" } } as const

/** `PUT /v1/hooks/{host}`: the whole hook; fields left out are cleared. */
export const HookChanges = HookFields.annotations({ ...strict, identifier: "HookChanges" })

/** The fields a hook may be without: a PUT that leaves one out, or a PATCH that sets it to null, takes it away. */
export const CLEARABLE = ["events", "rateLimit", "maxAge", "headers", "auth"] as const
export type Clearable = (typeof CLEARABLE)[number]

/** A field a patch may set, or clear with null. */
const clearable = <S extends Schema.Schema.Any>({ from }: Schema.optional<S>) =>
  Schema.optional(Schema.NullOr(from)).annotations({ description: "as in PUT; null removes it" })

/** `PATCH /v1/hooks/{host}`: only the fields given change; null removes an optional one. */
export const HookPatch = Schema.Struct({
  url: Schema.optional(TargetUrl).annotations({ description: "as in PUT; a hook always has one, so it cannot be removed" }),
  secret: Schema.optional(HookFields.fields.secret.from).annotations({
    description: "a new secret, signing alone from now on (POST …/rotate-secret keeps the old one signing for an overlap); it cannot be removed"
  }),
  events: clearable(HookFields.fields.events),
  rateLimit: clearable(HookFields.fields.rateLimit),
  maxAge: clearable(HookFields.fields.maxAge),
  headers: clearable(HookFields.fields.headers),
  auth: clearable(HookFields.fields.auth)
}).annotations({ ...strict, identifier: "HookPatch" })
export type HookPatch = typeof HookPatch.Type

/** The hook with the patch applied: given fields replace its own, null ones are removed, the rest kept. */
export const patched = <H extends Hook>(hook: H, patch: HookPatch): H => {
  const next: Record<string, unknown> = { ...hook }
  for (const [field, value] of Object.entries(patch)) {
    if (value === null) delete next[field]
    else if (value !== undefined) next[field] = value
  }
  return next as H
}

/** What a change took away: the optional fields the hook had before it and has no more. */
export const clearedBy = (before: Hook, after: Hook): ReadonlyArray<Clearable> =>
  CLEARABLE.filter((field) => before[field] !== undefined && after[field] === undefined)

/**
 * 201 and 200 answers share their fields; a created one is an instance of its
 * own class, so the status follows from what the handler returns (and the
 * client tells them apart the same way).
 */
const createdView = <A extends object, I>(view: Schema.Schema<A, I>, Class: new (fields: A) => A, identifier: string) =>
  Schema.transform(view, Schema.declare((u): u is A => u instanceof Class), { strict: true, decode: (fields) => new Class(fields), encode: (created) => created }).annotations({
    identifier,
    ...HttpApiSchema.annotations({ status: 201 })
  })

const Cleared = Schema.Array(Schema.Literal(...CLEARABLE)).annotations({
  description: "the fields the change took away, which the hook had before it: those a PUT left out, or a PATCH set to null"
})

/** A generated secret is in this answer only; the router never shows it again. A replaced hook's answer says what it lost. */
export const SavedHookView = Schema.Struct({ ...HookView.fields, secret: Schema.optional(Schema.String), cleared: Schema.optional(Cleared) }).annotations({
  identifier: "SavedHook"
})
export type SavedHookView = typeof SavedHookView.Type

/** `PATCH /v1/hooks/{host}`: the hook as changed, and what the change removed. */
export const PatchedHookView = Schema.Struct({ ...HookView.fields, cleared: Cleared }).annotations({ identifier: "PatchedHook" })
export type PatchedHookView = typeof PatchedHookView.Type

export class HookCreated extends Data.Class<SavedHookView> {}
export const HookCreatedView = createdView(SavedHookView, HookCreated, "HookCreated")

/** One signed `router.test` event, sent without retries, and the tenant's answer. */
export const TestResultView = Schema.Struct({
  host: Schema.String,
  url: Schema.String,
  eventId: Schema.String,
  delivered: Schema.Boolean,
  status: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(Schema.String),
  latencyMs: Schema.Number
})
export type TestResultView = typeof TestResultView.Type

/** The new secret, shown once; the old one keeps signing until `previousSecretExpiresAt`. */
export const RotationView = Schema.Struct({ host: Schema.String, secret: Schema.String, previousSecretExpiresAt: Schema.String })
export type RotationView = typeof RotationView.Type

export const NumberView = Schema.Struct({ number: Schema.String, host: Schema.String, source: Source }).annotations({ identifier: "Number" })
export type NumberView = typeof NumberView.Type

export const NumberListView = Schema.Struct({ numbers: Schema.Array(NumberView) })

/** `PUT /v1/numbers/{e164}`: the hook host the number routes to. */
export const NumberChanges = Schema.Struct({ host: HostPattern }).annotations({ ...strict, identifier: "NumberChanges" })

export class NumberCreated extends Data.Class<NumberView> {}
export const NumberCreatedView = createdView(NumberView, NumberCreated, "NumberCreated")
