/**
 * A cached block as it is stored in the shared tier: a 12-byte header, then
 * the block's bytes. The header carries the crc32 of the bytes, so a value
 * damaged in Redis, cut short, or written by something else is never served.
 *
 *   0  4  magic "CSB1"
 *   4  4  length of the bytes, uint32 LE
 *   8  4  crc32 of the bytes, uint32 LE
 *  12     the bytes
 */
import { crc32 } from '../protocol/crc32.js'

const MAGIC = 0x31425343 // "CSB1" read as uint32 LE
export const VALUE_HEADER = 12

/** The value to store for `block` (a copy: the block may be reused once this returns). */
export function encodeBlockValue(block: Uint8Array): Buffer {
  const value = Buffer.allocUnsafe(VALUE_HEADER + block.length)
  value.writeUInt32LE(MAGIC, 0)
  value.writeUInt32LE(block.length, 4)
  value.writeUInt32LE(crc32(block), 8)
  value.set(block, VALUE_HEADER)
  return value
}

/**
 * The bytes of a stored value (a view into it) and the crc32 they must have;
 * null when the header is not one of ours or the length is not `length`.
 * The caller sums the bytes where it copied them, so the bytes checked are
 * the bytes served.
 */
export function decodeBlockValue(value: Uint8Array, length: number): { bytes: Buffer; crc: number } | null {
  if (value.length !== VALUE_HEADER + length) return null
  const view = Buffer.from(value.buffer, value.byteOffset, value.length)
  if (view.readUInt32LE(0) !== MAGIC || view.readUInt32LE(4) !== length) return null
  return { bytes: view.subarray(VALUE_HEADER), crc: view.readUInt32LE(8) }
}
