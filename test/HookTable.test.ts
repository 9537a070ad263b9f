import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import type { ActiveHook } from "../src/domain/Hook.ts"
import { allHooks, compileTable, entryFor, matchHost, mergeSources, type Table } from "../src/hooks/HookTable.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

// Hooks reach the table through HostPattern, which lower-cases them, so generated hosts are lower-case.
const hook = (host: string, tag = host, source: ActiveHook["source"] = "file"): ActiveHook =>
  ({ host, url: `https://hooks.example/${encodeURIComponent(tag)}`, source }) as unknown as ActiveHook

/** A small alphabet so random hosts and patterns collide often enough to be interesting. */
const label = fc.stringMatching(/^[a-c0-9][a-c0-9-]{0,2}[a-c]$|^[a-c]$/)
const labels = fc.array(label, { minLength: 1, maxLength: 4 })
const hostArb = labels.map((ls) => ls.join("."))
const patternArb = fc.tuple(fc.boolean(), fc.array(label, { minLength: 1, maxLength: 3 })).map(([wild, ls]) =>
  wild ? `*.${ls.join(".")}` : ls.join(".")
)

/** Flips the case of letters at random positions. */
const randomCase = (s: string) =>
  fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((flips) =>
    [...s].map((c, i) => (flips[i] ? c.toUpperCase() : c)).join("")
  )

/** The rules written the slow, obvious way: first exact hook; else, among covering wildcards, the longest suffix, first defined. */
const reference = (hooks: ReadonlyArray<ActiveHook>, host: string): ActiveHook | undefined => {
  const name = host.toLowerCase()
  const exact = hooks.find((h) => h.host === name)
  if (exact) return exact
  const covering = hooks.filter((h) => h.host.startsWith("*.") && name.endsWith(h.host.slice(1)))
  const longest = Math.max(-1, ...covering.map((h) => h.host.length))
  return covering.find((h) => h.host.length === longest)
}

/** Hosts drawn from the patterns themselves (with and without extra labels) so lookups actually hit. */
const tableAndHost = fc
  .array(patternArb, { minLength: 0, maxLength: 8 })
  .chain((patterns) => {
    const bases = patterns.map((p) => p.replace(/^\*\./, ""))
    const near = bases.length === 0 ? hostArb : fc.oneof(hostArb, fc.constantFrom(...bases))
    return fc.tuple(
      fc.constant(patterns),
      fc.tuple(fc.array(label, { maxLength: 2 }), near).map(([prefix, base]) => [...prefix, base].join("."))
    )
  })
  .map(([patterns, host]) => ({ hooks: patterns.map((p, i) => hook(p, `${p}#${i}`)), host }))

const run = (property: fc.IProperty<any>) => fc.assert(property, { numRuns: 500 })

describe("matchHost: properties", () => {
  test("agrees with the reference rules on random tables and hosts", () => {
    run(
      fc.property(tableAndHost, ({ hooks, host }) => {
        expect(matchHost(compileTable(hooks), host)).toBe(reference(hooks, host))
      })
    )
  })

  test("is case-insensitive in the host it is given", () => {
    run(
      fc.property(
        tableAndHost.chain((t) => fc.tuple(fc.constant(t), randomCase(t.host))),
        ([{ hooks, host }, mixed]) => {
          const table = compileTable(hooks)
          expect(matchHost(table, mixed)).toBe(matchHost(table, host))
        }
      )
    )
  })

  test("a hook's own host, in any case, finds that hook", () => {
    run(
      fc.property(hostArb.chain((h) => fc.tuple(fc.constant(h), randomCase(h))), ([host, mixed]) => {
        const exact = hook(host)
        expect(matchHost(compileTable([exact]), mixed)).toBe(exact)
      })
    )
  })

  test("an exact host beats every wildcard that covers it, whatever the order", () => {
    run(
      fc.property(labels, fc.boolean(), (ls, exactFirst) => {
        const host = ls.join(".")
        const exact = hook(host)
        // A wildcard for every proper suffix of the host (none for single-label hosts).
        const wildcards = ls.slice(1).map((_, i) => hook(`*.${ls.slice(i + 1).join(".")}`))
        const table = compileTable(exactFirst ? [exact, ...wildcards] : [...wildcards, exact])
        expect(matchHost(table, host)).toBe(exact)
        expect(matchHost(table, host.toUpperCase())).toBe(exact)
      })
    )
  })

  test("the wildcard with the longest suffix wins", () => {
    run(
      fc.property(
        fc.array(label, { minLength: 2, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        fc.boolean(),
        (ls, keep, reversed) => {
          const host = ls.join(".")
          // Wildcards for a random, non-empty subset of the host's proper suffixes.
          const suffixes = ls.slice(1).map((_, i) => ls.slice(i + 1).join("."))
          const chosen = suffixes.filter((_, i) => keep[i])
          fc.pre(chosen.length > 0)
          const hooks = chosen.map((s) => hook(`*.${s}`))
          const longest = hooks[0]! // suffixes run from longest to shortest
          const table = compileTable(reversed ? [...hooks].reverse() : hooks)
          expect(matchHost(table, host)).toBe(longest)
        }
      )
    )
  })

  test("a wildcard never matches its apex, but matches every deeper name", () => {
    run(
      fc.property(labels, fc.array(label, { minLength: 1, maxLength: 3 }), (base, prefix) => {
        const apex = base.join(".")
        const wildcard = hook(`*.${apex}`)
        const table = compileTable([wildcard])
        expect(matchHost(table, apex)).toBeUndefined()
        expect(matchHost(table, apex.toUpperCase())).toBeUndefined()
        expect(matchHost(table, `${prefix.join(".")}.${apex}`)).toBe(wildcard)
      })
    )
  })

  test("a host under no pattern matches nothing", () => {
    run(
      fc.property(fc.array(patternArb, { maxLength: 8 }), hostArb, (patterns, host) => {
        // "zz" is outside the label alphabet, so no pattern can be this host or one of its suffixes.
        const outside = `${host}.zz`
        expect(matchHost(compileTable(patterns.map((p) => hook(p))), outside)).toBeUndefined()
      })
    )
  })

  test("a suffix that only matches on a label boundary is not a match", () => {
    run(
      fc.property(labels, label, (base, glued) => {
        const apex = base.join(".")
        // "xexample.com" ends with "example.com" but is not under it.
        const table = compileTable([hook(`*.${apex}`), hook(apex)])
        expect(matchHost(table, `${glued}${apex}`)).toBeUndefined()
      })
    )
  })
})

describe("compileTable and entryFor: properties", () => {
  test("the first of duplicate hosts is kept (config file before API hooks)", () => {
    run(
      fc.property(fc.array(patternArb, { minLength: 1, maxLength: 12 }), (patterns) => {
        const hooks = patterns.map((p, i) => hook(p, `${p}#${i}`, i % 2 === 0 ? "file" : "api"))
        const table = compileTable(hooks)
        for (const pattern of new Set(patterns)) {
          expect(entryFor(table, pattern)).toBe(hooks.find((h) => h.host === pattern))
        }
        expect(allHooks(table)).toHaveLength(new Set(patterns).size)
      })
    )
  })

  test("entryFor returns only the pattern's own entry, never a wildcard expansion", () => {
    run(
      fc.property(fc.array(patternArb, { maxLength: 8 }), patternArb, (patterns, probe) => {
        const hooks = patterns.map((p) => hook(p))
        expect(entryFor(compileTable(hooks), probe)).toBe(hooks.find((h) => h.host === probe))
      })
    )
  })

  test("a wildcard and the exact apex are separate entries", () => {
    run(
      fc.property(labels, (ls) => {
        const apex = ls.join(".")
        const exact = hook(apex)
        const wildcard = hook(`*.${apex}`)
        const table = compileTable([wildcard, exact])
        expect(entryFor(table, apex)).toBe(exact)
        expect(entryFor(table, `*.${apex}`)).toBe(wildcard)
        expect(matchHost(table, apex)).toBe(exact)
        expect(matchHost(table, `x.${apex}`)).toBe(wildcard)
      })
    )
  })
})

describe("matchHost: examples", () => {
  const drsmith = hook("calls.drsmith.com")
  const dental = hook("*.citydental.com")
  const east = hook("*.east.citydental.com")
  const main = hook("main.citydental.com")
  const table: Table = compileTable([drsmith, dental, east, main])

  test.each<[string, ActiveHook | undefined]>([
    ["calls.drsmith.com", drsmith],
    ["CALLS.DRSMITH.COM", drsmith],
    ["Calls.DrSmith.Com", drsmith],
    ["drsmith.com", undefined],
    ["x.calls.drsmith.com", undefined],
    ["north.citydental.com", dental],
    ["a.b.c.citydental.com", dental],
    ["citydental.com", undefined],
    ["main.citydental.com", main],
    ["MAIN.citydental.COM", main],
    ["x.main.citydental.com", dental],
    ["east.citydental.com", dental],
    ["x.east.citydental.com", east],
    ["y.x.EAST.citydental.com", east],
    ["citydental.com.evil.example", undefined],
    ["evilcitydental.com", undefined],
    ["", undefined]
  ])("%p", (host, expected) => {
    expect(matchHost(table, host)).toBe(expected)
  })

  test("an empty table matches nothing", () => {
    expect(matchHost(compileTable([]), "calls.drsmith.com")).toBeUndefined()
  })

  test("entryFor addresses patterns, not hosts", () => {
    expect(entryFor(table, "*.citydental.com")).toBe(dental)
    expect(entryFor(table, "*.east.citydental.com")).toBe(east)
    expect(entryFor(table, "north.citydental.com")).toBeUndefined()
    expect(entryFor(table, "citydental.com")).toBeUndefined()
    expect(entryFor(table, "main.citydental.com")).toBe(main)
  })

  test("a file hook shadows an API hook for the same host", () => {
    const file = hook("calls.drsmith.com", "file", "file")
    const api = hook("calls.drsmith.com", "api", "api")
    const t = compileTable([file, api])
    expect(entryFor(t, "calls.drsmith.com")).toBe(file)
    expect(matchHost(t, "calls.drsmith.com")).toBe(file)
    expect(allHooks(t)).toEqual([file])
  })

  test("allHooks lists every entry once, sorted by host", () => {
    expect(allHooks(table).map((h): string => h.host)).toEqual([
      "*.citydental.com",
      "*.east.citydental.com",
      "calls.drsmith.com",
      "main.citydental.com"
    ])
  })
})

describe("mergeSources: precedence file > http > api", () => {
  const sourceArb = fc.constantFrom("file", "http", "api") as fc.Arbitrary<"file" | "http" | "api">
  const numberArb = fc.constantFrom("+15550000001", "+15550000002", "+15550000003")

  test("every host and number is taken from the first source that defines it", () => {
    run(
      fc.property(
        fc.array(fc.tuple(sourceArb, patternArb), { maxLength: 12 }),
        fc.array(fc.tuple(sourceArb, numberArb, hostArb), { maxLength: 8 }),
        (hookEntries, numberEntries) => {
          const setFor = (source: string) => ({
            hooks: hookEntries.filter(([s]) => s === source).map(([s, host], i) => ({ host, url: `https://${s}.example/${i}` })),
            numbers: numberEntries.filter(([s]) => s === source).map(([, number, host]) => ({ number, host }))
          })
          const [file, remote, api] = [setFor("file"), setFor("http"), setFor("api")]
          const table = mergeSources(file as never, remote as never, api as never)
          for (const [, host] of hookEntries) {
            const expected = ["file", "http", "api"].find((s) => hookEntries.some(([t, h]) => t === s && h === host))
            expect(entryFor(table, host)?.source).toBe(expected as never)
            expect(entryFor(table, host)?.url.startsWith(`https://${expected}.example/`)).toBe(true)
          }
          for (const [, number] of numberEntries) {
            const expected = ["file", "http", "api"].find((s) => numberEntries.some(([t, n]) => t === s && n === number))
            expect(table.numbers.get(number)?.source).toBe(expected as never)
          }
        }
      )
    )
  })
})
