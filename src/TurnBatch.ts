/**
 * The router's one batching primitive: what is added during one event-loop
 * turn is handed over together when the turn ends, after the I/O callbacks
 * already due (so requests that arrive together share a commit, a script call,
 * an Effect, a write to stdout). See docs/architecture.md, "the hot path".
 */
export interface TurnBatchOptions<A> {
  /** A batch is handed over early rather than grow past this size (a lone larger item still goes whole). */
  readonly maxSize?: number | undefined
  readonly sizeOf?: ((item: A) => number) | undefined
}

export class TurnBatch<A> {
  private items: Array<A> = []
  private size = 0
  private readonly maxSize: number
  private readonly sizeOf: (item: A) => number

  constructor(
    private readonly onBatch: (items: Array<A>) => void,
    options: TurnBatchOptions<A> = {}
  ) {
    this.maxSize = options.maxSize ?? Number.POSITIVE_INFINITY
    this.sizeOf = options.sizeOf ?? (() => 1)
  }

  add(item: A): void {
    const size = this.sizeOf(item)
    if (this.items.length > 0 && this.size + size > this.maxSize) this.flush()
    if (this.items.length === 0) setImmediate(this.flush)
    this.items.push(item)
    this.size += size
  }

  get pending(): number {
    return this.items.length
  }

  /** Hands over what has gathered now, without waiting for the turn to end (at shutdown, say). */
  readonly flush = (): void => {
    if (this.items.length === 0) return
    const batch = this.items
    this.items = []
    this.size = 0
    this.onBatch(batch)
  }
}

interface Waiting<A, B> {
  readonly item: A
  readonly resolve: (answer: B) => void
  readonly reject: (error: unknown) => void
}

/**
 * A turn batch whose items each wait for their own answer: `run` answers the
 * whole batch, one answer per item in order; if it rejects, every item does.
 */
export const answeredPerTurn = <A, B>(run: (items: ReadonlyArray<A>) => Promise<ReadonlyArray<B>>, options: TurnBatchOptions<A> = {}) => {
  const batch = new TurnBatch<Waiting<A, B>>(
    (waiting) =>
      void run(waiting.map((w) => w.item)).then(
        (answers) => waiting.forEach((w, i) => w.resolve(answers[i]!)),
        (error) => waiting.forEach((w) => w.reject(error))
      ),
    { maxSize: options.maxSize, sizeOf: options.sizeOf && ((w) => options.sizeOf!(w.item)) }
  )
  const submit = (item: A) => new Promise<B>((resolve, reject) => batch.add({ item, resolve, reject }))
  return Object.assign(submit, { flush: batch.flush })
}
