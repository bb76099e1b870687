/** Frames as values, and their encoding: header + payload digest, then the payload. */
import { digestSize, writeDigest } from './checksum.js'
import { type FrameType, HEADER_SIZE, MAX_PAYLOAD } from './constants.js'
import { encodeHeader } from './header.js'

export interface Frame {
  type: FrameType | number
  id: number
  seq: number
  payload: Buffer
  /**
   * Which attempt at its request produced this frame: the low 8 bits of the
   * resync number that started it (0 for the first). Sent in the header's
   * epoch byte (17), so a receiver can tell a resend from stale frames even when
   * the RESYNC marker itself was lost.
   */
  epoch?: number
}

/** A frame as the decoder hands it on: `intact` is false when the payload failed its digest. */
export interface ReceivedFrame extends Frame {
  checksum: number
  epoch: number
  intact: boolean
  /**
   * Set when the payload arrived in several pieces: those pieces, as views of
   * the received bytes (no copy). `payload` then joins them on first use, so a
   * reader that can take pieces (a byte stream) should take these.
   */
  views?: readonly Buffer[]
}

/** The payload of a received frame as pieces, without joining them. */
export function payloadViews(frame: ReceivedFrame): readonly Buffer[] {
  return frame.views ?? [frame.payload]
}

/** Payload bytes of a received frame, without joining its pieces. */
export function payloadLength(frame: ReceivedFrame): number {
  if (!frame.views) return frame.payload.length
  let n = 0
  for (const v of frame.views) n += v.length
  return n
}

/** Payloads this small are copied behind their header so a frame is one write. */
const COALESCE_BELOW = 4096

/**
 * Encode a frame as one or two buffers: the head (header and digest) and, for
 * large payloads, the payload itself, so page bytes are never copied.
 */
export function encodeFrame(frame: Frame, checksum: number): Buffer[] {
  const { payload } = frame
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`)
  const headSize = HEADER_SIZE + digestSize(checksum)
  const small = payload.length < COALESCE_BELOW
  const head = Buffer.allocUnsafe(headSize + (small ? payload.length : 0))
  encodeHeader({ type: frame.type, id: frame.id, seq: frame.seq, length: payload.length, checksum, epoch: (frame.epoch ?? 0) & 0xff }, head, 0)
  writeDigest(checksum, payload, head, HEADER_SIZE)
  if (!small) return [head, payload]
  payload.copy(head, headSize)
  return [head]
}

/** A JSON payload, as HELLO, START, END, RESULT, ERROR and RESYNC frames carry. */
export function jsonFrame(type: FrameType, id: number, seq: number, body: unknown, epoch = 0): Frame {
  return { type, id, seq, epoch, payload: Buffer.from(JSON.stringify(body)) }
}
