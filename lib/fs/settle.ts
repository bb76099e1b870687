/**
 * When a version of a file may be trusted: the racy-git rule.
 *
 * Linux stamps a file's mtime and ctime when a write *starts*. A reader that
 * sees identity X, reads, and sees X again may still have read bytes from
 * before a write that began before it and has not finished: the identity is
 * already the final one, the bytes are not. So a version counts as settled
 * only once no write can still be under way: `window` ms after its ctime
 * (which no one can set; only the kernel stamps it), or, where the ctime
 * comes from a clock ahead of ours (a network filesystem), `window` ms after
 * this process first saw the version unchanged. The window is the longest a
 * single write() call is assumed to take once it has stamped the file.
 *
 * Reads of a version that has not settled wait until it has, so a reader
 * gets one whole version; a file that keeps changing fails with ECHANGED.
 */
import type { ReadableFile } from './fd-file.js'
import type { FileStat } from './identity.js'
import { setTimeout as sleep } from 'node:timers/promises'
import QuickLRU from 'quick-lru'
import { error } from '../errors.js'
import { identityOf } from './identity.js'

/** Default settle window: a write() that stamped the file is done within a second. */
export const DEFAULT_SETTLE_MS = 1000

/** Versions remembered with the time they were first seen, for ctimes from a clock ahead of ours. */
const MAX_SEEN = 16_384

export class Settle {
  readonly window: number
  #now: () => number
  #seen: QuickLRU<string, number>

  constructor(window = DEFAULT_SETTLE_MS, now: () => number = Date.now) {
    this.window = window
    this.#now = now
    this.#seen = new QuickLRU({ maxSize: MAX_SEEN })
  }

  /** Ms until this version counts as settled; 0 when it does now. */
  remaining(st: FileStat): number {
    if (this.window <= 0) return 0
    const now = this.#now()
    const byCtime = Number(st.ctimeNs / 1_000_000n) + this.window - now
    if (byCtime <= 0) return 0
    const key = identityOf(st)
    let first = this.#seen.get(key)
    if (first === undefined) this.#seen.set(key, (first = now))
    return Math.max(0, Math.min(byCtime, first + this.window - now))
  }

  /**
   * Wait until the file open as `fh` (whose fstat is `st`) has settled, and
   * return its stats then. Fails with ECHANGED when it is still changing
   * after `rounds` windows.
   */
  async wait(fh: ReadableFile, st: FileStat, shown: string, rounds = 3): Promise<FileStat> {
    const deadline = this.#now() + rounds * this.window
    for (let wait = this.remaining(st); wait > 0; wait = this.remaining(st)) {
      if (this.#now() + wait > deadline) {
        throw error('ECHANGED', `${shown} is being written to (it changed within the last ${this.window} ms, again and again); read it once it is left alone`)
      }
      await sleep(wait)
      st = await fh.stat({ bigint: true })
    }
    return st
  }
}
