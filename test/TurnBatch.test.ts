import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { answeredPerTurn, TurnBatch } from "../src/TurnBatch.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("TurnBatch", () => {
  test("what is added in one turn is one batch, in order; the next turn starts another", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.integer(), { maxLength: 20 }), { maxLength: 6 }), async (turns) => {
        const batches: Array<Array<number>> = []
        const batch = new TurnBatch<number>((items) => batches.push(items))
        for (const items of turns) {
          for (const item of items) batch.add(item)
          await nextTurn()
        }
        expect(batches).toEqual(turns.filter((items) => items.length > 0))
      })
    )
  })

  test("a batch is handed over before it would grow past maxSize; a lone larger item goes whole", async () => {
    const batches: Array<Array<Array<number>>> = []
    const batch = new TurnBatch<Array<number>>((items) => batches.push(items), { maxSize: 5, sizeOf: (item) => item.length })
    batch.add([1, 2])
    batch.add([3, 4, 5])
    batch.add([6])
    batch.add([7, 8, 9, 10, 11, 12])
    await nextTurn()
    expect(batches).toEqual([[[1, 2], [3, 4, 5]], [[6]], [[7, 8, 9, 10, 11, 12]]])
  })

  test("flush hands over at once, and the turn's end then finds nothing", async () => {
    const batches: Array<Array<string>> = []
    const batch = new TurnBatch<string>((items) => batches.push(items))
    batch.add("a")
    batch.flush()
    expect(batches).toEqual([["a"]])
    await nextTurn()
    expect(batches).toEqual([["a"]])
    expect(batch.pending).toBe(0)
  })
})

describe("answeredPerTurn", () => {
  test("each item gets its own answer from one run per turn", async () => {
    const runs: Array<ReadonlyArray<number>> = []
    const double = answeredPerTurn(async (items: ReadonlyArray<number>) => {
      runs.push(items)
      return items.map((n) => n * 2)
    })
    expect(await Promise.all([double(1), double(2), double(3)])).toEqual([2, 4, 6])
    expect(await double(4)).toBe(8)
    expect(runs).toEqual([[1, 2, 3], [4]])
  })

  test("a run that fails fails every item of its batch, and only those", async () => {
    let fail = true
    const run = answeredPerTurn(async (items: ReadonlyArray<string>) => {
      if (fail) throw new Error("store down")
      return items
    })
    const failed = await Promise.allSettled([run("a"), run("b")])
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"])
    fail = false
    expect(await run("c")).toBe("c")
  })
})
