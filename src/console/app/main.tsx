import { render } from "preact"
import { Layout } from "./components/Layout.tsx"
import { place, segments, startRouting } from "./router.ts"
import { checkSession, session } from "./session.ts"
import { CallPage } from "./pages/Call.tsx"
import { Calls } from "./pages/Calls.tsx"
import { Deliveries } from "./pages/Deliveries.tsx"
import { DeliveryPage } from "./pages/Delivery.tsx"
import { HookPage } from "./pages/Hook.tsx"
import { Hooks } from "./pages/Hooks.tsx"
import { Live } from "./pages/Live.tsx"
import { Numbers } from "./pages/Numbers.tsx"
import { NotFound } from "./pages/NotFound.tsx"
import { Overview } from "./pages/Overview.tsx"
import { Portal } from "./pages/Portal.tsx"
import { SignIn } from "./pages/SignIn.tsx"
import { Unroutable } from "./pages/Unroutable.tsx"

/** The page for a path under /console; a tenant has no Numbers or Unroutable (the API refuses them too). */
const page = (path: string, operator: boolean) => {
  const [section, id, extra] = segments(path)
  if (extra !== undefined) return <NotFound />
  switch (section) {
    case undefined:
      return <Overview />
    case "calls":
      return id === undefined ? <Calls /> : <CallPage key={id} id={id} />
    case "deliveries":
      return id === undefined ? <Deliveries /> : <DeliveryPage key={id} id={id} />
    case "hooks":
      return id === undefined ? <Hooks /> : <HookPage key={id} host={id} />
    case "numbers":
      return operator && id === undefined ? <Numbers /> : <NotFound />
    case "unroutable":
      return operator && id === undefined ? <Unroutable /> : <NotFound />
    case "live":
      return id === undefined ? <Live /> : <NotFound />
    default:
      return <NotFound />
  }
}

const App = () => {
  const path = place.value.path
  // The portal link signs in by itself, whoever was signed in before.
  if (path === "/portal") return <Portal />
  const who = session.value
  if (who === undefined) return <p class="muted">Loading…</p>
  if (who === null) return <SignIn />
  return <Layout>{page(path, who.role === "operator")}</Layout>
}

startRouting()
// The portal page redeems its link instead; everywhere else, ask who is signed in.
if (place.value.path !== "/portal") void checkSession()
render(<App />, document.getElementById("app")!)
