import { setDefaultTimeout } from "bun:test"

// Tests start real processes (the router, Kamailio, sipp): the 5 s default is too short on a loaded machine.
setDefaultTimeout(60_000)
