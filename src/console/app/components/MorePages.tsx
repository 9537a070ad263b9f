import { useEffect, useState } from "preact/hooks"
import type { Result } from "../api.ts"
import type { Page } from "../types.ts"

/**
 * The pages a list loaded after its first, until its filters change. The first
 * page stays the caller's (it reloads it on its own); `cursorAfter` says where
 * the next page starts, whichever was the last loaded.
 */
export const useMorePages = <A,>(next: (cursor: string) => Promise<Result<Page<A>>>, filters: ReadonlyArray<unknown>) => {
  const [more, setMore] = useState<{ items: ReadonlyArray<A>; cursor: string | null }>({ items: [], cursor: null })
  useEffect(() => setMore({ items: [], cursor: null }), filters)
  const load = async (cursor: string) => {
    const page = await next(cursor)
    if (page.ok) setMore((before) => ({ items: [...before.items, ...page.value.items], cursor: page.value.nextCursor }))
  }
  const cursorAfter = (first: Page<A>) => (more.items.length > 0 ? more.cursor : first.nextCursor)
  return { items: more.items, cursorAfter, load }
}

/** The button that loads the next page, while there is one. */
export const LoadMore = ({ cursor, load }: { readonly cursor: string | null; readonly load: (cursor: string) => void }) =>
  cursor ? (
    <button type="button" onClick={() => load(cursor)}>
      Load more
    </button>
  ) : null
