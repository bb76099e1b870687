/**
 * Trace-driven comparison of cache policies on the workloads that matter for
 * training: epochs over a dataset larger than the cache (same order and
 * shuffled, equal and variable sizes) and a skewed (Zipf) one. Deterministic
 * (seeded PRNG), no dependencies; used by the specs and by
 * `npm run bench:policies`, which prints the table.
 */
import { createPolicy, type PolicyName } from '../../lib/cache/policy.js'
import { prng as mulberry32 } from '../../lib/prng.js'

export { mulberry32 }

export interface Workload {
  name: string
  /** Cache byte budget. */
  limit: number
  /** Bytes of each key. */
  sizes: Map<string, number>
  /** The trace in rounds (epochs); a hit ratio is reported per round. */
  rounds: string[][]
}

export interface SimResult {
  /** Hit ratio of each round. */
  rounds: number[]
  /** Hit ratio over all rounds but the first (the cold start). */
  warm: number
}


function shuffle<T>(items: T[], rnd: () => number): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

/** Keys shaped like the block cache's: `${dev}:${ino}:${size}:${mtimeNs}#${block}`. */
function blockKey(i: number, size: number): string {
  return `2049:${1_000_000 + i}:${size}:1712345678901234567#0`
}

export interface EpochOptions {
  name: string
  files: number
  /** Size of file i (bytes). */
  size: (i: number, rnd: () => number) => number
  /** Cache budget as a share of the dataset's bytes. */
  cacheShare: number
  epochs: number
  shuffled: boolean
  seed?: number
}

/** Every epoch reads every file once: in the same order, or freshly shuffled each epoch. */
export function epochWorkload({ name, files, size, cacheShare, epochs, shuffled, seed = 1 }: EpochOptions): Workload {
  const rnd = mulberry32(seed)
  const sizes = new Map<string, number>()
  for (let i = 0; i < files; i++) {
    const n = size(i, rnd)
    sizes.set(blockKey(i, n), n)
  }
  const keys = [...sizes.keys()]
  const total = keys.reduce((sum, k) => sum + sizes.get(k)!, 0)
  const rounds: string[][] = []
  for (let e = 0; e < epochs; e++) rounds.push(shuffled ? shuffle(keys, rnd) : keys)
  return { name, limit: Math.floor(total * cacheShare), sizes, rounds }
}

/** Zipf(s) popularity over `keys` equal-sized keys, drawn independently. */
export function zipfWorkload({ name, keys, s, size, cacheEntries, rounds, perRound, seed = 1 }: {
  name: string; keys: number; s: number; size: number; cacheEntries: number; rounds: number; perRound: number; seed?: number
}): Workload {
  const rnd = mulberry32(seed)
  const cdf = new Float64Array(keys)
  let sum = 0
  for (let i = 0; i < keys; i++) cdf[i] = sum += 1 / (i + 1) ** s
  // Popularity rank is not key order: a hash-like permutation avoids lucky sketch layouts.
  const names = shuffle([...Array(keys).keys()].map((i) => blockKey(i, size)), rnd)
  const draw = (): string => {
    const x = rnd() * sum
    let lo = 0
    let hi = keys - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cdf[mid] < x) lo = mid + 1
      else hi = mid
    }
    return names[lo]
  }
  const trace = Array.from({ length: rounds }, () => Array.from({ length: perRound }, draw))
  return { name, limit: cacheEntries * size, sizes: new Map(names.map((k) => [k, size])), rounds: trace }
}

/** Replay a workload: get, and on a miss set, as the block cache does. */
export function simulate(policy: PolicyName, workload: Workload): SimResult {
  const cache = createPolicy(policy, { limit: workload.limit })
  // Policies look only at lengths: views of one pool stand in for blocks.
  const pool = Buffer.alloc(Math.max(0, ...workload.sizes.values()))
  const ratios: number[] = []
  let warmHits = 0
  let warmAccesses = 0
  workload.rounds.forEach((round, r) => {
    let hits = 0
    for (const key of round) {
      if (cache.get(key)) hits++
      else cache.set(key, pool.subarray(0, workload.sizes.get(key)!))
    }
    ratios.push(round.length ? hits / round.length : 0)
    if (r > 0) {
      warmHits += hits
      warmAccesses += round.length
    }
  })
  return { rounds: ratios, warm: warmAccesses ? warmHits / warmAccesses : 0 }
}

const KIB = 1024

/** The workloads of the specs: dataset twice the cache, or Zipf over 10× the cache. */
export function standardWorkloads(): Workload[] {
  const epochs = (name: string, shuffled: boolean, size: EpochOptions['size'], files: number): Workload =>
    epochWorkload({ name, files, size, cacheShare: 0.5, epochs: 6, shuffled, seed: 7 })
  return [
    epochs('epochs, same order, 64 KiB', false, () => 64 * KIB, 400),
    epochs('epochs, shuffled, 64 KiB', true, () => 64 * KIB, 400),
    epochs('epochs, shuffled, 20-200 KB', true, (_i, rnd) => 20_000 + Math.floor(rnd() * 180_001), 400),
    zipfWorkload({ name: 'zipf 0.9, 5000 keys, cache 500', keys: 5000, s: 0.9, size: 4 * KIB, cacheEntries: 500, rounds: 6, perRound: 20_000, seed: 7 }),
  ]
}
