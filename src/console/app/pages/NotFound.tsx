import { Title } from "../components/Layout.tsx"
import { href } from "../router.ts"

export const NotFound = () => (
  <>
    <Title>Not found</Title>
    <p>
      The console has no page here. Go to the <a href={href("/")}>overview</a>.
    </p>
  </>
)
