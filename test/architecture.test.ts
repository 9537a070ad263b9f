/**
 * The shape of src/, checked: no import circles (static, dynamic or type-only),
 * no file a newcomer cannot read in one sitting, and data flowing one way
 * (a stage never imports from the stages that call it).
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const SRC = join(import.meta.dir, "..", "src")

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith(".ts") ? [path] : []
  })

const files = sourceFiles(SRC)
const name = (path: string) => relative(SRC, path)

// `import … from "./x.ts"`, `export … from "./x.ts"`, `import("./x.ts")` and `import "./x.ts"`: every relative import.
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g

const importsOf = (path: string): Array<string> =>
  [...readFileSync(path, "utf8").matchAll(IMPORT)].map((match) => name(resolve(dirname(path), match[1]!)))

const graph = new Map(files.map((path) => [name(path), importsOf(path)]))

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
const circles = (edges: Map<string, Array<string>>): Array<Array<string>> => {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<Array<string>> = []
  const visit = (node: string) => {
    index.set(node, next)
    low.set(node, next++)
    stack.push(node)
    onStack.add(node)
    for (const to of edges.get(node) ?? []) {
      if (!edges.has(to)) continue
      if (!index.has(to)) {
        visit(to)
        low.set(node, Math.min(low.get(node)!, low.get(to)!))
      } else if (onStack.has(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!))
    }
    if (low.get(node) !== index.get(node)) return
    const component: Array<string> = []
    for (let member = stack.pop()!; ; member = stack.pop()!) {
      onStack.delete(member)
      component.push(member)
      if (member === node) break
    }
    if (component.length > 1 || edges.get(node)!.includes(node)) found.push(component.sort())
  }
  for (const node of edges.keys()) if (!index.has(node)) visit(node)
  return found
}

describe("src/", () => {
  test("every relative import names a file that exists", () => {
    const missing = [...graph].flatMap(([from, to]) => to.filter((target) => !graph.has(target)).map((target) => `${from} → ${target}`))
    expect(missing).toEqual([])
  })

  test("no import circle", () => {
    expect(circles(graph)).toEqual([])
  })

  test("the circle check finds circles", () => {
    const edges = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", ["d.ts"]],
      ["e.ts", ["a.ts"]]
    ])
    expect(circles(edges)).toEqual([["a.ts", "b.ts", "c.ts"], ["d.ts"]])
  })

  test("no file over 400 lines", () => {
    const long = files.map((path) => [name(path), readFileSync(path, "utf8").split("\n").length] as const).filter(([, lines]) => lines > 400)
    expect(long).toEqual([])
  })

  // Each folder may import from those after it (a stage calls the ones it hands data to, and the
  // store they share), never from those before it; domain/ and telemetry/ are for everyone.
  const STAGES = ["cli", "http", "console", "ingest", "delivery", "hooks", "store"]

  test("data flows one way: domain/ imports only domain/, and no stage imports from one before it", () => {
    const folderOf = (file: string) => (file.includes("/") ? file.slice(0, file.indexOf("/")) : "")
    const backwards = [...graph].flatMap(([from, to]) =>
      to.flatMap((target) => {
        const [source, dest] = [folderOf(from), folderOf(target)]
        if (source === "domain" && dest !== "domain") return [`${from} → ${target}`]
        const [i, j] = [STAGES.indexOf(source), STAGES.indexOf(dest)]
        return i !== -1 && j !== -1 && j < i ? [`${from} → ${target}`] : []
      })
    )
    expect(backwards).toEqual([])
  })
})
