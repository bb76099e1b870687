/**
 * W-TinyLFU (Caffeine's design), bounded in bytes: a small LRU admission
 * window in front of a main LRU region, and a frequency sketch that decides
 * whether an entry leaving the window may displace main-region entries.
 *
 * Why: an epoch over a dataset larger than the cache makes plain LRU evict
 * every block just before it is read again (≈0% hits). TinyLFU refuses to let
 * a newcomer push out an entry that has been asked for as often, so a stable
 * part of the dataset stays cached (hit ratio ≈ cache/dataset), while a key
 * that really is asked for more often still gets in (skewed workloads).
 *
 * Admission of a candidate (an entry pushed out of the window):
 * - if the main region has room, it goes in;
 * - else the victims are the main region's least recently used entries, as
 *   many as must go to make room (several when the candidate is larger).
 *   The candidate is admitted only if it beats every one of them; then they
 *   all go. Otherwise it is dropped and none of them goes. (Caffeine compares
 *   victim by victim and may evict a victim the candidate beat before losing
 *   to the next; all-or-nothing never gives up an entry for nothing.)
 * - "beats" means more than one access more (ties and near-ties keep the
 *   incumbent): the candidate's count includes the access that just brought
 *   it in, while a victim's access in the current pass over the data may be
 *   still to come. Without that margin, shuffled epochs admit most
 *   candidates and drift toward LRU (0.25 instead of 0.49 hits in
 *   spec/helpers/cache-simulation.ts); with it, Zipf does slightly better too.
 * Budget: window + main limits sum to `limit` and each ByteLru keeps its own,
 * so the total never exceeds it.
 */
import { ByteLru } from './byte-lru.js'
import { FrequencySketch } from './frequency-sketch.js'
import type { CachePolicy, PolicyOptions } from './policy.js'

export interface TinyLfuTuning {
  /** Share of the bytes given to the admission window, 0..0.5 (default 0.01, as Caffeine starts). */
  windowFraction?: number
  /** Floor for the window in bytes (capped at half the limit), e.g. one block, so a block can pass through it. */
  minWindow?: number
  /** Initial sketch sizing; it grows to the number of entries held anyway. */
  expectedEntries?: number
}

export type TinyLfuOptions = PolicyOptions & TinyLfuTuning

/** A candidate must exceed a victim's estimated frequency by more than this. */
const ADMIT_MARGIN = 1

export class TinyLfu implements CachePolicy {
  #limit: number
  #window: ByteLru
  #main: ByteLru
  #sketch: FrequencySketch
  #maxEntries: number
  #onEvict?: (key: string, value: Buffer) => void

  constructor({ limit, maxEntries = 4_000_000, onEvict, windowFraction = 0.01, minWindow = 0, expectedEntries = 64 }: TinyLfuOptions) {
    if (!(windowFraction >= 0 && windowFraction <= 0.5)) throw new RangeError(`windowFraction must be in 0..0.5, got ${windowFraction}`)
    this.#limit = limit
    this.#onEvict = onEvict
    this.#maxEntries = maxEntries
    this.#sketch = new FrequencySketch(expectedEntries)
    const windowLimit = Math.floor(Math.min(limit / 2, Math.max(limit * windowFraction, minWindow)))
    // keys() lists least recently used first (victims and the window's oldest are read from
    // it) only while quick-lru never starts a second generation, and its size is capped at
    // its maxSize: so no quick-lru entry cap in either region; we enforce maxEntries ourselves.
    const unbounded = Number.MAX_SAFE_INTEGER
    // Whatever the window pushes out is a candidate.
    this.#window = new ByteLru({ limit: windowLimit, maxEntries: unbounded, onEvict: (k, v) => this.#admit(k, v, true) })
    // Main never evicts on its own: #admit makes room first.
    this.#main = new ByteLru({ limit: limit - windowLimit, maxEntries: unbounded, onEvict })
  }

  get limit(): number {
    return this.#limit
  }

  /** A new byte budget: the main region takes the difference (evicting its least recently used entries to shrink). */
  resize(limit: number): void {
    this.#limit = limit
    this.#main.resize(limit - this.#window.limit)
  }

  get bytes(): number {
    return this.#window.bytes + this.#main.bytes
  }

  get size(): number {
    return this.#window.size + this.#main.size
  }

  has(key: string): boolean {
    return this.#window.has(key) || this.#main.has(key)
  }

  /** Look up without counting an access or touching recency. */
  peek(key: string): Buffer | undefined {
    return this.#window.peek(key) ?? this.#main.peek(key)
  }

  /** An access: counted in the sketch, hit or miss; a hit becomes most recently used in its region. */
  get(key: string): Buffer | undefined {
    this.#sketch.increment(key)
    return this.#window.get(key) ?? this.#main.get(key)
  }

  /** Fill after a miss (not counted again). Enters via the window; a value too large for it goes straight to admission. */
  set(key: string, value: Buffer): void {
    this.delete(key)
    if (value.length > this.#main.limit) return // could never be admitted
    if (value.length > this.#window.limit) this.#admit(key, value, false)
    else this.#window.set(key, value)
    while (this.size > this.#maxEntries && this.#window.size > 0) {
      const [oldest] = this.#window.keys()
      const v = this.#window.peek(oldest)!
      this.#window.delete(oldest)
      this.#admit(oldest, v, true)
    }
    // Keep the sketch sized to the entries actually held (Caffeine does this for weighted caches).
    if (this.size > this.#sketch.capacity) this.#sketch.ensureCapacity(this.size, this.keys())
  }

  delete(key: string): boolean {
    return this.#window.delete(key) || this.#main.delete(key)
  }

  /** Drop all entries; the access history stays (it is about keys, not contents). */
  clear(): void {
    this.#window.clear()
    this.#main.clear()
  }

  *keys(): IterableIterator<string> {
    yield* this.#window.keys()
    yield* this.#main.keys()
  }

  /** Move a candidate into the main region if it beats every victim it would displace; else drop it. */
  #admit(key: string, value: Buffer, held: boolean): void {
    const main = this.#main
    let needBytes = value.length - (main.limit - main.bytes)
    let needEntries = this.size + 1 - this.#maxEntries
    const victims: string[] = []
    if (needBytes > 0 || needEntries > 0) {
      const freq = this.#sketch.frequency(key)
      for (const victim of main.keys()) {
        if (needBytes <= 0 && needEntries <= 0) break
        if (freq <= this.#sketch.frequency(victim) + ADMIT_MARGIN) break
        victims.push(victim)
        needBytes -= main.peek(victim)!.length
        needEntries--
      }
      if (needBytes > 0 || needEntries > 0) {
        if (held) this.#onEvict?.(key, value)
        return
      }
    }
    for (const victim of victims) {
      const old = main.peek(victim)!
      main.delete(victim)
      this.#onEvict?.(victim, old)
    }
    main.set(key, value)
  }
}
