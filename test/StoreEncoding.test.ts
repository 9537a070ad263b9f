/**
 * The stores write deliveries and pins through plain-code encoders on the hot
 * path; the schemas define them. Whatever a delivery or pin holds, the two agree.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test"
import { Arbitrary, Schema } from "effect"
import fc from "fast-check"
import { NewDelivery, Pin } from "../src/domain/Delivery.ts"
import { encodeDelivery, encodePin } from "../src/store/StoreLive.ts"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

describe("the hot path's encoders", () => {
  test("a delivery encodes as its schema says", () => {
    fc.assert(fc.property(Arbitrary.make(NewDelivery), (d) => expect(encodeDelivery(d)).toEqual(Schema.encodeSync(NewDelivery)(d))))
  })

  test("a pin encodes as its schema says", () => {
    fc.assert(fc.property(Arbitrary.make(Pin), (pin) => expect(encodePin(pin)).toEqual(Schema.encodeSync(Pin)(pin))))
  })
})
