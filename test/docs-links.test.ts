/**
 * Every relative link in README.md and docs/ resolves: the file exists and,
 * for a `#anchor`, a heading of the target renders to it (GitHub's slugs).
 * External links are not fetched.
 */
import { expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const ROOT = join(import.meta.dir, "..")
const DOCS = ["README.md", ...Array.from(new Bun.Glob("docs/**/*.md").scanSync(ROOT)).sort()]

/** The text outside fenced code blocks, where links and headings can be. */
const prose = (markdown: string): Array<string> => {
  let fenced = false
  return markdown.split("\n").filter((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced
      return false
    }
    return !fenced
  })
}

/** GitHub's heading anchor: the text as rendered, lower-case, punctuation other than `-` and `_` dropped, spaces to `-`. */
const slugOf = (heading: string): string =>
  heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/`/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/ /g, "-")

/** Every anchor of a file's headings; a repeated heading gets `-1`, `-2`... as on GitHub. */
const anchorsOf = (markdown: string): Set<string> => {
  const seen = new Map<string, number>()
  const anchors = new Set<string>()
  for (const line of prose(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (!heading) continue
    const slug = slugOf(heading[1]!)
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return anchors
}

/** Inline links and images, outside code; `[text](target "title")` gives `target`. */
const linksOf = (markdown: string): Array<string> =>
  prose(markdown).flatMap((line) =>
    Array.from(line.replace(/`[^`]*`/g, "").matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g), (match) => match[1]!)
  )

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target)

const texts = new Map(await Promise.all(DOCS.map(async (doc) => [doc, await Bun.file(join(ROOT, doc)).text()] as const)))

const problemsIn = (doc: string): Array<string> =>
  linksOf(texts.get(doc)!)
    .filter((target) => !isExternal(target))
    .flatMap((target) => {
      const [path = "", anchor] = target.split("#", 2)
      const file = path === "" ? join(ROOT, doc) : join(ROOT, dirname(doc), decodeURIComponent(path))
      if (!existsSync(file)) return [`${doc}: ${target}: no such file`]
      if (anchor === undefined) return []
      const name = relative(ROOT, file)
      if (!name.endsWith(".md")) return [`${doc}: ${target}: an anchor into a file that is not markdown`]
      const text = texts.get(name) ?? readFileSync(file, "utf8")
      return anchorsOf(text).has(decodeURIComponent(anchor)) ? [] : [`${doc}: ${target}: no heading renders to #${anchor}`]
    })

test("the docs are found", () => {
  expect(DOCS).toContain("docs/README.md")
  expect(DOCS.length).toBeGreaterThan(10)
})

test("headings render to GitHub's anchors", () => {
  expect(slugOf("Freshness (`maxAge`)")).toBe("freshness-maxage")
  expect(slugOf("The `@alerts` pseudo-tenant")).toBe("the-alerts-pseudo-tenant")
  expect(slugOf("Scale-out on Redis")).toBe("scale-out-on-redis")
  expect(slugOf("1. Fail open: routing failures are values")).toBe("1-fail-open-routing-failures-are-values")
  expect(slugOf("tenant_router_queue_depth")).toBe("tenant_router_queue_depth")
})

for (const doc of DOCS) {
  test(`every relative link in ${doc} resolves`, () => {
    expect(problemsIn(doc)).toEqual([])
  })
}
