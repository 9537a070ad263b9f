import { useCallback, useEffect, useRef, useState } from "preact/hooks"
import type { Result } from "./api.ts"

export type Loaded<A> = { readonly state: "loading" } | { readonly state: "done"; readonly result: Result<A> }

/**
 * Loads what a page shows, again whenever `deps` change; a load overtaken by a
 * newer one is aborted, so a slow answer never replaces a newer one. What was
 * shown stays until the new answer replaces it (no flash of "Loading…" as a
 * filter changes); `reload` fetches again the same way.
 */
export const useLoad = <A,>(load: (signal: AbortSignal) => Promise<Result<A>>, deps: ReadonlyArray<unknown>) => {
  const [loaded, setLoaded] = useState<Loaded<A>>({ state: "loading" })
  const current = useRef<AbortController | null>(null)
  const run = useCallback(() => {
    current.current?.abort()
    const controller = new AbortController()
    current.current = controller
    load(controller.signal).then(
      (result) => {
        if (!controller.signal.aborted) setLoaded({ state: "done", result })
      },
      () => {}
    )
  }, deps)
  useEffect(() => {
    run()
    return () => current.current?.abort()
  }, [run])
  return { loaded, reload: run }
}
