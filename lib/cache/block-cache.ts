/**
 * File contents cached as fixed-size blocks, so a file larger than the cache
 * or a range of one costs only the blocks it touches. Concurrent misses on the
 * same block share one disk read (single-flight).
 */
import createDebug from '../debug.js'
import { error } from '../errors.js'
import { currentIdentity, type OpenFile } from '../fs/open-file.js'
import { markImmutable } from '../protocol/crc-memo.js'
import { type CachePolicy, createPolicy, type PolicyName } from './policy.js'

/** Chosen by measurement (README, "The cache policy"): LRU hits nothing on repeated epochs over a dataset larger than the cache. */
export const DEFAULT_POLICY: PolicyName = 'tinylfu'

const debug = createDebug('cacheserv:block-cache')

export const DEFAULT_BLOCK_SIZE = 1024 * 1024

export interface BlockCacheOptions {
  /** Byte budget for cached blocks. */
  limit: number
  blockSize?: number
  /** Eviction policy. Default 'tinylfu': scan-resistant, see README. */
  policy?: PolicyName
}

/** What one block lookup is for (see BlockCache.block). */
export interface BlockUse {
  /** Counts the blocks that came from the disk now. */
  tally?: { fromDisk: number }
  /** Bytes of the block the caller serves to a reader. Default: the whole block. */
  bytes?: number
  /** Not a read (warm): counted in neither hits nor misses. Default false. */
  uncounted?: boolean
}

/**
 * The counters. A lookup by a read is a hit when it needs no disk read of its
 * own (the block is cached, or another request's disk read of it is under
 * way), else a miss; hitBytes and missBytes count the bytes of the block the
 * read serves (its range), not the whole block. So hitBytes + missBytes is
 * the file data reads took from blocks, resends included, which is what
 * bytesServed counts once it is sent. Warm's lookups are not counted there.
 */
export interface CacheStats {
  hits: number
  misses: number
  hitBytes: number
  missBytes: number
  evictions: number
  diskReads: number
  cacheBytes: number
  cacheLimit: number
  entries: number
  policy: PolicyName
}

export class BlockCache {
  readonly blockSize: number
  readonly policy: PolicyName
  #lru: CachePolicy
  #inflight = new Map<string, Promise<Buffer>>()
  #stats = { hits: 0, misses: 0, hitBytes: 0, missBytes: 0, evictions: 0, diskReads: 0 }

  constructor({ limit, blockSize = DEFAULT_BLOCK_SIZE, policy = DEFAULT_POLICY }: BlockCacheOptions) {
    this.blockSize = blockSize
    this.policy = policy
    // minWindow: TinyLFU's admission window must hold at least one whole block.
    this.#lru = createPolicy(policy, { limit, minWindow: blockSize, onEvict: () => void this.#stats.evictions++ })
  }

  stats(): CacheStats {
    return { ...this.#stats, cacheBytes: this.#lru.bytes, cacheLimit: this.#lru.limit, entries: this.#lru.size, policy: this.policy }
  }

  /**
   * Block `index` of `file`: from RAM when cached, else one disk read shared by
   * all who ask. `use.tally.fromDisk` counts the blocks that came from the disk
   * now; `use.bytes` is how many of its bytes the caller serves (the counters).
   */
  block(file: OpenFile, index: number, use: BlockUse = {}): Promise<Buffer> {
    const key = `${file.key}#${index}`
    const counted = !use.uncounted
    const served = (b: Buffer) => (use.bytes === undefined ? b.length : Math.min(use.bytes, b.length))
    const hit = this.#lru.get(key)
    if (hit) {
      if (counted) {
        this.#stats.hits++
        this.#stats.hitBytes += served(hit)
      }
      return Promise.resolve(hit)
    }
    if (use.tally) use.tally.fromDisk++
    const pending = this.#inflight.get(key)
    if (pending) {
      // Single-flight: no disk read of its own, so a hit; its bytes count once they are there.
      if (counted) this.#stats.hits++
      return pending.then((b) => {
        if (counted) this.#stats.hitBytes += served(b)
        return b
      })
    }
    if (counted) this.#stats.misses++
    const read = this.#readBlock(file, index).then(
      (buf) => {
        this.#inflight.delete(key)
        if (counted) this.#stats.missBytes += served(buf)
        this.#lru.set(key, buf)
        return buf
      },
      (err) => {
        this.#inflight.delete(key)
        throw err
      },
    )
    this.#inflight.set(key, read)
    return read
  }

  /**
   * Blocks `first`..`last` of this version of a file if every one is cached
   * (each counted as a hit, its bytes within `from`..`end` as hitBytes), else
   * null and nothing is counted.
   */
  cachedBlocks(file: { key: string }, first: number, last: number, from = 0, end = Infinity): Buffer[] | null {
    for (let i = first; i <= last; i++) if (!this.#lru.has(`${file.key}#${i}`)) return null
    const blocks: Buffer[] = []
    for (let i = first; i <= last; i++) {
      const block = this.#lru.get(`${file.key}#${i}`)
      if (!block) return null // cannot happen after has(); never serve a hole
      const base = i * this.blockSize
      this.#stats.hits++
      this.#stats.hitBytes += Math.max(0, Math.min(end, base + block.length) - Math.max(from, base))
      blocks.push(block)
    }
    return blocks
  }

  /** Drop the cached blocks of this version of a file; returns what was dropped. */
  evictFile(file: { key: string; size: number }): { blocks: number; bytes: number } {
    let blocks = 0
    let bytes = 0
    const count = Math.ceil(file.size / this.blockSize)
    for (let i = 0; i < count; i++) {
      const key = `${file.key}#${i}`
      const block = this.#lru.peek(key)
      if (block && this.#lru.delete(key)) {
        blocks++
        bytes += block.length
      }
    }
    return { blocks, bytes }
  }

  /** Drop everything; returns what was dropped. */
  clear(): { blocks: number; bytes: number } {
    const dropped = { blocks: this.#lru.size, bytes: this.#lru.bytes }
    this.#lru.clear()
    return dropped
  }

  /** Bytes the cache can take before it must evict. */
  get free(): number {
    return Math.max(0, this.#lru.limit - this.#lru.bytes)
  }

  /** How many bytes of this version of the file are cached. */
  cachedBytes(file: { key: string; size: number }): number {
    let total = 0
    const blocks = Math.ceil(file.size / this.blockSize)
    for (let i = 0; i < blocks; i++) {
      if (this.#lru.has(`${file.key}#${i}`)) total += Math.min(this.blockSize, file.size - i * this.blockSize)
    }
    return total
  }

  async #readBlock(file: OpenFile, index: number): Promise<Buffer> {
    const start = index * this.blockSize
    const length = Math.min(this.blockSize, file.size - start)
    // Slow (unpooled) allocation: a cached block must not pin a shared 8 KiB pool.
    const buf = Buffer.allocUnsafeSlow(length)
    let filled = 0
    while (filled < length) {
      this.#stats.diskReads++
      const { bytesRead } = await file.fh.read(buf, filled, length - filled, start + filled)
      if (bytesRead === 0) throw error('ECHANGED', 'file shrank on disk while it was being read; read it again')
      filled += bytesRead
    }
    // Cached under this version's key, the bytes must be this version's. A write changes the mtime
    // before it copies its bytes, so a read that saw new bytes sees the new identity here (as far
    // as the mtime's clock tells writes apart: the same tick and the same size go unseen).
    if ((await currentIdentity(file)) !== file.key) throw error('ECHANGED', 'file changed on disk while it was being read; read it again')
    debug('read block %s#%d (%d bytes)', file.key, index, length)
    // Never written again: the framer may remember the crc32 of its pages.
    markImmutable(buf)
    return buf
  }
}
