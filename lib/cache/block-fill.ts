/**
 * Reading one block in for the cache: from the shared tier (Redis) when it
 * has it, else from disk, and storing what the disk gave in the tier. The
 * block goes in a store slot (for files of MIN_STORE_FILE and more, while the
 * store and its tmpfs have room) or in a heap buffer of its own; either way
 * its bytes are one version's and are never written again.
 */
import createDebug from '../debug.js'
import { error } from '../errors.js'
import { readThenStat } from '../fs/fd-file.js'
import { identityOf } from '../fs/identity.js'
import type { OpenFile } from '../fs/open-file.js'
import { markImmutable } from '../protocol/crc-memo.js'
import type { Destination, SharedTier } from '../tier/shared-tier.js'
import type { ShmStore, Slot } from './shm-store.js'
import type { StoreBlocks } from './store-blocks.js'

const debug = createDebug('cacheserv:block-cache')

/**
 * Files smaller than this keep their block on the heap: in the store a block
 * takes whole pages (up to 4 KiB more) and a few hundred bytes of bookkeeping,
 * a quarter or more of a tiny file. Same-host clients read them over the socket.
 */
export const MIN_STORE_FILE = 16 * 1024

export class BlockFill {
  /** Read calls on the disk. */
  diskReads = 0
  readonly #blockSize: number
  readonly #stored: StoreBlocks | null
  readonly #shared: SharedTier | null

  constructor(blockSize: number, stored: StoreBlocks | null, shared: SharedTier | null) {
    this.#blockSize = blockSize
    this.#stored = stored
    this.#shared = shared
  }

  /** Block bytes `start`..`start + length` of `file`, cached under `key`: whole, and this version's. */
  async fill(file: OpenFile, key: string, start: number, length: number): Promise<Buffer> {
    const index = start / this.#blockSize
    // In a store slot, or a slow (unpooled) allocation: a cached block must not pin a shared 8 KiB pool.
    const store = file.size >= MIN_STORE_FILE ? (this.#stored?.store ?? null) : null
    const shared = this.#shared
    const sharedKey = shared?.key(file.name, file.key, this.#blockSize, index) ?? ''
    // The store slot each buffer taken here is in, if any.
    const slots = new Map<Buffer, Slot>()
    if (shared) {
      const found = await shared.fetch(sharedKey, this.#destination(store, length, slots))
      if (found) return this.#filled(found, key, slots.get(found))
    }
    const buf = await this.#readDisk(file, store, start, length, slots)
    shared?.store(sharedKey, buf)
    return this.#filled(buf, key, slots.get(buf))
  }

  /** Where a block from the shared tier goes: a store slot when there is one (and room in its tmpfs), else the heap. */
  #destination(store: ShmStore | null, length: number, slots: Map<Buffer, Slot>): Destination {
    return {
      length,
      place: (bytes) => {
        const slot = store?.take(length)
        if (slot) {
          const buf = Buffer.from(slot.buffer)
          try {
            store!.write(slot, bytes)
            slots.set(buf, slot)
            return buf
          } catch (err) {
            // The tmpfs is full (another program filled it): the block goes on the heap, as a disk read's would.
            store!.give(slot)
            debug('no room in the store for a block from the shared tier: %s', (err as Error).message)
          }
        }
        const buf = Buffer.allocUnsafeSlow(length)
        buf.set(bytes)
        return buf
      },
      give: (buf) => {
        const slot = slots.get(buf)
        if (slot) store!.give(slot)
        slots.delete(buf)
      },
    }
  }

  /** The block is whole and is this version's: recorded in its slot, never written again. */
  #filled(buf: Buffer, key: string, slot: Slot | undefined): Buffer {
    debug('filled block %s (%d bytes)', key, buf.length)
    if (slot) this.#stored?.keep(buf, slot, key)
    // Never written again: the framer may remember the crc32 of its pages.
    markImmutable(buf)
    return buf
  }

  async #readDisk(file: OpenFile, store: ShmStore | null, start: number, length: number, slots: Map<Buffer, Slot>): Promise<Buffer> {
    const slot = store?.take(length) ?? null
    const buf = slot ? Buffer.from(slot.buffer) : Buffer.allocUnsafeSlow(length)
    if (slot) slots.set(buf, slot)
    try {
      const { bytesRead, reads, st } = await readThenStat(file.fh, buf, 0, length, start, slot ? store!.place(slot) : undefined)
      this.diskReads += reads
      if (bytesRead < length) throw error('ECHANGED', 'file shrank on disk while it was being read; read it again')
      // Cached under this version's key, the bytes must be this version's. A write changes the mtime
      // before it copies its bytes, so a read that saw new bytes sees the new identity here (as far
      // as the mtime's clock tells writes apart: the same tick and the same size go unseen).
      if (identityOf(st) !== file.key) throw error('ECHANGED', 'file changed on disk while it was being read; read it again')
    } catch (err) {
      // Nobody has seen the slot's bytes: it is free at once.
      if (slot) {
        store?.give(slot)
        slots.delete(buf)
      }
      // The tmpfs had no page for the slot (another process filled it): this block goes on the heap.
      const code = (err as NodeJS.ErrnoException).code
      if (slot && (code === 'ENOSPC' || code === 'EFAULT')) return this.#readDisk(file, null, start, length, slots)
      throw err
    }
    return buf
  }
}
