/**
 * Cached blocks in shared memory: slots in files under a private tmpfs
 * directory, mapped into the server. The cache keeps each block as a view of
 * its slot, so the socket path serves them as before, while a client on the
 * same host can read the same bytes from the files (short-circuit). Because
 * tmpfs outlives the process, a server restarted after a crash finds its
 * blocks still there and adopts those whose record and checksum hold.
 *
 * Slots come in size classes, whole pages doubling up to the block size, so
 * a small file's block takes a small slot; a block uses only the pages it
 * fills. Each class grows by slab files of its own, made as needed:
 *   slab-<slotSize>-<n>   a head of one RECORD per slot (the block it holds), then the slots
 *   meta                  the block size the records are keyed by
 *   owner                 the pid of the server using the store (a second one refuses it)
 *   root                  the directory it serves (so a store nobody will adopt can be found)
 * The directory is mode 0700; slab files are mode 0400, so a client of the
 * same user reads them and cannot write them by accident (the server writes
 * through its own mapping).
 */
import { chmodSync, closeSync, constants, fchmodSync, ftruncateSync, lstatSync, openSync, readdirSync, rmdirSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import createDebug from '../debug.js'
import type { FilePlace } from '../fs/fd-file.js'
import { readFullySync } from '../read-fully.js'
import { type Mapping, shmNative } from './shm-native.js'
import { clearRecord, headBytes, PAGE, pages, parseSlabName, readRecord, slabBytes, slabName, slotsPerSlab, writeRecord } from './slab-layout.js'
import { checkRoom, claimDir, claimOwner, readFileQuiet, unlinkQuiet } from './store-dir.js'

const debug = createDebug('cacheserv:shm')

/** Bytes of freed slots whose pages are kept for the next block (reused without page faults); beyond, a freed slot's pages go back. */
const WARM_FREE_BYTES = 8 * 1024 * 1024

export interface ShmStoreOptions {
  dir: string
  blockSize: number
  /** Bytes of blocks the store holds at most (the cache's size and what it may hold outside it); the tmpfs must have room. */
  bytes: number
  /** The served directory, noted in the store. */
  root?: string
  /** Made for this server alone (a fresh name): no later server adopts it, so a sweep may remove it once its server is gone. */
  temporary?: boolean
}

/** Where one block lives: a slot of a slab, and the ArrayBuffer over the block's bytes in it. */
export interface Slot {
  readonly slab: Slab
  readonly index: number
  readonly buffer: ArrayBuffer
  /** The owner's name for the block (the cache's key); '' until it sets one. */
  key: string
  /** The block's crc32 once recorded, else -1. */
  crc: number
}

/** A block an earlier server left in the store, for the cache to adopt once its checksum holds. */
export interface StoredBlock {
  slot: Slot
  /** The file version's identity (identity.ts) and the block's index in it. */
  fileKey: string
  index: number
  crc: number
}

/** Where a block's bytes are, for a client reading them itself, and their crc32. */
export interface SlotLocation {
  file: string
  offset: number
  crc: number
}

class Slab {
  readonly free: number[] = []
  /** Bytes of pages each slot may have allocated (the longest block it held since its pages last went back). */
  readonly dirty: number[]
  readonly head: number
  readonly records: Buffer

  constructor(
    readonly path: string,
    readonly fd: number,
    readonly mapping: Mapping,
    readonly slotSize: number,
    readonly slots: number,
  ) {
    this.head = headBytes(slots)
    this.dirty = new Array<number>(slots).fill(0)
    this.records = Buffer.from(shmNative()!.view(mapping, 0, this.head))
    for (let i = slots - 1; i >= 0; i--) this.free.push(i)
  }

  offset(index: number): number {
    return this.head + index * this.slotSize
  }
}

export class ShmStore {
  readonly dir: string
  readonly blockSize: number
  /** Slot sizes, smallest first; the last holds a whole block. */
  readonly #classes: number[]
  /** Slabs of each class, in order made. */
  #slabs = new Map<number, Slab[]>()
  readonly #bytes: number
  /** Bytes of pages the blocks in slots take (whole pages). */
  #usedBytes = 0
  #usedSlots = 0
  #freeDirty = 0
  #closed = false
  #owned = false
  /** Slab files are numbered across classes, in order made. */
  #nextSlab = 0

  private constructor(dir: string, blockSize: number, bytes: number) {
    this.dir = dir
    this.blockSize = blockSize
    this.#bytes = bytes
    const top = pages(blockSize)
    this.#classes = []
    for (let s = PAGE; s < top; s *= 2) this.#classes.push(s)
    this.#classes.push(top)
  }

  /**
   * Open the store at `dir`: create it, or take over one a server that is no
   * longer running left (its blocks become `adoptable()`). Throws when shared
   * memory cannot be mapped, the directory is not private to this user, it
   * is in use by a running server, or the tmpfs has no room for `bytes`.
   */
  static open({ dir, blockSize, bytes, root, temporary = false }: ShmStoreOptions): ShmStore {
    if (!shmNative()) throw new Error('the shared-memory store is not built (native/shm.node); run `npm run build` with a C compiler')
    claimDir(dir)
    const store = new ShmStore(dir, blockSize, bytes)
    try {
      claimOwner(dir)
      store.#owned = true
      checkRoom(dir, bytes)
      store.#mapExisting()
      if (root !== undefined) writeFileSync(join(dir, 'root'), root, { mode: 0o600 })
      if (temporary) writeFileSync(join(dir, 'temporary'), '', { mode: 0o600 })
    } catch (err) {
      store.close()
      throw err
    }
    return store
  }

  /** Blocks in slots. */
  get slots(): number {
    return this.#usedSlots
  }

  /** Bytes of pages blocks in slots take. */
  get used(): number {
    return this.#usedBytes
  }

  /** A slot for a block of `length` bytes, or null when the store is full (the block then lives on the heap). */
  take(length: number): Slot | null {
    const need = pages(length)
    if (this.#closed || length <= 0 || need > this.#classes.at(-1)! || this.#usedBytes + need > this.#bytes) return null
    const size = this.#classes.find((s) => s >= need)!
    const slab = this.#slabs.get(size)?.find((s) => s.free.length > 0) ?? this.#newSlab(size)
    if (!slab) return null
    const index = slab.free.pop()!
    clearRecord(slab.records, index)
    const dirty = slab.dirty[index]
    this.#freeDirty -= dirty
    // Pages past this block's end would be memory no block accounts for.
    if (dirty > need) this.#punch(slab, index, need, dirty - need)
    slab.dirty[index] = need
    this.#usedBytes += need
    this.#usedSlots++
    return this.#slot(slab, index, length)
  }

  /**
   * The slot is free again: its record is cleared before anyone can reuse it.
   * `fresh`: its pages are punched out whatever the warm budget, so the next
   * block written there goes to new pages and a pipe that still refers to the
   * old ones (a client's splice) keeps their bytes.
   */
  give(slot: Slot, fresh = false): void {
    if (this.#closed) return
    const { slab, index } = slot
    clearRecord(slab.records, index)
    this.#usedBytes -= pages(slot.buffer.byteLength)
    this.#usedSlots--
    const dirty = slab.dirty[index]
    if (fresh || this.#freeDirty + dirty > WARM_FREE_BYTES) this.#punch(slab, index, 0, dirty)
    else this.#freeDirty += dirty
    slab.free.push(index)
  }

  /** Record what the slot holds, so a server restarted after a crash can adopt it. */
  record(slot: Slot, fileKey: string, index: number, crc: number): void {
    if (this.#closed) return
    if (!writeRecord(slot.slab.records, slot.index, { fileKey, index, length: slot.buffer.byteLength, crc })) return
    slot.crc = crc >>> 0
  }

  /**
   * Fill a slot with bytes held in JavaScript (a block from the shared tier).
   * Written through the slab's descriptor: on a full tmpfs pwrite fails with
   * ENOSPC, where a store through the mapping would kill the process. In this
   * thread: a copy of a block into the tmpfs costs less than handing it to the
   * thread pool (whose wake-up, per block, cost more CPU than the copy).
   */
  write(slot: Slot, bytes: Uint8Array): void {
    const { fd, offset: at } = this.place(slot)
    let done = 0
    while (done < bytes.length) {
      const bytesWritten = writeSync(fd, bytes, done, bytes.length - done, at + done)
      if (bytesWritten === 0) throw Object.assign(new Error('no room in the store for the block'), { code: 'ENOSPC' })
      done += bytesWritten
    }
  }

  /** Where the slot's bytes live in its slab file: for writing them through the descriptor, not the mapping. */
  place(slot: Slot): FilePlace {
    return { fd: slot.slab.fd, offset: slot.slab.offset(slot.index) }
  }

  location(slot: Slot): SlotLocation {
    return { file: slot.slab.path, offset: slot.slab.offset(slot.index), crc: slot.crc }
  }

  /**
   * Blocks recorded by a server that used this directory before, their slots
   * taken (the cache gives back those it does not keep). A torn or foreign
   * record is dropped; the data's checksum is the cache's to check. Every
   * other slot's pages go back to the tmpfs.
   */
  adoptable(): StoredBlock[] {
    const found: StoredBlock[] = []
    for (const slab of [...this.#slabs.values()].flat()) {
      const taken = new Set<number>()
      for (let i = 0; i < slab.slots; i++) {
        const r = readRecord(slab.records, i)
        if (r === null) continue
        if (r === 'torn' || r.length === 0 || r.length > slab.slotSize || r.length > this.blockSize) {
          clearRecord(slab.records, i)
          continue
        }
        const need = pages(r.length)
        if (this.#usedBytes + need > this.#bytes) {
          clearRecord(slab.records, i)
          continue
        }
        taken.add(i)
        this.#usedBytes += need
        this.#usedSlots++
        if (slab.dirty[i] > need) this.#punch(slab, i, need, slab.dirty[i] - need)
        slab.dirty[i] = need
        const slot = this.#slot(slab, i, r.length)
        slot.crc = r.crc
        found.push({ slot, fileKey: r.fileKey, index: r.index, crc: slot.crc })
      }
      slab.free.splice(0, slab.free.length, ...slab.free.filter((i) => !taken.has(i)))
      // The rest of the slab's slots, one call for the whole range when none was kept.
      if (taken.size === 0) this.#punch(slab, 0, 0, slab.slots * slab.slotSize)
      else for (const i of slab.free) if (slab.dirty[i] > 0) this.#punch(slab, i, 0, slab.dirty[i])
    }
    this.#freeDirty = 0
    return found
  }

  /** Give the pages back and remove the directory (a clean exit leaves nothing to adopt). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const slab of [...this.#slabs.values()].flat()) {
      try {
        shmNative()?.punchHole(slab.fd, 0, slab.head + slab.slots * slab.slotSize)
      } catch (err) {
        debug('punching %s: %s', slab.path, (err as Error).message)
      }
      closeSync(slab.fd)
      unlinkQuiet(slab.path)
    }
    this.#slabs.clear()
    for (const name of ['meta', 'root', 'temporary']) unlinkQuiet(join(this.dir, name))
    if (this.#owned) unlinkQuiet(join(this.dir, 'owner'))
    try {
      rmdirSync(this.dir)
    } catch (err) {
      debug('leaving %s: %s', this.dir, (err as Error).message)
    }
  }

  #slot(slab: Slab, index: number, length: number): Slot {
    return { slab, index, buffer: shmNative()!.view(slab.mapping, slab.offset(index), length), key: '', crc: -1 }
  }

  #punch(slab: Slab, index: number, from: number, length: number): void {
    if (length <= 0) return
    shmNative()?.punchHole(slab.fd, slab.offset(index) + from, length)
    for (let i = index; i < slab.slots && slab.offset(i) < slab.offset(index) + from + length; i++) slab.dirty[i] = i === index ? from : 0
  }

  /** A new slab of `slotSize` slots, or null when the tmpfs refuses one. */
  #newSlab(slotSize: number): Slab | null {
    const list = this.#slabs.get(slotSize) ?? []
    try {
      const slab = this.#openSlab(join(this.dir, slabName(slotSize, this.#nextSlab++)), slotSize, true)
      list.push(slab)
      this.#slabs.set(slotSize, list)
      return slab
    } catch (err) {
      debug('no new slab of %d-byte slots: %s', slotSize, (err as Error).message)
      return null
    }
  }

  #openSlab(path: string, slotSize: number, fresh: boolean): Slab {
    const slots = slotsPerSlab(slotSize)
    const size = slabBytes(slotSize)
    // Writable only through this descriptor: the file itself stays read-only.
    if (!fresh) chmodSync(path, 0o600)
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | (fresh ? constants.O_EXCL : 0), 0o600)
    try {
      fchmodSync(fd, 0o400)
      // The head is written from JavaScript: its pages are allocated now, as a store through a mapping
      // to a full tmpfs would kill the process (SIGBUS). Slots are only written by read(2), which fails
      // with EFAULT instead (see BlockCache).
      const head = fresh ? Buffer.alloc(headBytes(slots)) : readHead(fd, headBytes(slots))
      ftruncateSync(fd, size)
      writeSync(fd, head, 0, head.length, 0)
      const slab = new Slab(path, fd, shmNative()!.mapFile(fd, size), slotSize, slots)
      if (!fresh) slab.dirty.fill(slotSize)
      return slab
    } catch (err) {
      closeSync(fd)
      if (fresh) unlinkQuiet(path)
      throw err
    }
  }

  /** Map the slabs an earlier server left, if it used the same block size; else start empty. */
  #mapExisting(): void {
    const meta = join(this.dir, 'meta')
    const names = readdirSync(this.dir).filter((n) => n.startsWith('slab-'))
    const same = readFileQuiet(meta) === `blockSize ${this.blockSize}\n`
    for (const name of names) {
      const m = parseSlabName(name)
      const size = m ? m.slotSize : 0
      if (!same || !m || !this.#classes.includes(size) || lstatSync(join(this.dir, name)).size !== slabBytes(size)) {
        unlinkQuiet(join(this.dir, name))
        continue
      }
      const list = this.#slabs.get(size) ?? []
      list.push(this.#openSlab(join(this.dir, name), size, false))
      this.#slabs.set(size, list)
      this.#nextSlab = Math.max(this.#nextSlab, m.n + 1)
    }
    writeFileSync(meta, `blockSize ${this.blockSize}\n`, { mode: 0o600 })
    debug('store %s: %d slabs adopted', this.dir, [...this.#slabs.values()].flat().length)
  }
}

function readHead(fd: number, length: number): Buffer {
  const head = Buffer.alloc(length)
  readFullySync(fd, head, 0)
  return head
}
