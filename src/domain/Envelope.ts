import type { CallInfo } from "./Delivery.ts"

/**
 * The body a tenant receives. `data` is JSON text spliced in as it is: the LiveKit
 * event as received (never re-serialised, so int64 strings and unknown fields reach
 * the tenant intact), or the fields of a call event.
 */
export const envelope = (input: {
  readonly type: string
  readonly timestampMs: number
  readonly tenant: string
  readonly call: CallInfo
  readonly data: string
}): string =>
  `{"type":${JSON.stringify(input.type)},"timestamp":${JSON.stringify(new Date(input.timestampMs).toISOString())},` +
  `"tenant":${JSON.stringify(input.tenant)},"call":${JSON.stringify(input.call)},"data":${input.data.trim()}}`
