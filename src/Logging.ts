import { Cause, HashMap, Logger } from "effect"

const plain = (value: unknown): unknown => (value instanceof Error ? value.message : value)

/**
 * One JSON object per line on stdout: `time`, `level`, `msg`, then the log's
 * annotations as top-level fields, so lines can be grepped and shipped as-is.
 * Nothing secret is ever annotated.
 */
export const jsonLogger = Logger.make(({ logLevel, message, annotations, date, cause }) => {
  const [msg, ...details] = Array.isArray(message) ? message : [message]
  const record: Record<string, unknown> = { time: date.toISOString(), level: logLevel.label.toLowerCase(), msg: String(msg) }
  for (const [key, value] of HashMap.toEntries(annotations)) record[key] = value
  if (details.length > 0) record.detail = details.map(plain)
  if (!Cause.isEmpty(cause)) record.cause = Cause.pretty(cause)
  process.stdout.write(JSON.stringify(record) + "\n")
})

export const JsonLogging = Logger.replace(Logger.defaultLogger, jsonLogger)

