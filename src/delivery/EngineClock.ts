import { Context, Layer } from "effect"

export interface Timer {
  readonly cancel: () => void
}

/**
 * The delivery engine's time, as a port. Waits and deadlines inside the
 * process (retries, cooldowns, rate limits, an event's age) run on the
 * monotonic clock, so a wall clock stepped by NTP or by hand neither fires a
 * retry early nor stalls one; the wall clock is for what is recorded and
 * compared with other machines (LiveKit's `createdAt`, times in the store).
 */
export interface EngineClockShape {
  /** Milliseconds since the epoch, as the wall clock says now. */
  readonly wallMs: () => number
  /** Milliseconds on a clock that only moves forward, from an arbitrary origin. */
  readonly monoMs: () => number
  /** Runs `task` once `ms` have passed on the monotonic clock. */
  readonly after: (ms: number, task: () => void) => Timer
}

const system: EngineClockShape = {
  wallMs: () => Date.now(),
  // Whole milliseconds, as Date.now gives: what is derived from it is recorded as integers.
  monoMs: () => Math.floor(performance.now()),
  after: (ms, task) => {
    const timer = setTimeout(task, Math.max(0, ms))
    return { cancel: () => clearTimeout(timer) }
  }
}

/** A wall time (ms) as the monotonic clock reads it, given both clocks now: times from the store enter the engine this way. */
export const toMono = (clock: EngineClockShape, wallMs: number) => clock.monoMs() + (wallMs - clock.wallMs())

/** A monotonic time as the wall clock reads it now: what the store records. */
export const toWall = (clock: EngineClockShape, monoMs: number) => clock.wallMs() + (monoMs - clock.monoMs())

/** The next event-loop turn, after pending I/O: where the engine lets promise chains settle. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * A clock tests move by hand: `advance` runs the timers that come due in
 * order, letting the engine settle between them; `stepWall` moves only the
 * wall clock, as NTP or an operator would.
 */
export const manualClock = (startWallMs = Date.UTC(2030, 0, 1)) => {
  let mono = 0
  let wallOffset = startWallMs
  let seq = 0
  const timers: Array<{ readonly due: number; readonly seq: number; readonly task: () => void; cancelled: boolean }> = []
  const clock: EngineClockShape = {
    wallMs: () => wallOffset + mono,
    monoMs: () => mono,
    after: (ms, task) => {
      const timer = { due: mono + Math.max(0, ms), seq: seq++, task, cancelled: false }
      timers.push(timer)
      return { cancel: () => void (timer.cancelled = true) }
    }
  }
  /**
   * Lets the engine's promise chains and per-turn batches run to quiescence (store writes,
   * records). Timer turns, not just immediates: Effect's scheduler yields to a 0 ms timer
   * after a long run of microtasks.
   */
  const settle = async (turns = 12) => {
    for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setTimeout(resolve, 0))
  }
  const nextDue = () => {
    let first: (typeof timers)[number] | undefined
    for (const timer of timers) if (!timer.cancelled && (!first || timer.due < first.due || (timer.due === first.due && timer.seq < first.seq))) first = timer
    return first
  }
  return {
    clock,
    layer: Layer.succeed(EngineClock, clock),
    settle,
    /** Moves both clocks forward by `ms`, running each timer at its due time, in order. */
    advance: async (ms: number) => {
      const until = mono + ms
      await settle()
      for (let timer = nextDue(); timer && timer.due <= until; timer = nextDue()) {
        timers.splice(timers.indexOf(timer), 1)
        mono = Math.max(mono, timer.due)
        timer.task()
        await settle()
      }
      mono = until
      await settle()
    },
    /** Steps the wall clock alone, forward or back; the monotonic clock and its timers are untouched. */
    stepWall: (ms: number) => {
      wallOffset += ms
    },
    /** When the earliest pending timer is due, relative to now; undefined when none is. */
    nextTimerIn: () => {
      const timer = nextDue()
      return timer && timer.due - mono
    }
  }
}

export class EngineClock extends Context.Tag("EngineClock")<EngineClock, EngineClockShape>() {
  static readonly Default = Layer.succeed(EngineClock, system)
}
