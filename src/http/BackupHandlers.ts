import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { open, type FileHandle } from "node:fs/promises"
import { Effect } from "effect"
import { StoreUnavailable } from "../domain/Errors.ts"
import { Backups } from "../store/Backups.ts"
import { SecretsAtRest } from "../store/SecretsAtRest.ts"
import { AdminApi, BACKUP_CONTENT_TYPE, CurrentPrincipal } from "./Api.ts"
import { requireOperator } from "./Authorization.ts"

const CHUNK_BYTES = 256 * 1024

/** The open file's bytes, read as the client takes them; the file is closed at its end, and when the client leaves. */
const fileBody = (file: FileHandle): ReadableStream<Uint8Array> =>
  new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = new Uint8Array(CHUNK_BYTES)
        const { bytesRead } = await file.read(chunk, 0, CHUNK_BYTES, null)
        if (bytesRead > 0) return controller.enqueue(chunk.subarray(0, bytesRead))
        await file.close()
        controller.close()
      } catch (error) {
        await file.close().catch(() => {})
        controller.error(error)
      }
    },
    cancel: () => file.close()
  })

/** A name that says what and when, e.g. router-2026-12-07T17-20-39Z.db. */
const fileName = (now: Date) => `router-${now.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-")}.db`

/**
 * `GET /v1/backup`: the store's snapshot file is opened, then removed at once
 * (the scope closes): the open file keeps its bytes for the stream, so nothing
 * is left on disk whether the client reads to the end or leaves.
 */
export const BackupLive = HttpApiBuilder.group(AdminApi, "backup", (handlers) =>
  Effect.gen(function* () {
    const backups = yield* Backups
    const secrets = yield* SecretsAtRest
    return handlers.handleRaw("backup", () =>
      Effect.gen(function* () {
        yield* Effect.flatMap(CurrentPrincipal, requireOperator)
        const { file, size } = yield* Effect.scoped(
          Effect.flatMap(backups.snapshot, (path) =>
            Effect.tryPromise({
              try: async () => {
                const file = await open(path, "r")
                return { file, size: (await file.stat()).size }
              },
              catch: (cause) => new StoreUnavailable({ cause })
            })
          )
        )
        yield* Effect.log("backup taken").pipe(Effect.annotateLogs({ bytes: size }))
        return HttpServerResponse.raw(fileBody(file), {
          contentType: BACKUP_CONTENT_TYPE,
          headers: { "content-length": String(size), "content-disposition": `attachment; filename="${fileName(new Date())}"`, "cache-control": "no-store" }
        })
      })
    ).handle("reencrypt", () => Effect.zipRight(Effect.flatMap(CurrentPrincipal, requireOperator), secrets.reencrypt))
  })
)
