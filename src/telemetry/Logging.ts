import { Cause, Context, Effect, FiberRef, FiberRefs, HashMap, Logger, Tracer } from "effect"
import { TurnBatch } from "../TurnBatch.ts"

const plain = (value: unknown): unknown => (value instanceof Error ? value.message : value)

// Lines written in one event-loop turn go out in one write: under load that is one syscall, not one per line.
const lines = new TurnBatch<string>((batch) => void process.stdout.write(batch.join("")))
const writeLine = (line: string) => lines.add(line)
process.on("exit", lines.flush)

/** A log line's fields passed with its message: cheaper than annotations where every event logs. */
class LogFields {
  constructor(readonly fields: Readonly<Record<string, unknown>>) {}
}

/** Lines of one message, one per set of fields, logged together (a turn's delivery attempts). */
class LogLines {
  constructor(
    readonly message: string,
    readonly lines: ReadonlyArray<Readonly<Record<string, unknown>>>
  ) {}
}

export const logEach = (message: string, lines: ReadonlyArray<Readonly<Record<string, unknown>>>) =>
  lines.length === 0 ? Effect.void : Effect.log(new LogLines(message, lines))
export const logWarningWith = (message: string, fields: Readonly<Record<string, unknown>>) => Effect.logWarning(message, new LogFields(fields))

/** The span the line is written in, if any: its ids go in the line, so logs and traces can be joined. */
const spanIdsOf = (context: FiberRefs.FiberRefs) => {
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  return span._tag === "Some" ? { trace_id: span.value.traceId, span_id: span.value.spanId } : undefined
}

/**
 * One JSON object per line on stdout: `time`, `level`, `msg`, then the log's
 * annotations as top-level fields, so lines can be grepped and shipped as-is;
 * then `trace_id` and `span_id` when a span is active (fields that carry their
 * own, such as a delivery attempt's, keep theirs). Nothing secret is ever annotated.
 */
export const jsonLogger = Logger.make(({ logLevel, message, annotations, date, cause, context }) => {
  const [msg, ...details] = Array.isArray(message) ? message : [message]
  const span = spanIdsOf(context)
  if (msg instanceof LogLines) {
    const head = { time: date.toISOString(), level: logLevel.label.toLowerCase(), msg: msg.message }
    for (const fields of msg.lines) writeLine(JSON.stringify(span === undefined || "trace_id" in fields ? { ...head, ...fields } : { ...head, ...fields, ...span }) + "\n")
    return
  }
  const record: Record<string, unknown> = { time: date.toISOString(), level: logLevel.label.toLowerCase(), msg: String(msg) }
  for (const [key, value] of HashMap.toEntries(annotations)) record[key] = value
  const rest = details.filter((detail) => !(detail instanceof LogFields && Object.assign(record, detail.fields)))
  if (rest.length > 0) record.detail = rest.map(plain)
  if (!Cause.isEmpty(cause)) record.cause = Cause.pretty(cause)
  if (span !== undefined && record.trace_id === undefined) Object.assign(record, span)
  writeLine(JSON.stringify(record) + "\n")
})

export const JsonLoggingLive = Logger.replace(Logger.defaultLogger, jsonLogger)

