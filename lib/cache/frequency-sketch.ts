/**
 * A count-min sketch of 4-bit counters: the access history behind TinyLFU
 * admission. It answers "about how often was this key asked for lately"
 * (never under-counting since the last aging, up to 15), in 8 bytes per
 * expected entry, as Caffeine's does.
 *
 * - 4 rows, each 4 × capacity counters wide (power of two), two per byte.
 *   Four times as many counters per row as entries keeps a key whose counters
 *   all collide rare even when the keys seen are a few times the entries held.
 * - Conservative update: only the counters at the current minimum grow, which
 *   removes most of the over-count collisions would add.
 * - Aging: after 10 × capacity recorded increments every counter is halved, so
 *   history fades and a once-hot key can be displaced.
 * - Hashing is deterministic: FNV-1a of the key, then one murmur3 finalizer
 *   per row with a per-row seed (FNV alone mixes the last characters poorly,
 *   and block keys differ mostly at the end).
 */

const DEPTH = 4
const MAX = 15
const SEEDS = [0x9e3779b9, 0x7f4a7c15, 0x94d049bb, 0xbf58476d]

/** 32-bit FNV-1a over the key's UTF-16 code units. */
export function fnv1a(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** murmur3's fmix32: a bijection that spreads every input bit over all output bits. */
function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)))
}

export class FrequencySketch {
  #capacity = 0
  #width = 0
  #table = new Uint8Array(0)
  #samples = 0
  #sampleSize = 0
  #index = new Uint32Array(DEPTH) // scratch: the key's counter in each row

  /** Sized for about `expectedEntries` cached entries (grown later by ensureCapacity). */
  constructor(expectedEntries = 16) {
    this.#resize(expectedEntries)
  }

  /** Entries the sketch is sized for (a power of two, at least 16). */
  get capacity(): number {
    return this.#capacity
  }

  /** Recorded increments after which all counters are halved. */
  get sampleSize(): number {
    return this.#sampleSize
  }

  /**
   * Grow when more entries are held than sized for. Counters cannot be rehashed,
   * so only the estimates of `carry` (the keys held) survive; forgetting them
   * would let any newcomer displace the entries cached before the growth.
   */
  ensureCapacity(entries: number, carry: Iterable<string> = []): void {
    if (entries <= this.#capacity) return
    const kept = [...carry].map((key) => [key, this.frequency(key)] as const)
    this.#resize(entries)
    for (const [key, freq] of kept) this.#raise(key, freq)
  }

  /** Estimated recent accesses of `key`, 0..15; never below the true count since the last aging. */
  frequency(key: string): number {
    this.#locate(key)
    let min = MAX
    for (let r = 0; r < DEPTH; r++) min = Math.min(min, this.#counter(this.#index[r]))
    return min
  }

  /** Record one access of `key`. */
  increment(key: string): void {
    const min = this.frequency(key)
    if (min === MAX) return // saturated: nothing recorded, so it does not count towards aging
    for (let r = 0; r < DEPTH; r++) {
      const i = this.#index[r]
      if (this.#counter(i) === min) this.#table[i >>> 1] += 1 << ((i & 1) << 2)
    }
    if (++this.#samples >= this.#sampleSize) this.#age()
  }

  /** Forget everything. */
  clear(): void {
    this.#table.fill(0)
    this.#samples = 0
  }

  #resize(entries: number): void {
    this.#capacity = Math.max(16, nextPowerOfTwo(entries))
    this.#width = 4 * this.#capacity
    this.#table = new Uint8Array((DEPTH * this.#width) / 2)
    this.#sampleSize = 10 * this.#capacity
    this.#samples = 0
  }

  /** Lift the key's counters to at least `freq`. */
  #raise(key: string, freq: number): void {
    this.#locate(key)
    for (let r = 0; r < DEPTH; r++) {
      const i = this.#index[r]
      const c = this.#counter(i)
      if (c < freq) this.#table[i >>> 1] += (freq - c) << ((i & 1) << 2)
    }
  }

  #locate(key: string): void {
    const h = fnv1a(key)
    for (let r = 0; r < DEPTH; r++) this.#index[r] = r * this.#width + (mix(h ^ SEEDS[r]) & (this.#width - 1))
  }

  #counter(i: number): number {
    return (this.#table[i >>> 1] >>> ((i & 1) << 2)) & 0xf
  }

  /** Halve every counter: both nibbles of a byte at once. */
  #age(): void {
    const t = this.#table
    for (let i = 0; i < t.length; i++) t[i] = (t[i] >>> 1) & 0x77
    this.#samples >>>= 1
  }
}
