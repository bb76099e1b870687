/**
 * A least-recently-used map of Buffers bounded in bytes.
 *
 * quick-lru bounds entries, not bytes, and within its newest generation a
 * `get` does not refresh recency. So we keep the byte budget here, refresh on
 * every hit (delete + set moves a key to the newest end), and evict from the
 * oldest end until the budget holds. quick-lru's own entry bound stays as a
 * cap on bookkeeping memory for very many tiny entries.
 */
import QuickLRU from 'quick-lru'

export interface ByteLruOptions {
  /** Byte budget. */
  limit: number
  /** Cap on the number of entries (bookkeeping memory). */
  maxEntries?: number
  onEvict?: (key: string, value: Buffer) => void
}

export class ByteLru {
  #limit: number
  #bytes = 0
  #lru: QuickLRU<string, Buffer>
  #onEvict?: (key: string, value: Buffer) => void

  constructor({ limit, maxEntries = 4_000_000, onEvict }: ByteLruOptions) {
    this.#limit = limit
    this.#onEvict = onEvict
    // quick-lru drops a whole generation at once when its entry cap is hit; account for it.
    this.#lru = new QuickLRU({ maxSize: maxEntries, onEviction: (key, value) => this.#evicted(key, value) })
  }

  get limit(): number {
    return this.#limit
  }

  /** A new byte budget; a smaller one evicts the least recently used entries at once. */
  resize(limit: number): void {
    this.#limit = Math.max(0, limit)
    if (this.#bytes > this.#limit) this.#shrink()
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#lru.size
  }

  has(key: string): boolean {
    return this.#lru.has(key)
  }

  /** Look up without touching recency. */
  peek(key: string): Buffer | undefined {
    return this.#lru.peek(key)
  }

  /** Look up and mark as most recently used. */
  get(key: string): Buffer | undefined {
    const value = this.#lru.peek(key)
    if (value === undefined) return undefined
    this.#lru.delete(key)
    this.#lru.set(key, value)
    return value
  }

  /** Insert; a value larger than the whole budget is not cached. */
  set(key: string, value: Buffer): void {
    this.delete(key)
    if (value.length > this.limit) return
    this.#lru.set(key, value)
    this.#bytes += value.length
    if (this.#bytes > this.limit) this.#shrink()
  }

  delete(key: string): boolean {
    const value = this.#lru.peek(key)
    if (value === undefined) return false
    this.#lru.delete(key)
    this.#bytes -= value.length
    return true
  }

  clear(): void {
    this.#lru.clear()
    this.#bytes = 0
  }

  keys(): IterableIterator<string> {
    return this.#lru.keys()
  }

  #shrink(): void {
    for (const [key, value] of this.#lru.entriesAscending()) {
      if (this.#bytes <= this.limit) break
      this.#lru.delete(key)
      this.#evicted(key, value)
    }
  }

  #evicted(key: string, value: Buffer): void {
    this.#bytes -= value.length
    this.#onEvict?.(key, value)
  }
}
