import { absoluteTime, shortTime } from "../format.ts"

/**
 * A time in the browser's zone. It is focusable, and its absolute form (date,
 * time and zone) is its title and shows beside it on focus, for keyboard users
 * and screen readers as well as on hover.
 */
export const Time = ({ iso }: { iso: string | null }) =>
  iso === null ? (
    <span>—</span>
  ) : (
    <time dateTime={iso} title={absoluteTime(iso)} tabIndex={0} data-absolute={absoluteTime(iso)}>
      {shortTime(iso)}
    </time>
  )
