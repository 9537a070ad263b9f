import type { ComponentChildren } from "preact"
import type { Result } from "../api.ts"
import type { Loaded } from "../load.ts"

/** A failure, announced at once by screen readers. */
export const Alert = ({ children }: { children: ComponentChildren }) => (
  <p role="alert" class="alert">
    {children}
  </p>
)

/** The outcome of an action, announced politely. */
export const Note = ({ children }: { children: ComponentChildren }) => (
  <p role="status" class="note">
    {children}
  </p>
)

/** What an action came to: a success as a status, a failure as an alert. */
export type Outcome = { readonly ok: boolean; readonly text: string } | null

export const Said = ({ outcome }: { outcome: Outcome }) => (outcome === null ? null : outcome.ok ? <Note>{outcome.text}</Note> : <Alert>{outcome.text}</Alert>)

/** Shows a load's data through `render`, a loading line meanwhile, or the API's error. */
export const Loading = <A,>({ loaded, children }: { loaded: Loaded<A>; children: (value: A) => ComponentChildren }) =>
  loaded.state === "loading" ? <p class="muted">Loading…</p> : <Loaded result={loaded.result}>{children}</Loaded>

const Loaded = <A,>({ result, children }: { result: Result<A>; children: (value: A) => ComponentChildren }) =>
  result.ok ? <>{children(result.value)}</> : <Alert>{result.error.message}</Alert>
