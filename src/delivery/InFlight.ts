/** Writes the engine started outside any Effect it waits on, which shutdown waits for before the store closes. */
export class InFlight {
  private readonly promises = new Set<Promise<unknown>>()

  track<A>(promise: Promise<A>): Promise<A> {
    this.promises.add(promise)
    const done = () => void this.promises.delete(promise)
    promise.then(done, done)
    return promise
  }

  get size(): number {
    return this.promises.size
  }

  /** Until every tracked write, and any they started meanwhile, is done. */
  async settled(): Promise<void> {
    while (this.promises.size > 0) await Promise.allSettled([...this.promises])
  }
}
