import type { ComponentChildren } from "preact"
import { useEffect, useRef } from "preact/hooks"
import { api } from "../api.ts"
import { href, place } from "../router.ts"
import { isOperator, session } from "../session.ts"

const PAGES = [
  { path: "/", name: "Overview" },
  { path: "/calls", name: "Calls" },
  { path: "/deliveries", name: "Deliveries" },
  { path: "/hooks", name: "Hooks" },
  { path: "/numbers", name: "Numbers", operatorOnly: true },
  { path: "/unroutable", name: "Unroutable", operatorOnly: true },
  { path: "/live", name: "Live" }
]

const current = (path: string) => (path === "/" ? place.value.path === "/" : place.value.path === path || place.value.path.startsWith(path + "/"))

const signOut = async () => {
  await api.session.signOut()
  session.value = null
}

/**
 * Every signed-in page: a skip link, the header with the one navigation
 * landmark (a tenant's without Numbers and Unroutable) and Sign out, and the
 * page in `main`. Moving to another page puts focus on its h1, so a screen
 * reader announces where the user is.
 */
export const Layout = ({ children }: { children: ComponentChildren }) => {
  const main = useRef<HTMLElement>(null)
  const first = useRef(true)
  useEffect(() => {
    if (first.current) {
      first.current = false
      return
    }
    main.current?.querySelector<HTMLElement>("h1")?.focus()
  }, [place.value.path])
  const who = session.value
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">sip-tenant-router</span>
        <nav aria-label="Console">
          <ul>
            {PAGES.filter((page) => !page.operatorOnly || isOperator()).map((page) => (
              <li>
                <a href={href(page.path)} aria-current={current(page.path) ? "page" : undefined}>
                  {page.name}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">{who?.role === "operator" ? "Operator" : `Tenant: ${who?.hosts.join(", ")}`}</span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {children}
      </main>
    </>
  )
}

/** A page's heading: focusable from script only, so navigation can move focus to it. */
export const Title = ({ children }: { children: ComponentChildren }) => <h1 tabIndex={-1}>{children}</h1>
