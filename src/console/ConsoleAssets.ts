import { bundleConsole } from "./ConsoleBundle.ts" with { type: "macro" }

/** The console's script and style, built when this file is transpiled (see ConsoleBundle.ts). */
export const consoleBundle = bundleConsole()
