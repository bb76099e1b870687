/**
 * The 24-byte frame header: a pure codec over a Buffer and an offset.
 *
 *   0 u16 magic · 2 u8 version · 3 u8 type · 4 u32 id · 8 u32 seq
 *  12 u32 payload length · 16 u8 checksum id · 17 u8 epoch · 18 u16 reserved
 *  20 u32 crc32 of bytes 0–19
 *
 * All integers are big-endian. The header's own crc means a corrupted length,
 * id or seq is detected before it is believed.
 */
import { crc32 } from 'node:zlib'
import { DIGEST_SIZE, HEADER_SIZE, MAGIC, MAX_PAYLOAD, PROTOCOL_VERSION } from './constants.js'

export interface Header {
  type: number
  id: number
  seq: number
  length: number
  checksum: number
  /** Byte 17: which attempt at the request sent the frame (see PROTOCOL.md, "NACK"). */
  epoch: number
}

export function encodeHeader(h: Header, out: Buffer = Buffer.allocUnsafe(HEADER_SIZE), offset = 0): Buffer {
  if (out.length - offset < HEADER_SIZE) throw new RangeError('header needs 24 bytes')
  out.writeUInt16BE(MAGIC, offset)
  out.writeUInt8(PROTOCOL_VERSION, offset + 2)
  out.writeUInt8(h.type, offset + 3)
  out.writeUInt32BE(h.id, offset + 4)
  out.writeUInt32BE(h.seq, offset + 8)
  out.writeUInt32BE(h.length, offset + 12)
  out.writeUInt8(h.checksum, offset + 16)
  out.writeUInt8(h.epoch, offset + 17)
  out.writeUInt16BE(0, offset + 18)
  out.writeUInt32BE(crc32(out.subarray(offset, offset + 20)), offset + 20)
  return out
}

export type HeaderResult = { ok: true; header: Header } | { ok: false; reason: string }

/** Decode and validate a header; never throws for bad bytes, only for a short buffer. */
export function decodeHeader(buf: Buffer, offset = 0): HeaderResult {
  if (buf.length - offset < HEADER_SIZE) throw new RangeError('header needs 24 bytes')
  if (buf.readUInt16BE(offset) !== MAGIC) return { ok: false, reason: 'bad magic' }
  if (buf.readUInt32BE(offset + 20) !== crc32(buf.subarray(offset, offset + 20))) {
    return { ok: false, reason: 'header checksum mismatch' }
  }
  const version = buf.readUInt8(offset + 2)
  if (version !== PROTOCOL_VERSION) return { ok: false, reason: `unsupported protocol version ${version}` }
  const header: Header = {
    type: buf.readUInt8(offset + 3),
    id: buf.readUInt32BE(offset + 4),
    seq: buf.readUInt32BE(offset + 8),
    length: buf.readUInt32BE(offset + 12),
    checksum: buf.readUInt8(offset + 16),
    epoch: buf.readUInt8(offset + 17),
  }
  if (header.length > MAX_PAYLOAD) return { ok: false, reason: `payload length ${header.length} exceeds ${MAX_PAYLOAD}` }
  if (DIGEST_SIZE[header.checksum] === undefined) return { ok: false, reason: `unknown checksum id ${header.checksum}` }
  return { ok: true, header }
}
