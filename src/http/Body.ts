import { PayloadTooLarge } from "../domain/Errors.ts"

/** A body that streams past the limit is cancelled at the first chunk over it. */
const readStreamWithin = async (body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | PayloadTooLarge> => {
  const reader = body.getReader()
  const chunks: Array<Uint8Array> = []
  let length = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return Buffer.concat(chunks)
    length += value.byteLength
    if (length > limit) {
      void reader.cancel().catch(() => {})
      return PayloadTooLarge.over(limit)
    }
    chunks.push(value)
  }
}

/**
 * Reads a request body of at most `limit` bytes, whatever the client sends:
 * a declared Content-Length over the limit is refused unread, and a chunked
 * body is read only up to the limit, so no more than that is ever buffered.
 * A client that hangs up mid-body is answered as too large (it is gone, and
 * nothing of its event was accepted).
 */
export const readBodyWithin = async (request: Request, limit: number): Promise<Uint8Array | PayloadTooLarge> => {
  const declared = request.headers.get("content-length")
  if (declared !== null && Number(declared) > limit) return PayloadTooLarge.over(limit)
  try {
    // With a Content-Length within the limit, HTTP framing bounds the body: read it natively, in one step.
    if (declared !== null && !request.headers.has("transfer-encoding")) return new Uint8Array(await request.arrayBuffer())
    return request.body === null ? new Uint8Array(0) : await readStreamWithin(request.body, limit)
  } catch {
    return PayloadTooLarge.over(limit)
  }
}
