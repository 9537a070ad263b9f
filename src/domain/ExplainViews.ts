import { Schema } from "effect"
import { UnroutableReason } from "./Call.ts"
import { strict } from "./HookViews.ts"

/** `POST /v1/explain`: the SIP attributes of a call, and the decision the router would make for them now. */

/** The attributes the router routes by, as LiveKit sets them from the SIP edge; any of them may be left out. */
export const ExplainRequest = Schema.Struct({
  attributes: Schema.Struct({
    "sip.h.x-to-ip": Schema.optionalWith(Schema.String, { exact: true }).annotations({ description: "the request URI's host, as Kamailio copies it" }),
    "sip.h.to": Schema.optionalWith(Schema.String, { exact: true }).annotations({ description: "the To header" }),
    "sip.trunkPhoneNumber": Schema.optionalWith(Schema.String, { exact: true }).annotations({ description: "the dialled number" })
  }).annotations(strict)
}).annotations({ ...strict, identifier: "ExplainRequest" })

export const ExplainStepView = Schema.Struct({
  source: Schema.Literal("sip.h.x-to-ip", "sip.h.to", "sip.trunkPhoneNumber"),
  value: Schema.NullOr(Schema.String).annotations({ description: "the attribute as sent (cut to 256 characters), or null" }),
  domain: Schema.NullOr(Schema.String).annotations({ description: "the domain it gave (for the dialled number, its E.164 form), or null" }),
  outcome: Schema.Literal("absent", "unparseable", "no_hook", "matched", "skipped").annotations({
    description: "absent: not sent or blank; unparseable: no host (or number) in it; no_hook: no hook claims what it gave; matched: it chose the tenant; skipped: not consulted"
  })
}).annotations({ identifier: "ExplainStep" })

export const ExplainView = Schema.Struct({
  routed: Schema.Boolean,
  tenant: Schema.NullOr(Schema.String).annotations({ description: "the hook host the call would go to, or null" }),
  url: Schema.NullOr(Schema.String),
  rule: Schema.NullOr(Schema.Literal("exact", "wildcard", "number")),
  pattern: Schema.NullOr(Schema.String).annotations({ description: "the hook host or the number that matched" }),
  reason: Schema.NullOr(UnroutableReason).annotations({ description: "why no tenant, as GET /v1/unroutable would record it; null when routed" }),
  steps: Schema.Array(ExplainStepView),
  hints: Schema.Array(Schema.String).annotations({ description: "what an operator could do: the hook host or number the call nearly matched, a disabled hook" })
}).annotations({ identifier: "Explanation" })
export type ExplainView = typeof ExplainView.Type
