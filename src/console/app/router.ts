import { signal } from "@preact/signals"

/**
 * The console's routing: the page follows `location.pathname` under /console/,
 * filters live in the query string, and links are real `<a href>` (a middle
 * click or a new tab opens the same view; the router serves the same page for
 * every path). A plain click on a console link is turned into pushState.
 */

export const BASE = "/console"

export interface Place {
  /** The path under /console, "/" for the overview. */
  readonly path: string
  readonly params: URLSearchParams
}

const here = (): Place => ({
  path: window.location.pathname.slice(BASE.length).replace(/\/+$/, "") || "/",
  params: new URLSearchParams(window.location.search)
})

export const place = signal<Place>(here())

export type Params = Record<string, string | undefined>

/** A console URL: the path under /console and its query (empty values left out). */
export const href = (path: string, params: Params = {}) => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== "") search.set(key, value)
  const text = search.toString()
  return BASE + (path === "/" ? "/" : path) + (text === "" ? "" : "?" + text)
}

export const navigate = (url: string, options: { replace?: boolean } = {}) => {
  if (options.replace) history.replaceState(null, "", url)
  else history.pushState(null, "", url)
  place.value = here()
}

/** Changes the current page's filters; typing replaces the history entry rather than adding one per key. */
export const setParams = (changes: Params, options: { replace?: boolean } = {}) => {
  const params: Params = Object.fromEntries(place.value.params)
  navigate(href(place.value.path, { ...params, ...changes }), options)
}

export const startRouting = () => {
  addEventListener("popstate", () => (place.value = here()))
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    const link = (event.target as Element | null)?.closest?.("a")
    if (!link || link.target || link.hasAttribute("download") || link.origin !== window.location.origin) return
    if (!link.pathname.startsWith(BASE + "/") && link.pathname !== BASE) return
    event.preventDefault()
    navigate(link.pathname + link.search)
  })
}

/** The path's segments under /console, decoded: `/calls/RM_1` → ["calls", "RM_1"]. */
export const segments = (path: string) => path.split("/").filter((s) => s !== "").map(decodeURIComponent)
