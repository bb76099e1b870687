/**
 * The layout of the shared-memory store's slab files (ShmStore), which a
 * server restarted after a crash reads back: how many slots of a size class
 * a slab holds, where they start, how the file is named, and the record in
 * the slab's head that says which block a slot holds.
 *
 * A slab file is a head of one RECORD per slot, in whole pages, then the
 * slots, each `slotSize` bytes (a whole number of pages).
 */
import { readIdentity, writeIdentity } from '../fs/identity.js'
import { crc32 } from '../protocol/crc32.js'

export const PAGE = 4096
/** Bytes of slots per slab file (one block's slot at least). */
const SLAB_BYTES = 64 * 1024 * 1024
/**
 * One slot's record in its slab's head, little-endian: magic, crc32 of bytes
 * 8–63, the block's crc32, its length, its index in the file, 4 spare bytes,
 * then the file version's identity (identity.ts, 40 bytes).
 */
export const RECORD = 64
const MAGIC = 0x32505343 // "CSP2"

/** What a slot's record says it holds. */
export interface SlotRecord {
  /** The file version's identity (identity.ts). */
  fileKey: string
  /** The block's index in the file. */
  index: number
  length: number
  crc: number
}

/** `n` bytes rounded up to whole pages. */
export function pages(n: number): number {
  return Math.ceil(n / PAGE) * PAGE
}

export function slotsPerSlab(slotSize: number): number {
  return Math.max(1, Math.floor(SLAB_BYTES / slotSize))
}

/** Bytes of the head of a slab of `slots` slots: their records, in whole pages. */
export function headBytes(slots: number): number {
  return pages(slots * RECORD)
}

/** The size of a slab file of `slotSize` slots: a slab of another size is not one of ours. */
export function slabBytes(slotSize: number): number {
  return headBytes(slotsPerSlab(slotSize)) + slotsPerSlab(slotSize) * slotSize
}

/** The file name of slab number `n`, of `slotSize` slots. */
export function slabName(slotSize: number, n: number): string {
  return `slab-${slotSize}-${n}`
}

/** The slot size and number a slab file's name gives, or null for a name that is not a slab's. */
export function parseSlabName(name: string): { slotSize: number; n: number } | null {
  const m = /^slab-(\d+)-(\d+)$/.exec(name)
  return m ? { slotSize: Number(m[1]), n: Number(m[2]) } : null
}

/**
 * Write the record of slot `slot` in the slab head `head`; false, with
 * nothing written, when `fileKey` is not an identity. The magic goes last,
 * so a record torn by a crash fails its checksum or has none.
 */
export function writeRecord(head: Buffer, slot: number, { fileKey, index, length, crc }: SlotRecord): boolean {
  const r = head.subarray(slot * RECORD, (slot + 1) * RECORD)
  if (!writeIdentity(fileKey, r, 24)) return false
  r.writeUInt32LE(crc >>> 0, 8)
  r.writeUInt32LE(length, 12)
  r.writeUInt32LE(index, 16)
  r.writeUInt32LE(0, 20)
  r.writeUInt32LE(crc32(r.subarray(8)), 4)
  r.writeUInt32LE(MAGIC, 0)
  return true
}

/**
 * The record of slot `slot` in the slab head `head`: null when it has none
 * (never recorded, or cleared), 'torn' when its checksum fails. Whether its
 * length fits the slot is the store's to check.
 */
export function readRecord(head: Buffer, slot: number): SlotRecord | 'torn' | null {
  const r = head.subarray(slot * RECORD, (slot + 1) * RECORD)
  if (r.readUInt32LE(0) !== MAGIC) return null
  if (r.readUInt32LE(4) !== crc32(r.subarray(8))) return 'torn'
  return { fileKey: readIdentity(r, 24), index: r.readUInt32LE(16), length: r.readUInt32LE(12), crc: r.readUInt32LE(8) }
}

/** Clear the record of slot `slot`: the slot holds nothing a later server could adopt. */
export function clearRecord(head: Buffer, slot: number): void {
  head.writeUInt32LE(0, slot * RECORD)
}
