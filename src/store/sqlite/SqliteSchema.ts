import { Database } from "bun:sqlite"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { DELIVERY_FIELDS, NEW_FIELDS, QUEUED_FIELDS } from "../DeliveryRecord.ts"

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_age ON events (received_at);
CREATE TABLE IF NOT EXISTS pins (
  room TEXT PRIMARY KEY,
  destination TEXT NOT NULL,
  call TEXT NOT NULL,
  pinned_at INTEGER NOT NULL,
  start TEXT,
  ended_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  tenant TEXT NOT NULL,
  url TEXT NOT NULL,
  room TEXT,
  domain TEXT,
  body TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER,
  last_error TEXT,
  next_attempt_at INTEGER NOT NULL,
  event_created_at INTEGER,
  secret TEXT,
  trace TEXT,
  created_at INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, id);
CREATE INDEX IF NOT EXISTS deliveries_by_tenant ON deliveries (tenant, status, id);
CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (status, updated_at);
-- The queue: pending deliveries by call lane (and so by tenant) and by how long they have waited.
CREATE INDEX IF NOT EXISTS pending_by_lane ON deliveries (tenant, room, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS pending_by_age ON deliveries (queued_at) WHERE status = 'pending';
-- The queue's depth, kept by triggers so no write can forget it and nothing counts rows to read it.
CREATE TABLE IF NOT EXISTS queue_depth (id INTEGER PRIMARY KEY CHECK (id = 0), pending INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS queue_in AFTER INSERT ON deliveries WHEN NEW.status = 'pending'
  BEGIN UPDATE queue_depth SET pending = pending + 1; END;
CREATE TRIGGER IF NOT EXISTS queue_moved AFTER UPDATE OF status ON deliveries WHEN (OLD.status = 'pending') != (NEW.status = 'pending')
  BEGIN UPDATE queue_depth SET pending = pending + (CASE WHEN NEW.status = 'pending' THEN 1 ELSE -1 END); END;
CREATE TRIGGER IF NOT EXISTS queue_out AFTER DELETE ON deliveries WHEN OLD.status = 'pending'
  BEGIN UPDATE queue_depth SET pending = pending - 1; END;
CREATE TABLE IF NOT EXISTS attempts (
  delivery_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  status INTEGER,
  error TEXT,
  latency_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (delivery_id);
CREATE TABLE IF NOT EXISTS unroutable (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  room TEXT,
  x_to_ip TEXT,
  to_header TEXT,
  dialled TEXT,
  domain TEXT,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS unroutable_by_age ON unroutable (at);
CREATE TABLE IF NOT EXISTS hooks (
  host TEXT PRIMARY KEY,
  hook TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS numbers (
  number TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

const CALLS_COLUMNS: ReadonlyArray<readonly [table: string, definition: string]> = [
  ["deliveries", "call TEXT"],
  ["pins", "room_sid TEXT"],
  ["unroutable", "call TEXT"]
]

const CALLS = `
CREATE INDEX IF NOT EXISTS deliveries_by_call ON deliveries (call) WHERE call IS NOT NULL;
CREATE INDEX IF NOT EXISTS unroutable_by_domain ON unroutable (domain, reason, at);
-- One call per room instance (its sid, else its name); JSON columns hold the routing and sip attributes.
CREATE TABLE IF NOT EXISTS calls (
  key TEXT PRIMARY KEY,
  room TEXT NOT NULL,
  room_sid TEXT,
  tenant TEXT,
  status TEXT NOT NULL,
  domain TEXT,
  from_number TEXT,
  to_number TEXT,
  sip_call_id TEXT,
  routing TEXT NOT NULL,
  sip TEXT,
  first_seen_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  ended_by TEXT,
  disconnect_reason TEXT,
  sort_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_by_sort ON calls (sort_at, key);
CREATE INDEX IF NOT EXISTS calls_by_room ON calls (room, sort_at);
CREATE INDEX IF NOT EXISTS calls_by_age ON calls (updated_at);
-- Each LiveKit event of a call; \`body\` is kept while the call is unrouted for a reason, for a replay.
CREATE TABLE IF NOT EXISTS call_events (
  call TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  at INTEGER NOT NULL,
  created_at INTEGER,
  body TEXT
);
CREATE INDEX IF NOT EXISTS call_events_by_call ON call_events (call, at);
-- Every change of a delivery (queued, attempted, expired, requeued), in order: what the live stream resumes from.
CREATE TABLE IF NOT EXISTS feed (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_by_age ON feed (at);
`

/**
 * Fewer pages written per event (each b-tree an event touches is a page in the commit):
 * - Calls by number: a rowid table (new calls append) with its key unique, their timelines and
 *   deliveries found by that number. Keyed by room sid, a new call landed at a random place in
 *   three trees; now only the key and room indexes take one. The listing's index prunes them too
 *   (a call last touched before a time started before it).
 * - Deliveries by tenant only while pending (the queue's reads) or failed (requeues): an index of
 *   every status moved each delivery's entry when it finished, and the one by status served no read.
 * - The feed is pruned oldest first by its sequence, which follows time, so it needs no index by age.
 */
const LIGHTER_WRITES = `
CREATE TABLE calls_numbered (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  room TEXT NOT NULL,
  room_sid TEXT,
  tenant TEXT,
  status TEXT NOT NULL,
  domain TEXT,
  from_number TEXT,
  to_number TEXT,
  sip_call_id TEXT,
  routing TEXT NOT NULL,
  sip TEXT,
  first_seen_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  ended_by TEXT,
  disconnect_reason TEXT,
  sort_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
INSERT INTO calls_numbered (key, room, room_sid, tenant, status, domain, from_number, to_number, sip_call_id, routing, sip,
    first_seen_at, started_at, ended_at, ended_by, disconnect_reason, sort_at, updated_at)
  SELECT key, room, room_sid, tenant, status, domain, from_number, to_number, sip_call_id, routing, sip,
    first_seen_at, started_at, ended_at, ended_by, disconnect_reason, sort_at, updated_at FROM calls ORDER BY sort_at, key;
DROP TABLE calls;
ALTER TABLE calls_numbered RENAME TO calls;
CREATE INDEX calls_by_sort ON calls (sort_at, key);
CREATE INDEX calls_by_room ON calls (room, sort_at);
CREATE TABLE call_events_numbered (
  call_id INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  at INTEGER NOT NULL,
  created_at INTEGER,
  body TEXT
);
INSERT INTO call_events_numbered (call_id, event_id, event_type, at, created_at, body)
  SELECT c.id, e.event_id, e.event_type, e.at, e.created_at, e.body FROM call_events AS e JOIN calls AS c ON c.key = e.call ORDER BY e.rowid;
DROP TABLE call_events;
ALTER TABLE call_events_numbered RENAME TO call_events;
CREATE INDEX call_events_by_call ON call_events (call_id, at);
ALTER TABLE deliveries ADD COLUMN call_id INTEGER;
UPDATE deliveries SET call_id = (SELECT id FROM calls WHERE calls.key = deliveries.call) WHERE call IS NOT NULL;
DROP INDEX deliveries_by_call;
CREATE INDEX deliveries_by_call ON deliveries (call_id) WHERE call_id IS NOT NULL;
DROP INDEX deliveries_by_tenant;
DROP INDEX deliveries_by_status;
CREATE INDEX pending_by_tenant ON deliveries (tenant, id) WHERE status = 'pending';
CREATE INDEX failed_by_tenant ON deliveries (tenant, created_at) WHERE status = 'failed';
DROP INDEX feed_by_age;
`

/** A delivery field's column: its name in snake case. */
const API_TOKENS = `
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  record TEXT NOT NULL
) WITHOUT ROWID;
`

const EXPIRING = `
CREATE TABLE expiring (
  kind TEXT NOT NULL,
  hash TEXT NOT NULL,
  record TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (kind, hash)
) WITHOUT ROWID;
`

/**
 * Delivery attempts counted per minute (see domain/AttemptMinutes.ts): what ended in the minute,
 * and how many took each latency bucket's time. Written with the attempts; read an hour at a time.
 */
const ATTEMPT_MINUTES = `
CREATE TABLE IF NOT EXISTS attempt_minutes (
  minute INTEGER PRIMARY KEY,
  succeeded INTEGER NOT NULL, failed INTEGER NOT NULL,
  b0 INTEGER NOT NULL, b1 INTEGER NOT NULL, b2 INTEGER NOT NULL, b3 INTEGER NOT NULL, b4 INTEGER NOT NULL, b5 INTEGER NOT NULL,
  b6 INTEGER NOT NULL, b7 INTEGER NOT NULL, b8 INTEGER NOT NULL, b9 INTEGER NOT NULL, b10 INTEGER NOT NULL, b11 INTEGER NOT NULL
);
`

/** The tally columns of attempt_minutes, in the order of the domain's tallyCounts: b0 to b11 are its 12 latency buckets. */
export const TALLY_COLUMNS = ["succeeded", "failed", ...Array.from({ length: 12 }, (_, i) => `b${i}`)]

const columnOf = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** Reads the columns back under their fields' names, so a row decodes as it is. */
const selecting = (fields: ReadonlyArray<string>) => fields.map((field) => `${columnOf(field)} AS ${field}`).join(", ")

export const DELIVERY_COLUMNS = selecting(DELIVERY_FIELDS)
export const QUEUED_COLUMNS = selecting(QUEUED_FIELDS)
/** The columns acceptance writes, in NEW_FIELDS order. */
export const NEW_COLUMNS = NEW_FIELDS.map(columnOf).join(", ")

/**
 * Columns added by builds before numbered migrations, with the backfill each needs: a table
 * such a build created may lack them, and CREATE TABLE IF NOT EXISTS leaves it as it is.
 */
const UNNUMBERED_COLUMNS: ReadonlyArray<readonly [table: string, definition: string, backfill?: string]> = [
  ["deliveries", "room TEXT"],
  ["deliveries", "event_created_at INTEGER"],
  ["deliveries", "queued_at INTEGER NOT NULL DEFAULT 0", "UPDATE deliveries SET queued_at = created_at"],
  ["deliveries", "secret TEXT"],
  ["deliveries", "trace TEXT"],
  // A pin from before call events has no start: its call gets no call.ended.
  ["pins", "start TEXT"],
  ["pins", "ended_at INTEGER"]
]

/**
 * The schema's history: migration n brings a database at version n - 1 to n, and
 * `PRAGMA user_version` records the last one applied. Append new ones; never edit one.
 */
/** Adds a column to an existing table that lacks it (a table yet to be created gets it from its CREATE). */
const addColumn = (db: Database, table: string, definition: string, backfill?: string) => {
  const present = db.query<{ name: string }, []>(`SELECT name FROM pragma_table_info('${table}')`).all()
  if (present.length === 0 || present.some((column) => definition.startsWith(`${column.name} `))) return
  db.exec(`ALTER TABLE ${table} ADD COLUMN ${definition}`)
  if (backfill) db.exec(backfill)
}

const MIGRATIONS: ReadonlyArray<(db: Database) => void> = [
  // 1: the schema when numbering began, from nothing or from any build before it (version 0).
  (db) => {
    UNNUMBERED_COLUMNS.forEach(([table, definition, backfill]) => addColumn(db, table, definition, backfill))
    db.exec(SCHEMA)
    // The queue's depth from here on is kept by the triggers; count what is pending once, to start from.
    db.exec("INSERT OR REPLACE INTO queue_depth (id, pending) SELECT 0, COUNT(*) FROM deliveries WHERE status = 'pending'")
  },
  // 2: call records and their timelines, pins by room instance, deliveries by call, and the feed of delivery changes.
  (db) => {
    CALLS_COLUMNS.forEach(([table, definition]) => addColumn(db, table, definition))
    db.exec(CALLS)
  },
  // 3: fewer pages written per event (see LIGHTER_WRITES).
  (db) => db.exec(LIGHTER_WRITES),
  // 4: tenant tokens made through the admin API, by the SHA-256 of each (the token itself is never kept).
  (db) => db.exec(API_TOKENS),
  // 5: console sessions and portal links, by the SHA-256 of each secret, until they expire.
  (db) => db.exec(EXPIRING),
  // 6: delivery attempts counted per minute, for the overview.
  (db) => db.exec(ATTEMPT_MINUTES)
]

/** Applies the migrations the database has not had, each in its own transaction with the version it reaches. */
const migrate = (db: Database, to: number) => {
  const from = db.query<{ user_version: number }, []>("PRAGMA user_version").get()?.user_version ?? 0
  MIGRATIONS.slice(from, to).forEach((migration, i) =>
    db
      .transaction(() => {
        migration(db)
        db.exec(`PRAGMA user_version = ${from + i + 1}`)
      })
      .immediate()
  )
}

/**
 * Opens (creating it and its folder if needed) and upgrades the database. Throws on failure.
 * `version` stops the upgrade early, for tests that write a data file as an older build did.
 */
export const openDatabase = (path: string, version = MIGRATIONS.length): Database => {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path, { create: true, strict: true })
  db.exec("PRAGMA journal_mode = WAL")
  // FULL: an acknowledged event survives power loss, not just a process crash.
  db.exec("PRAGMA synchronous = FULL")
  // Wait briefly for a competing writer, then report the store unavailable (→ 503).
  db.exec("PRAGMA busy_timeout = 1000")
  migrate(db, version)
  return db
}

/** A consistent copy of the database as of its last commit, written to a new file `into` (SQLite's VACUUM INTO: compact, and readable while it runs). */
export const snapshotInto = (db: Database, into: string): void => {
  db.query("VACUUM INTO ?").run(into)
}
