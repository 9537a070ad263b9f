import { render } from "preact"

const App = () => <main><h1>Console</h1></main>

render(<App />, document.getElementById("app")!)
