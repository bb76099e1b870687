/**
 * The cache's blocks that live in slots of the shared-memory store
 * (ShmStore): which slot holds each, and when a slot may be reused. A slot
 * is freed only once its block has lost its last holder (the cache, a lease,
 * a pin) and a turn of the event loop has passed; the wait is for a caller
 * that has the block from a settled promise and leases it in its
 * continuation. A block whose slot was freed can never be handed out again.
 */
import { error } from '../errors.js'
import { crc32 } from '../protocol/crc32.js'
import type { ShmStore, Slot, SlotLocation } from './shm-store.js'

export class StoreBlocks {
  readonly store: ShmStore
  #slots = new Map<Buffer, Slot>()
  #recycling = new Set<Buffer>()
  #scheduled = false
  #recycled = new WeakSet<Buffer>()
  /** Blocks whose pages may be referred to after their last lease ended (see expose()). */
  #exposed = new WeakSet<Buffer>()
  /** The block is still held (leased, or cached or pinned under `key`). */
  #held: (block: Buffer, key: string) => boolean

  constructor(store: ShmStore, held: (block: Buffer, key: string) => boolean) {
    this.store = store
    this.#held = held
  }

  /** `block`, filled in `slot`, is the block `key` names from now on. */
  keep(block: Buffer, slot: Slot, key: string): void {
    slot.key = key
    this.#slots.set(block, slot)
  }

  has(block: Buffer): boolean {
    return this.#slots.has(block)
  }

  blocks(): IterableIterator<Buffer> {
    return this.#slots.keys()
  }

  /** Record a cached block in its slot with its crc32, so a server restarted after a crash can adopt it. */
  record(block: Buffer, crc = crc32(block)): void {
    const slot = this.#slots.get(block)
    if (!slot) return
    const hash = slot.key.lastIndexOf('#')
    this.store.record(slot, slot.key.slice(0, hash), Number(slot.key.slice(hash + 1)), crc)
  }

  /** `block` may have no holder left: its slot is freed on the next turn of the event loop if nothing holds it then. */
  recycle(block: Buffer): void {
    if (!this.#slots.has(block)) return
    this.#recycling.add(block)
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      const blocks = [...this.#recycling]
      this.#recycling.clear()
      for (const b of blocks) {
        const slot = this.#slots.get(b)
        if (!slot || this.#held(b, slot.key)) continue
        this.#slots.delete(b)
        this.#recycled.add(b)
        this.store.give(slot, this.#exposed.has(b))
      }
    })
  }

  /**
   * `block`'s pages were handed to a client whose grant ended without its
   * release (it disconnected, or its time ran out): a pipe it spliced them
   * into may still refer to them, so its slot gets new pages when reused.
   */
  expose(block: Buffer): void {
    if (this.#slots.has(block)) this.#exposed.add(block)
  }

  /** A block handed out must still own its slot: serving a reused slot would serve another block's bytes. */
  assertLive(block: Buffer): void {
    if (this.#recycled.has(block)) throw error('EINTERNAL', 'a cached block was recycled before it was sent; read again')
  }

  /** Where a recorded block's bytes are, with their crc32; undefined for any other. */
  location(block: Buffer): SlotLocation | undefined {
    const slot = this.#slots.get(block)
    return slot && slot.crc >= 0 ? this.store.location(slot) : undefined
  }

  /** The blocks a server that used the store before left there whose bytes still match their crc32, kept under their keys; the others' slots are freed. */
  adopt(): { blocks: { block: Buffer; key: string; crc: number }[]; dropped: number } {
    const blocks: { block: Buffer; key: string; crc: number }[] = []
    let dropped = 0
    for (const stored of this.store.adoptable()) {
      const block = Buffer.from(stored.slot.buffer)
      if (crc32(block) !== stored.crc) {
        this.store.give(stored.slot)
        dropped++
        continue
      }
      const key = `${stored.fileKey}#${stored.index}`
      this.keep(block, stored.slot, key)
      blocks.push({ block, key, crc: stored.crc })
    }
    return { blocks, dropped }
  }
}
