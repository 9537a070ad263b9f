/** The pure rotation of a signer's secret: what each sight of a configured secret keeps signing. */
import { expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import fc from "fast-check"
import { Redacted } from "effect"
import type { WebhookSecret } from "../src/domain/Hook.ts"
import { observeSecret, overlapOf, type SecretRotation } from "../src/domain/SecretRotation.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

const OVERLAP = 1_000
const secret = (n: number) => Redacted.make(`whsec_${n}`) as WebhookSecret
const value = (s: Redacted.Redacted | undefined) => (s === undefined ? undefined : Redacted.value(s))

/** Configured secrets, each seen some time after the last. */
const sightings = fc.array(fc.record({ secret: fc.integer({ min: 0, max: 3 }), afterMs: fc.integer({ min: 0, max: 2 * OVERLAP }) }), { minLength: 1, maxLength: 30 })

test("each sight signs with the configured secret and at most one other: while a rotation overlaps, both of its secrets, seen from either side", () => {
  fc.assert(
    fc.property(sightings, (seen) => {
      let stored: SecretRotation | undefined
      let now = 0
      let rotation: { readonly from: string; readonly to: string; readonly at: number } | undefined
      for (const { secret: n, afterMs } of seen) {
        now += afterMs
        const next = observeSecret(stored, secret(n), now, OVERLAP)
        if (next?.previous !== undefined) rotation = { from: value(next.previous)!, to: value(next.current)!, at: now }
        stored = next ?? stored
        const { previousSecret, previousSecretUntil } = overlapOf(stored, secret(n))
        const signing = [`whsec_${n}`, ...(previousSecret !== undefined && previousSecretUntil! > now ? [value(previousSecret)!] : [])]
        expect(new Set(signing).size).toBe(signing.length)
        if (rotation === undefined) expect(signing).toEqual([`whsec_${n}`])
        else if (now < rotation.at + OVERLAP && (rotation.from === `whsec_${n}` || rotation.to === `whsec_${n}`)) expect(signing.sort()).toEqual([rotation.from, rotation.to].sort())
        // Once the overlap is over, the configured secret signs alone.
        else expect(signing).toEqual([`whsec_${n}`])
      }
    })
  )
})

test("a first sight is no rotation; the same secret again changes nothing; a lagging instance's old secret changes nothing while it overlaps", () => {
  const first = observeSecret(undefined, secret(1), 0, OVERLAP)!
  expect(first).toEqual({ current: secret(1) })
  expect(overlapOf(first, secret(1))).toEqual({})
  expect(observeSecret(first, secret(1), 10, OVERLAP)).toBeUndefined()
  const rotated = observeSecret(first, secret(2), 100, OVERLAP)!
  expect(value(rotated.current)).toBe("whsec_2")
  expect(value(rotated.previous)).toBe("whsec_1")
  expect(rotated.previousUntil).toBe(100 + OVERLAP)
  // An instance still configured with the old secret writes nothing and signs with the new one too.
  expect(observeSecret(rotated, secret(1), 200, OVERLAP)).toBeUndefined()
  expect(value(overlapOf(rotated, secret(1)).previousSecret)).toBe("whsec_2")
  // After the overlap, going back to the old secret is a rotation of its own.
  expect(value(observeSecret(rotated, secret(1), 100 + OVERLAP, OVERLAP)!.previous)).toBe("whsec_2")
})
