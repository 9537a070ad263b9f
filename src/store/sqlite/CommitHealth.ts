import { statfsSync } from "node:fs"

const RUNS_AS_ROOT = process.getuid?.() === 0

/** SQLite's words for SQLITE_FULL. */
const DISK_FULL = "disk is full"

/** After a full disk, readiness returns once this much is free: room for a WAL's worth of pages before its checkpoint. */
export const FREE_TO_RESUME_BYTES = 4 * 1024 * 1024

/**
 * Whether commits land, for readiness. A failed commit marks the store failing
 * until one succeeds. After a full disk a success proves little (a small write
 * can fit in pages the WAL already holds while the next batch fails), so the
 * filesystem must have room again too.
 */
export class CommitHealth {
  private failure: { readonly error: string; readonly diskFull: boolean } | undefined

  /** `dir`: where the database's files are; undefined in memory. */
  constructor(private readonly dir: string | undefined) {}

  succeeded(): void {
    if (this.failure?.diskFull === false) this.failure = undefined
  }

  failed(error: string): void {
    this.failure = { error, diskFull: error.includes(DISK_FULL) }
  }

  /** Why the last commit failed, while that still stands. */
  get failing(): string | undefined {
    return this.failure?.error
  }

  /** Whether a write should be tried to see if the failure has passed: after a full disk, only once there is room. */
  mayResume(): boolean {
    if (this.failure?.diskFull !== true || this.dir === undefined) return true
    try {
      const { bavail, bfree, bsize } = statfsSync(this.dir)
      // Root may also write into the blocks a filesystem reserves (ext4's 5 %), as SQLite then does.
      return (RUNS_AS_ROOT ? bfree : bavail) * bsize >= FREE_TO_RESUME_BYTES
    } catch {
      return false
    }
  }

  /** A write tried for the purpose landed: the failure has passed. */
  resumed(): void {
    this.failure = undefined
  }
}
