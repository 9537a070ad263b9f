import { Database } from "bun:sqlite"

/** `PRAGMA integrity_check` of the database file at `path`, read only: `["ok"]` when it is sound. */
export const integrityCheck = (path: string): Array<string> => {
  const db = new Database(path, { readonly: true })
  try {
    return db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").all().map((row) => row.integrity_check)
  } finally {
    db.close()
  }
}
