/**
 * Bytes of the files a `tree` listing has shown so far, carried from page to
 * page by the cursor, so the server can say once that a dataset being listed
 * will not fit in its cache (the first thing a training script does is list
 * it). A few recent listings are followed; a page whose cursor is not known
 * starts a new count.
 */
import QuickLRU from 'quick-lru'

const LISTINGS = 64

export class ListingSizes {
  #totals = new QuickLRU<string, number>({ maxSize: LISTINGS })
  #warned = false
  #limit: number
  #warn: (path: string, bytes: number) => void

  /** `warn` is told once, the first time a listing passes `limit` bytes. */
  constructor(limit: number, warn: (path: string, bytes: number) => void) {
    this.#limit = limit
    this.#warn = warn
  }

  /** A page of listing `path` (after cursor `after`) showed `bytes` more, and continues at `next`. */
  page(path: string, after: string | undefined, next: string | null, bytes: number): void {
    const key = (cursor: string | undefined) => `${path}\0${cursor ?? ''}`
    const total = (after === undefined ? 0 : (this.#totals.get(key(after)) ?? 0)) + bytes
    if (after !== undefined) this.#totals.delete(key(after))
    if (next !== null) this.#totals.set(key(next), total)
    if (!this.#warned && total > this.#limit) {
      this.#warned = true
      this.#warn(path, total)
    }
  }
}
