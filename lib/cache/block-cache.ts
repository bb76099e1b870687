/**
 * File contents cached as fixed-size blocks, so a file larger than the cache
 * or a range of one costs only the blocks it touches. Concurrent misses on the
 * same block share one disk read (single-flight).
 */
import type { OpenFile } from '../fs/open-file.js'
import { markImmutable } from '../protocol/crc-memo.js'
import type { BlockLease } from './block-lease.js'
import { BlockReads, GaveUp } from './block-reads.js'
import { noteDropped } from './collect-garbage.js'
import { DiskDemand } from './disk-demand.js'
import { LeasedBlocks } from './leased-blocks.js'
import type { MemoryBudget } from './memory-budget.js'
import { type CachePolicy, createPolicy, type PolicyName } from './policy.js'
import type { ShmStore, SlotLocation } from './shm-store.js'
import { StoreBlocks } from './store-blocks.js'
import type { SharedTier } from '../tier/shared-tier.js'
import { BlockFill } from './block-fill.js'
import { PinnedBlocks } from './pinned-blocks.js'

/** Chosen by measurement (README, "The cache policy"): LRU hits nothing on repeated epochs over a dataset larger than the cache. */
export const DEFAULT_POLICY: PolicyName = 'tinylfu'

export const DEFAULT_BLOCK_SIZE = 1024 * 1024

export interface BlockCacheOptions {
  /** Byte budget for cached blocks. */
  limit: number
  blockSize?: number
  /** Eviction policy. Default 'tinylfu': scan-resistant, see README. */
  policy?: PolicyName
  /** Bounds block memory outside the cache: disk reads in progress and leased blocks it does not hold. */
  memory?: MemoryBudget
  /** Shared memory for the blocks (see ShmStore); without it, or when it is full, blocks live on the heap. */
  store?: ShmStore
  /** A second tier shared between hosts (Redis): asked before the disk, given what the disk gave. */
  shared?: SharedTier
}

/** What one block lookup is for (see BlockCache.block). */
export interface BlockUse {
  /** Counts the blocks that came from the disk now. */
  tally?: { fromDisk: number }
  /** Bytes of the block the caller serves to a reader. Default: the whole block. */
  bytes?: number
  /** Not a read (warm): counted in neither hits nor misses. Default false. */
  uncounted?: boolean
  /** A prefetch: a disk read for it waits until no request's has run for a moment (see DiskDemand). */
  idle?: boolean
  /** Gives up waiting for memory for a disk read. */
  signal?: AbortSignal
  /** The reader's client is not taking its output: its disk read waits behind others' (see MemoryBudget). */
  later?: () => boolean
  /** Bytes the reader's request has left to send: shorter requests' disk reads go first (see MemoryBudget). */
  left?: number
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
  /** Bytes of pinned files' blocks (counted in cacheBytes too). */
  pinnedBytes: number
  policy: PolicyName
}

export class BlockCache {
  readonly blockSize: number
  readonly policy: PolicyName
  #lru: CachePolicy
  /** Blocks being read in, each once however many wait for it. */
  #reads: BlockReads
  /** Disk reads requests wait on, which prefetches keep out of the way of. */
  #demand = new DiskDemand()
  #stats = { hits: 0, misses: 0, hitBytes: 0, missBytes: 0, evictions: 0 }
  /** Blocks and copies with leases, and what they cost the memory budget. */
  #leased: LeasedBlocks
  /** Blocks of pinned files, out of the policy's reach; the policy's budget is the limit less these. */
  #pinned = new PinnedBlocks()
  /** Bytes of the limit left to the metadata cache (reserve). */
  #reserved = 0
  readonly #limit: number
  /** Blocks in shared memory, when the cache has a store. */
  #stored: StoreBlocks | null
  /** Reads blocks in: from the shared tier, else from disk. */
  #filler: BlockFill

  constructor({ limit, blockSize = DEFAULT_BLOCK_SIZE, policy = DEFAULT_POLICY, memory, store, shared }: BlockCacheOptions) {
    this.blockSize = blockSize
    this.policy = policy
    this.#reads = new BlockReads(memory ?? null)
    this.#stored = store ? new StoreBlocks(store, (block, key) => this.#leased.has(block) || this.#peek(key) === block) : null
    this.#leased = new LeasedBlocks(memory ?? null, (block) => this.#stored?.recycle(block))
    this.#filler = new BlockFill(blockSize, this.#stored, shared ?? null)
    this.#limit = limit
    // minWindow: TinyLFU's admission window must hold at least one whole block.
    this.#lru = createPolicy(policy, {
      limit,
      minWindow: blockSize,
      onEvict: (_key, block) => {
        this.#stats.evictions++
        this.#leased.letGo(block)
      },
    })
  }

  /**
   * Claim `block` (block `index` of `file`, as `block()` gave it) while bytes
   * of it are being sent. A block outside the cache is charged to the memory
   * budget until its last lease is released; one in it is charged if it is
   * evicted meanwhile.
   */
  lease(file: { key: string }, index: number, block: Buffer): BlockLease {
    this.#stored?.assertLive(block)
    return this.#leased.lease(block, () => this.#peek(`${file.key}#${index}`) === block)
  }

  /**
   * A lease on `bytes` of copied file data (a page across two blocks), once the
   * memory budget's copy pool has room: copies held by clients that do not
   * read are bounded like their blocks.
   */
  reserveCopy(bytes: number, wait?: Pick<BlockUse, 'signal' | 'later' | 'left'>): Promise<BlockLease> {
    return this.#leased.reserveCopy(bytes, wait)
  }

  /** A lease on `bytes` of copied file data (a page joined in a pager, which cannot wait): charged to the memory budget at once, until released. */
  leaseCopy(bytes: number): BlockLease {
    return this.#leased.chargeCopy(bytes)
  }

  /** Bytes of leased blocks the cache no longer holds (charged to the memory budget). */
  get leasedOutside(): number {
    return this.#leased.outside
  }

  /** Blocks live in shared memory, where a slot is reused once its block's leases are released (not when the last view of it is collected). */
  get inSharedMemory(): boolean {
    return this.#stored !== null
  }

  /** The shared-memory store's directory, or null when blocks live on the heap. */
  get storeDir(): string | null {
    return this.#stored?.store.dir ?? null
  }

  /** Blocks located for a client whose grant ended without its release: their slots get new pages when reused (StoreBlocks.expose). */
  exposed(blocks: Iterable<Buffer>): void {
    for (const block of blocks) this.#stored?.expose(block)
  }

  /** Where a cached block's bytes are in the shared-memory store, with their crc32; undefined for a block on the heap or not cached. */
  location(block: Buffer): SlotLocation | undefined {
    return this.#stored?.location(block)
  }

  /**
   * Take in the blocks a server that used the store before left there, each
   * whose checksum still holds; a block of a file changed since is never hit,
   * as its identity is part of its key. Returns what was kept.
   */
  adoptStored(): { blocks: number; bytes: number; dropped: number } {
    if (!this.#stored) return { blocks: 0, bytes: 0, dropped: 0 }
    const { blocks, dropped } = this.#stored.adopt()
    const kept = { blocks: 0, bytes: 0, dropped }
    for (const { block, key, crc } of blocks) {
      markImmutable(block)
      this.#cacheBlock(key, block, crc)
      if (this.#peek(key) === block) {
        kept.blocks++
        kept.bytes += block.length
      } else kept.dropped++
    }
    return kept
  }

  /** Put a filled block in the cache (if the policy takes it); a store block is recorded for adoption, or freed if not taken. */
  #cacheBlock(key: string, block: Buffer, crc?: number): void {
    this.#lru.set(key, block)
    if (!this.#stored?.has(block)) return
    if (this.#peek(key) !== block) this.#stored.recycle(block)
    else this.#stored.record(block, crc)
  }

  stats(): CacheStats {
    return {
      ...this.#stats,
      diskReads: this.#filler.diskReads,
      cacheBytes: this.#lru.bytes + this.#pinned.bytes,
      cacheLimit: this.#limit,
      entries: this.#lru.size + this.#pinned.size,
      pinnedBytes: this.#pinned.bytes,
      policy: this.policy,
    }
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
    const hit = this.#pinned.get(key) ?? this.#lru.get(key)
    if (hit) {
      if (counted) {
        this.#stats.hits++
        this.#stats.hitBytes += served(hit)
      }
      return Promise.resolve(hit)
    }
    if (use.idle && !this.#demand.quiet) {
      return this.#demand.idle(use.signal).then(() => {
        use.signal?.throwIfAborted()
        return this.block(file, index, use)
      })
    }
    if (use.tally) use.tally.fromDisk++
    // A read a request waits on, its own or joined: prefetches wait for it.
    const waited = use.idle ? null : this.#demand.begin()
    const pending = this.#reads.join(key, use)
    if (pending) {
      if (waited) void pending.then(waited, waited)
      // Single-flight: no disk read of its own, so a hit; its bytes count once they are there.
      if (counted) this.#stats.hits++
      return pending.then(
        (b) => {
          if (counted) this.#stats.hitBytes += served(b)
          return b
        },
        // The read it joined gave up waiting for memory (its own request stopped): not this one's fault.
        (err) => {
          if (err instanceof GaveUp && !use.signal?.aborted) return this.block(file, index, { ...use, uncounted: true })
          throw err
        },
      )
    }
    if (counted) this.#stats.misses++
    const start = index * this.blockSize
    const length = Math.min(this.blockSize, file.size - start)
    const read = this.#reads.start(key, length, use, {
      read: () => this.#filler.fill(file, key, start, length),
      keep: (buf) => this.#cacheBlock(key, buf),
      done: (buf) => {
        if (counted) this.#stats.missBytes += served(buf)
      },
    })
    if (waited) void read.then(waited, waited)
    return read
  }

  /** No disk read a request waits on has run for a moment: a prefetch may go (see DiskDemand). */
  get diskQuiet(): boolean {
    return this.#demand.quiet
  }

  /** Settles once diskQuiet, or once `signal` aborts. */
  diskIdle(signal?: AbortSignal): Promise<void> {
    return this.#demand.idle(signal)
  }

  /**
   * Blocks `first`..`last` of this version of a file if every one is cached
   * (each counted as a hit, its bytes within `from`..`end` as hitBytes), else
   * null and nothing is counted.
   */
  cachedBlocks(file: { key: string }, first: number, last: number, from = 0, end = Infinity): Buffer[] | null {
    for (let i = first; i <= last; i++) if (!this.#has(`${file.key}#${i}`)) return null
    const blocks: Buffer[] = []
    for (let i = first; i <= last; i++) {
      const key = `${file.key}#${i}`
      const block = this.#pinned.get(key) ?? this.#lru.get(key)
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
        this.#leased.letGo(block)
      }
    }
    return { blocks, bytes }
  }

  /** Drop everything but pinned blocks; returns what was dropped. */
  clear(): { blocks: number; bytes: number } {
    const dropped = { blocks: this.#lru.size, bytes: this.#lru.bytes }
    this.#lru.clear()
    this.#leased.letGoAllBut((block) => this.#pinned.holds(block))
    noteDropped(dropped.bytes)
    if (this.#stored) for (const block of this.#stored.blocks()) this.#stored.recycle(block)
    return dropped
  }

  /** Bytes the cache can take before it must evict. */
  get free(): number {
    return Math.max(0, this.#lru.limit - this.#lru.bytes)
  }

  /**
   * Leave `bytes` of the limit to something else the server keeps in RAM (the
   * metadata cache): the policy's budget shrinks by as much, evicting if need be.
   */
  reserve(bytes: number): void {
    this.#reserved = bytes
    this.#resize()
  }

  /** The policy's budget: the limit less pinned blocks and the reserve. */
  #resize(): void {
    this.#lru.resize(this.#limit - this.#pinned.bytes - this.#reserved)
  }

  /** Bytes of pinned blocks. */
  get pinnedBytes(): number {
    return this.#pinned.bytes
  }

  /** Most bytes that may be pinned: the policy keeps room for one block at least (its admission window). Listings then give way (MetaCache's room). */
  get pinLimit(): number {
    return Math.max(0, this.#limit - 2 * this.blockSize)
  }

  /**
   * Pin block `index` of this version of a file (as `block()` gave it): it
   * leaves the policy (which can no longer evict it) and the policy's budget
   * shrinks by as much. The caller keeps the pinned bytes within pinLimit.
   */
  pinBlock(file: { key: string }, index: number, block: Buffer): void {
    this.#stored?.assertLive(block)
    const key = `${file.key}#${index}`
    if (this.#pinned.has(key)) return
    if (this.#lru.peek(key) === block) this.#lru.delete(key)
    this.#pinned.add(key, block)
    this.#resize()
  }

  /** Unpin this version of a file: its blocks go back to the policy as ordinary entries (`keep`), or are dropped. */
  unpin(file: { key: string; size: number }, keep = true): void {
    const count = Math.ceil(file.size / this.blockSize)
    const freed: [string, Buffer][] = []
    for (let i = 0; i < count; i++) {
      const key = `${file.key}#${i}`
      const block = this.#pinned.remove(key)
      if (!block) continue
      freed.push([key, block])
      if (!keep) this.#leased.letGo(block)
    }
    this.#resize()
    if (keep) for (const [key, block] of freed) this.#lru.set(key, block)
  }

  #has(key: string): boolean {
    return this.#pinned.has(key) || this.#lru.has(key)
  }

  #peek(key: string): Buffer | undefined {
    return this.#pinned.get(key) ?? this.#lru.peek(key)
  }

  /** How many bytes of this version of the file are cached. */
  cachedBytes(file: { key: string; size: number }): number {
    let total = 0
    const blocks = Math.ceil(file.size / this.blockSize)
    for (let i = 0; i < blocks; i++) {
      if (this.#has(`${file.key}#${i}`)) total += Math.min(this.blockSize, file.size - i * this.blockSize)
    }
    return total
  }
}
