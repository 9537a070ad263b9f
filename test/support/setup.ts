import { setDefaultTimeout } from "bun:test"

/**
 * Tests start real processes (the router, Kamailio, sipp): the 5 s default is
 * too short on a loaded machine. Bun keeps a preload's default for the first
 * file of a run only (oven-sh/bun#43787), so every test file sets it too.
 */
export const TEST_TIMEOUT_MS = 60_000

setDefaultTimeout(TEST_TIMEOUT_MS)
