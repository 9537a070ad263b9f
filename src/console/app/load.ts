import { useCallback, useEffect, useRef, useState } from "preact/hooks"
import type { Result } from "./api.ts"

export type Loaded<A> = { readonly state: "loading" } | { readonly state: "done"; readonly result: Result<A> }

/**
 * Loads what a page shows, again whenever `deps` change; a load overtaken by a
 * newer one is aborted, so a slow answer never replaces a newer one.
 * `reload` fetches again in the background (the old data stays shown).
 */
export const useLoad = <A,>(load: (signal: AbortSignal) => Promise<Result<A>>, deps: ReadonlyArray<unknown>) => {
  const [loaded, setLoaded] = useState<Loaded<A>>({ state: "loading" })
  const current = useRef<AbortController | null>(null)
  const run = useCallback((background: boolean) => {
    current.current?.abort()
    const controller = new AbortController()
    current.current = controller
    if (!background) setLoaded({ state: "loading" })
    load(controller.signal).then(
      (result) => {
        if (!controller.signal.aborted) setLoaded({ state: "done", result })
      },
      () => {}
    )
  }, deps)
  useEffect(() => {
    run(false)
    return () => current.current?.abort()
  }, [run])
  return { loaded, reload: () => run(true) }
}
