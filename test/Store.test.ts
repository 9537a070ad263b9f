import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { TEST_TIMEOUT_MS } from "./support/setup.ts"
import { Database } from "bun:sqlite"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Layer, Option, Schema } from "effect"
import { StoredToken, tokenHash } from "../src/domain/AdminToken.ts"
import { MINUTE_MS, MINUTE_TALLY_KEPT } from "../src/domain/AttemptMinutes.ts"
import type { StoreUnavailable } from "../src/domain/Errors.ts"
import type { StoreServices } from "../src/store/StoreLive.ts"
import { StoreLive } from "../src/store/StoreLive.ts"
import { openDatabase } from "../src/store/sqlite/SqliteSchema.ts"
import { acceptance, acceptOne, attempt, deliver, finish, ids, newDelivery, pendingAll, pin, pinOne, query, recordOne, runOn, storeContract, unroutableEvent } from "./support/storeContract.ts"
import { Store } from "./support/store.ts"
import { callChange } from "./support/callContract.ts"

// Bun applies the preload's default only to the first file of a run (oven-sh/bun#43787): each file sets its own.
setDefaultTimeout(TEST_TIMEOUT_MS)

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const dirs: string[] = []
const tempDbPath = () => {
  const dir = mkdtempSync(join(tmpdir(), "store-test-"))
  dirs.push(dir)
  // A sub-directory that does not exist yet: the store creates it.
  return join(dir, "nested", "router.db")
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** Runs a program against a fresh store (in memory unless a layer is given); the scope closes the database. */
const run = <A>(program: Effect.Effect<A, StoreUnavailable, StoreServices>, layer: Layer.Layer<StoreServices, StoreUnavailable> = StoreLive.memory()) =>
  runOn(layer)(program)

storeContract(() => StoreLive.memory())

describe("prune, SQLite", () => {
  test("works past the 2000-row slice: 4500 delivered rows, their attempts and events, 2100 pins and unroutable records all go", async () => {
    const path = tempDbPath()
    const layer = StoreLive.sqlite(path)
    const pruned = await run(
      Effect.gen(function* () {
        const store = yield* Store
        const old = Array.from({ length: 4_500 }, (_, i) => i)
        // Many writes in flight at once: the group committer batches them.
        yield* Effect.forEach(old, (i) => Effect.flatMap(deliver(i, { eventId: `old-${i}` }), (d) => finish(d.id, "delivered", 10_000 + i)), {
          concurrency: 256,
          discard: true
        })
        yield* Effect.forEach(
          Array.from({ length: 2_100 }, (_, i) => i),
          (i) =>
            Effect.zipRight(
              acceptOne(store, acceptance({ eventId: `u-${i}`, receivedAt: 20_000, unroutable: unroutableEvent(`u-${i}`, 20_000) })),
              acceptOne(store, acceptance({ eventId: `p-${i}`, receivedAt: 20_000, pinChange: { _tag: "Set", pin: pin(`room-${i}`) } }))
            ),
          { concurrency: 256, discard: true }
        )
        const keep = yield* Effect.forEach([0, 1, 2], () => deliver(50, { tenant: "keep" }))
        for (const d of keep) yield* recordOne(store, d.id, attempt({ at: 60 }))

        const result = yield* store.prune(10_000_000, { delivered: 1, failed: 1, dedupe: 1, unroutable: 1, pins: 1 })
        expect(ids(yield* store.deliveries(query({ limit: 10_000 })))).toEqual(ids(keep).reverse())
        expect(yield* store.unroutable(10_000)).toEqual([])
        expect(yield* pinOne(store, "room-0")).toEqual(Option.none())
        expect(yield* pinOne(store, "room-2099")).toEqual(Option.none())
        return result
      }),
      layer
    )
    expect(pruned).toEqual({ deliveries: 4_500, events: 4_500 + 2 * 2_100 + 3, unroutable: 2_100, pins: 2_100, calls: 0, feed: 9_006 })
    // Attempt history is invisible through the interface once its delivery is gone, so look at the table:
    // only the three kept deliveries' attempts remain.
    const db = new Database(path, { readonly: true })
    try {
      expect(db.query<{ n: number }, []>("SELECT count(*) AS n FROM attempts").get()?.n).toBe(3)
    } finally {
      db.close()
    }
  })
})

// ---------------------------------------------------------------------------
// persistence
// ---------------------------------------------------------------------------

describe("attempt tallies, SQLite", () => {
  const M = 29_000_000
  const finalAt = (minute: number) => attempt({ at: (M + minute) * MINUTE_MS, status: 200, error: null, final: "delivered" })

  test("a minute's tally goes in the write of an attempt MINUTE_TALLY_KEPT minutes later; younger ones stay", () =>
    run(
      Effect.gen(function* () {
        const store = yield* Store
        for (const minute of [0, 1, MINUTE_TALLY_KEPT + 1]) yield* recordOne(store, (yield* deliver(1)).id, finalAt(minute))
        const kept = yield* store.attemptMinutes(M, M + MINUTE_TALLY_KEPT + 1)
        expect(kept.map((t) => t.minute).sort()).toEqual([M + 1, M + MINUTE_TALLY_KEPT + 1])
      })
    ))

  test("a tally that cannot be written fails the write as StoreUnavailable, and the attempt is rolled back with it", async () => {
    const path = tempDbPath()
    await run(
      Effect.gen(function* () {
        const store = yield* Store
        const d = yield* deliver(1_000)
        const other = new Database(path)
        other.exec("DROP TABLE attempt_minutes")
        other.close()
        const written = yield* Effect.either(recordOne(store, d.id, finalAt(0)))
        expect(written._tag === "Left" && written.left._tag).toBe("StoreUnavailable")
        expect(Option.getOrThrow(yield* store.delivery(d.id))).toMatchObject({ status: "pending", history: [] })
      }),
      StoreLive.sqlite(path)
    )
  })
})

describe("persistence", () => {
  test("a SQLite file keeps pending deliveries, history, pins, unroutable records and dedupe ids across a restart", async () => {
    const path = tempDbPath()
    const before = await run(
      Effect.gen(function* () {
        const store = yield* Store
        const a = yield* deliver(1_000, { eventId: "keep-a" })
        const b = yield* deliver(1_100, { eventId: "keep-b" })
        const c = yield* deliver(1_200, { eventId: "done-c" })
        yield* recordOne(store, a.id, attempt({ at: 1_500, nextAttemptAt: 9_000 }))
        yield* finish(c.id, "delivered", 1_600)
        yield* acceptOne(store, acceptance({ eventId: "pin-1", receivedAt: 1_300, pinChange: { _tag: "Set", pin: pin("room-p") } }))
        yield* acceptOne(store, acceptance({ eventId: "u-1", receivedAt: 1_400, unroutable: unroutableEvent("u-1", 1_400) }))
        return { pending: yield* pendingAll(store), detailA: yield* store.delivery(a.id), all: yield* store.deliveries(query()), maxId: Math.max(a.id, b.id, c.id) }
      }),
      StoreLive.sqlite(path)
    )
    expect(ids(before.pending)).toHaveLength(2)

    // A new layer on the same file: a restart.
    await run(
      Effect.gen(function* () {
        const store = yield* Store
        expect(yield* pendingAll(store)).toEqual(before.pending)
        expect(yield* store.delivery(before.pending[0]!.id)).toEqual(before.detailA)
        expect(yield* store.deliveries(query())).toEqual(before.all)
        expect(yield* pinOne(store, "room-p")).toEqual(Option.some(pin("room-p")))
        expect((yield* store.unroutable(10)).map((u) => u.eventId)).toEqual(["u-1"])
        for (const eventId of ["keep-a", "done-c", "pin-1", "u-1"]) {
          expect(yield* acceptOne(store, acceptance({ eventId, receivedAt: 2_000, delivery: newDelivery({ eventId }) }))).toEqual({ _tag: "Duplicate" })
        }
        // Ids keep increasing after a restart.
        expect((yield* deliver(3_000)).id).toBeGreaterThan(before.maxId)
      }),
      StoreLive.sqlite(path)
    )
  })

  // `CREATE TABLE IF NOT EXISTS` leaves an existing table as it is, so a column added to
  // the schema (queued_at) is missing from a data file written by the previous release,
  // a build before numbered migrations: its user_version is 0.
  test("a data file written before deliveries had queued_at still opens, keeps its pending row and accepts new ones", async () => {
    const path = tempDbPath()
    // Version 1 is the schema numbering began with: what such a build had, but for the table changed below.
    const db = openDatabase(path, 1)
    db.exec(`PRAGMA user_version = 0;
      DROP TABLE deliveries;
      CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event_type TEXT NOT NULL, tenant TEXT NOT NULL,
        url TEXT NOT NULL, room TEXT, domain TEXT, body TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT, next_attempt_at INTEGER NOT NULL,
        event_created_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      INSERT INTO deliveries (event_id, event_type, tenant, url, body, next_attempt_at, created_at, updated_at)
        VALUES ('old-1', 'participant_joined', 't.example', 'https://t.example/h', '{}', 1000, 1000, 1000);`)
    db.close()

    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const store = yield* Store
        const pending = yield* pendingAll(store)
        const fresh = yield* deliver(2_000)
        return { pending, fresh }
      }).pipe(Effect.provide(StoreLive.sqlite(path)), Effect.scoped)
    )
    if (Exit.isFailure(exit)) throw new Error(`the store did not open the older file: ${Cause.pretty(exit.cause)}`)
    expect(exit.value.pending.map((d) => [d.eventId, d.createdAt])).toEqual([["old-1", 1_000]])
    expect(exit.value.fresh.queuedAt).toBe(2_000)
  })

  test("a new data file is at the last migration's version, and stays there, its queue intact, across a restart", async () => {
    const path = tempDbPath()
    const version = () => {
      const db = new Database(path, { readonly: true })
      try {
        return db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version
      } finally {
        db.close()
      }
    }
    await run(Effect.asVoid(deliver(1_000)), StoreLive.sqlite(path))
    expect(version()).toBe(6)
    const depth = await run(Effect.flatMap(Store, (store) => Effect.map(store.queueStats, (s) => s.depth)), StoreLive.sqlite(path))
    expect(depth).toBe(1)
    expect(version()).toBe(6)
  })

  test("a data file from before API tokens (version 3) keeps its queue and takes tokens", async () => {
    const path = tempDbPath()
    await run(Effect.asVoid(deliver(1_000)), StoreLive.sqlite(path))
    const db = new Database(path)
    db.exec("DROP TABLE tokens; DROP TABLE expiring; PRAGMA user_version = 3")
    db.close()
    const token = Schema.decodeSync(StoredToken)({ id: "tok_0123456789abcdef", hash: tokenHash("srt_x"), hosts: ["a.example"], label: null, createdAt: 1 })
    const after = await run(
      Effect.gen(function* () {
        const store = yield* Store
        yield* store.putToken(token)
        return { depth: (yield* store.queueStats).depth, tokens: yield* store.tokens }
      }),
      StoreLive.sqlite(path)
    )
    expect(after).toEqual({ depth: 1, tokens: [token] })
  })

  test("a data file from before calls were numbered (version 2) keeps its calls, their timelines, kept bodies and deliveries, and their next events join them", async () => {
    const path = tempDbPath()
    const db = openDatabase(path, 2)
    db.exec(`INSERT INTO calls (key, room, room_sid, tenant, status, domain, routing, first_seen_at, started_at, sort_at, updated_at)
        VALUES ('RM_v2', 'v2-room', 'RM_v2', NULL, 'unrouted', 'sip.unknown.example', '{"rule":null,"pattern":null,"source":null,"reason":"unknown_domain"}', 1000, 1000, 1000, 1000);
      INSERT INTO call_events (call, event_id, event_type, at, created_at, body) VALUES ('RM_v2', 'v2-1', 'participant_joined', 1000, 999, '{"kept":true}');
      INSERT INTO unroutable (at, event_id, event_type, room, domain, reason, call) VALUES (1000, 'v2-1', 'participant_joined', 'v2-room', 'sip.unknown.example', 'unknown_domain', 'RM_v2');
      INSERT INTO deliveries (event_id, event_type, tenant, url, room, body, next_attempt_at, created_at, queued_at, updated_at, call)
        VALUES ('v2-0', 'participant_joined', 't.example', 'https://t.example/h', 'v2-room', '{}', 1000, 1000, 1000, 1000, 'RM_v2');`)
    db.close()

    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const store = yield* Store
        const before = Option.getOrThrow(yield* store.call("v2-room"))
        const unrouted = yield* store.unrouted("sip.unknown.example", 0)
        yield* acceptOne(store, acceptance({ eventId: "v2-2", receivedAt: 2_000, call: callChange("RM_v2", "v2-2", 2_000, { room: "v2-room", eventType: "track_published" }) }))
        return { before, unrouted, after: Option.getOrThrow(yield* store.call("RM_v2")) }
      }).pipe(Effect.provide(StoreLive.sqlite(path)), Effect.scoped)
    )
    if (Exit.isFailure(exit)) throw new Error(`the store did not open the older file: ${Cause.pretty(exit.cause)}`)
    const { before, unrouted, after } = exit.value
    expect(before).toMatchObject({ key: "RM_v2", status: "unrouted", domain: "sip.unknown.example", deliveries: { pending: 1 } })
    expect(before.timeline.events.map((e) => e.eventId)).toEqual(["v2-1"])
    expect(unrouted).toEqual([{ call: "RM_v2", eventId: "v2-1", at: 1_000, body: '{"kept":true}' }])
    expect(after.timeline.events.map((e) => e.eventId)).toEqual(["v2-1", "v2-2"])
    expect(after.deliveries.pending).toBe(1)
  })

  test("a data file written before call events still opens: its pins read without a start (so their calls end nothing), and new calls start and end", async () => {
    const path = tempDbPath()
    const db = openDatabase(path, 1)
    const old = pin("old-call")
    db.exec(`PRAGMA user_version = 0;
      DROP TABLE pins;
      CREATE TABLE pins (room TEXT PRIMARY KEY, destination TEXT NOT NULL, call TEXT NOT NULL, pinned_at INTEGER NOT NULL) WITHOUT ROWID;`)
    db.query("INSERT INTO pins (room, destination, call, pinned_at) VALUES (?, ?, ?, ?)").run(old.room, JSON.stringify(old.destination), JSON.stringify(old.call), 1_000)
    db.close()

    const callEvent = (room: string, type: string) => newDelivery({ eventType: type, room })
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const store = yield* Store
        const oldPin = yield* pinOne(store, "old-call")
        const fresh = { ...pin("new-call"), start: { at: 2_000, identity: "sip_+1", sid: "PA_1" } }
        const started = yield* acceptOne(store, acceptance({ eventId: "n1", receivedAt: 2_000, pinChange: { _tag: "Set", pin: fresh }, callEvent: callEvent("new-call", "call.started") }))
        const ended = yield* acceptOne(store, acceptance({ eventId: "n2", receivedAt: 3_000, pinChange: { _tag: "End", room: "new-call", at: 3_000 }, callEvent: callEvent("new-call", "call.ended") }))
        return { oldPin, started, ended, newPin: yield* pinOne(store, "new-call") }
      }).pipe(Effect.provide(StoreLive.sqlite(path)), Effect.scoped)
    )
    if (Exit.isFailure(exit)) throw new Error(`the store did not open the older file: ${Cause.pretty(exit.cause)}`)
    expect(exit.value.oldPin).toEqual(Option.some(old))
    expect(Option.getOrThrow(exit.value.oldPin).start).toBeUndefined()
    expect(exit.value.started).toMatchObject({ _tag: "Accepted", callEvent: { eventType: "call.started" } })
    expect(exit.value.ended).toMatchObject({ _tag: "Accepted", callEvent: { eventType: "call.ended" } })
    expect(exit.value.newPin).toEqual(Option.some({ ...pin("new-call"), start: { at: 2_000, identity: "sip_+1", sid: "PA_1" }, endedAt: 3_000 }))
  })
})
