/**
 * The blocks of pinned files (lib/server/pins.ts), out of the eviction
 * policy's reach: by key for lookups, by buffer for "is this one pinned", and
 * their bytes, which the block cache takes off the policy's budget.
 */
export class PinnedBlocks {
  #byKey = new Map<string, Buffer>()
  #blocks = new Set<Buffer>()
  #bytes = 0

  get(key: string): Buffer | undefined {
    return this.#byKey.get(key)
  }

  has(key: string): boolean {
    return this.#byKey.has(key)
  }

  /** Whether this very buffer is a pinned block (a key may name an evicted copy and a pinned one). */
  holds(block: Buffer): boolean {
    return this.#blocks.has(block)
  }

  /** Pin `block` under `key`; false if the key was pinned already. */
  add(key: string, block: Buffer): boolean {
    if (this.#byKey.has(key)) return false
    this.#byKey.set(key, block)
    this.#blocks.add(block)
    this.#bytes += block.length
    return true
  }

  /** Unpin the block under `key`: it, or undefined if none was pinned there. */
  remove(key: string): Buffer | undefined {
    const block = this.#byKey.get(key)
    if (!block) return undefined
    this.#byKey.delete(key)
    this.#blocks.delete(block)
    this.#bytes -= block.length
    return block
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#byKey.size
  }
}
