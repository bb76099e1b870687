/**
 * What the block cache needs from an eviction policy, so the policy can be
 * chosen at start-up. ByteLru (plain LRU) and TinyLfu (W-TinyLFU) both fit.
 *
 * `get` is the access: it counts for recency and frequency, hit or miss.
 * `set` is the fill after a miss and is not counted again; `has` and `peek`
 * look without counting. onEvict reports entries the policy pushed out, not
 * those removed by delete or clear.
 */
import { ByteLru } from './byte-lru.js'
import { TinyLfu, type TinyLfuTuning } from './tiny-lfu.js'

export interface CachePolicy {
  /** Byte budget; `bytes` never exceeds it. */
  readonly limit: number
  /** Change the byte budget; shrinking evicts (reported by onEvict) until `bytes` fits. */
  resize(limit: number): void
  readonly bytes: number
  readonly size: number
  get(key: string): Buffer | undefined
  peek(key: string): Buffer | undefined
  set(key: string, value: Buffer): void
  delete(key: string): boolean
  has(key: string): boolean
  clear(): void
  keys(): IterableIterator<string>
}

export interface PolicyOptions {
  /** Byte budget. */
  limit: number
  /** Cap on the number of entries (bookkeeping memory). */
  maxEntries?: number
  onEvict?: (key: string, value: Buffer) => void
}

export const POLICIES = ['lru', 'tinylfu'] as const
export type PolicyName = (typeof POLICIES)[number]

/** Tuning options apply to tinylfu only; lru ignores them. */
export function createPolicy(name: PolicyName, opts: PolicyOptions & TinyLfuTuning): CachePolicy {
  switch (name) {
    case 'lru':
      return new ByteLru(opts)
    case 'tinylfu':
      return new TinyLfu(opts)
    default:
      throw new TypeError(`unknown cache policy ${JSON.stringify(name)}; known: ${POLICIES.join(', ')}`)
  }
}
