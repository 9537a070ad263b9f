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

/** Shows a load's data through `render`, a loading line meanwhile, or the API's error. */
export const Loading = <A,>({ loaded, children }: { loaded: Loaded<A>; children: (value: A) => ComponentChildren }) =>
  loaded.state === "loading" ? <p class="muted">Loading…</p> : <Outcome result={loaded.result}>{children}</Outcome>

export const Outcome = <A,>({ result, children }: { result: Result<A>; children: (value: A) => ComponentChildren }) =>
  result.ok ? <>{children(result.value)}</> : <Alert>{result.error.message}</Alert>
