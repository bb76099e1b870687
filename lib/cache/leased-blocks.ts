/**
 * What leases on blocks and on copied pages cost the memory budget. A block
 * the cache holds costs nothing more while leased; one it does not (never
 * admitted, or let go while leased) is charged, once however many leases it
 * has, until its last lease is released. A copy is charged to the copy pool
 * until its lease is released.
 */
import { BlockLease } from './block-lease.js'
import { noteDropped } from './collect-garbage.js'
import type { MemoryBudget, ReserveOptions } from './memory-budget.js'

/** How a copy waits for room (see MemoryBudget.reserve). */
export type CopyWait = Pick<ReserveOptions, 'signal' | 'later'> & { left?: number }

/** A leased block: how many leases, and whether its bytes are charged to the memory budget. */
interface Holding {
  refs: number
  charged: boolean
}

export class LeasedBlocks {
  /** By buffer: a key may name an evicted block and its newer copy. */
  #held = new Map<Buffer, Holding>()
  readonly #memory: MemoryBudget | null
  /** Told of a block nothing holds any more (its store slot may be reused). */
  readonly #dropped: (block: Buffer) => void

  constructor(memory: MemoryBudget | null, dropped: (block: Buffer) => void) {
    this.#memory = memory
    this.#dropped = dropped
  }

  /** Whether `block` has a lease. */
  has(block: Buffer): boolean {
    return this.#held.has(block)
  }

  /**
   * A lease on `block`. `cached` says whether the cache holds this very block,
   * asked at its first lease only: a block it does not hold is charged at once.
   */
  lease(block: Buffer, cached: () => boolean): BlockLease {
    let h = this.#held.get(block)
    if (!h) {
      h = { refs: 0, charged: false }
      this.#held.set(block, h)
      if (!cached()) this.#charge(h, block)
    }
    h.refs++
    const holding = h
    return new BlockLease(
      () => {
        if (--holding.refs > 0) return
        this.#held.delete(block)
        if (!holding.charged) return
        this.#memory?.free(block.length)
        noteDropped(block.length)
        this.#dropped(block)
      },
      () => holding.charged,
    )
  }

  /** The cache let go of `block`: if it is leased, its memory is still held, now outside the cache; else it is dropped. */
  letGo(block: Buffer): void {
    const h = this.#held.get(block)
    if (h) this.#charge(h, block)
    else {
      noteDropped(block.length)
      this.#dropped(block)
    }
  }

  /** The cache let go of every block but those `kept`: each leased one is charged from now on. */
  letGoAllBut(kept: (block: Buffer) => boolean): void {
    for (const [block, h] of this.#held) if (!kept(block)) this.#charge(h, block)
  }

  /** Bytes of leased blocks the cache no longer holds (charged to the memory budget). */
  get outside(): number {
    let n = 0
    for (const [block, h] of this.#held) if (h.charged) n += block.length
    return n
  }

  /** A lease on `bytes` of copied file data, once the copy pool has room; `left` is the bytes the reader's request has left to send. */
  async reserveCopy(bytes: number, { signal, later, left }: CopyWait = {}): Promise<BlockLease> {
    await this.#memory?.reserve(bytes, { signal, later, left: left === undefined ? undefined : () => left, pool: 'copy' })
    return this.#copyLease(bytes)
  }

  /** A lease on `bytes` of copied file data, charged to the copy pool at once. */
  chargeCopy(bytes: number): BlockLease {
    this.#memory?.charge(bytes, 'copy')
    return this.#copyLease(bytes)
  }

  #copyLease(bytes: number): BlockLease {
    return new BlockLease(() => {
      this.#memory?.free(bytes, 'copy')
      noteDropped(bytes)
    }, () => true)
  }

  #charge(h: Holding, block: Buffer): void {
    if (h.charged) return
    h.charged = true
    this.#memory?.charge(block.length)
  }
}
