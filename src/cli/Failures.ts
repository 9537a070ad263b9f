/** How a command ends other than done, apart from the API's client, so the router's own start does not load that client. */
import { Data } from "effect"

/** A command that failed (the router refused, could not be reached or answered nonsense; a bad config; a store it cannot open): its line for stderr, exit 1. */
export class Failed extends Data.TaggedError("Failed")<{ readonly message: string }> {}

/** The router answered, and the answer is no (`hooks test`: not delivered; `explain`: not routed): exit 1, the answer already printed. */
export class AnsweredNo extends Data.TaggedError("AnsweredNo")<{}> {}

/** A command that cannot run as given (outside what @effect/cli validates). */
export class Usage extends Data.TaggedError("Usage")<{ readonly message: string }> {}
