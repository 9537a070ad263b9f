import { createHash, createHmac } from "node:crypto"
import { AccessToken } from "livekit-server-sdk"

export const API_KEY = "APItestkey"
export const API_SECRET = "test-api-secret-0123456789abcdef0123"

/** Authorization exactly as the LiveKit server makes it: AccessToken with the body's SHA-256, 5 min TTL. */
export const signAsLiveKit = async (body: string, key = API_KEY, secret = API_SECRET): Promise<string> => {
  const token = new AccessToken(key, secret, { ttl: "5m" })
  token.sha256 = createHash("sha256").update(body).digest("base64")
  return token.toJwt()
}

const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url")

/** A hand-made HS256 JWT, for clocks and claims the SDK will not produce (expired, future, other alg). */
export const handMadeToken = (claims: Record<string, unknown>, options: { alg?: string; secret?: string } = {}) => {
  const head = b64url({ alg: options.alg ?? "HS256", typ: "JWT" })
  const payload = b64url(claims)
  const signature = createHmac("sha256", options.secret ?? API_SECRET).update(`${head}.${payload}`).digest("base64url")
  return `${head}.${payload}.${signature}`
}

export const bodyHash = (body: string) => createHash("sha256").update(body).digest("base64")

let counter = 0
export const eventId = () => `EV_${Date.now().toString(36)}_${++counter}_${Math.random().toString(36).slice(2, 8)}`

export interface SipCall {
  readonly room: string
  readonly xToIp?: string | undefined
  readonly to?: string | undefined
  readonly dialled?: string | undefined
  readonly callId?: string | undefined
}

export const sipAttributes = (call: SipCall): Record<string, string> => ({
  "sip.callID": call.callId ?? `SCL_${call.room}`,
  "sip.callStatus": "ringing",
  "sip.phoneNumber": "+15550001111",
  "sip.trunkPhoneNumber": call.dialled ?? "+15557654321",
  "sip.trunkID": "ST_test",
  ...(call.xToIp !== undefined ? { "sip.h.x-to-ip": call.xToIp } : {}),
  ...(call.to !== undefined ? { "sip.h.to": call.to } : {})
})

/** A participant event for a SIP caller, shaped like LiveKit's protojson. */
export const sipParticipantEvent = (event: "participant_joined" | "participant_left", call: SipCall, id = eventId()) => ({
  event,
  room: { sid: `RM_${call.room}`, name: call.room },
  participant: {
    sid: `PA_${call.room}`,
    identity: "sip_+15550001111",
    state: "ACTIVE",
    kind: "SIP",
    attributes: sipAttributes(call)
  },
  id,
  createdAt: String(Math.floor(Date.now() / 1000))
})

/** Track events carry only the participant's sid and identity: no attributes. */
export const trackEvent = (room: string, id = eventId()) => ({
  event: "track_published",
  room: { sid: `RM_${room}`, name: room },
  participant: { sid: `PA_${room}`, identity: "sip_+15550001111" },
  track: { sid: "TR_1", type: "AUDIO", source: "MICROPHONE" },
  id,
  createdAt: String(Math.floor(Date.now() / 1000))
})

export const roomEvent = (event: "room_started" | "room_finished", room: string, id = eventId()) => ({
  event,
  room: { sid: `RM_${room}`, name: room },
  id,
  createdAt: String(Math.floor(Date.now() / 1000))
})

/** Go's protojson inserts random whitespace; the router must hash the bytes as received. */
export const protojsonish = (value: unknown) => JSON.stringify(value).replace(/,"/g, ', "').replace(/":/g, '":  ')
