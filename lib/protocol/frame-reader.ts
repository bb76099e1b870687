/**
 * Frames read from received bytes, in one place: a header (checked on its
 * own), then the payload's digest and the payload. The client's FrameDecoder
 * reads the server's frames with it, and the server's InboundDecoder the
 * upload frames between request lines. Sans-I/O: it reads a ByteQueue and
 * says what it found.
 */
import { digestSize, verifyDigestOfViews } from './checksum.js'
import { HEADER_SIZE, MAX_PAYLOAD } from './constants.js'
import type { ReceivedFrame } from './frame.js'
import type { ByteQueue } from './byte-queue.js'
import { decodeHeader, type Header } from './header.js'

/** Why no frame can be read at the front of the bytes: a header that fails its check, or a payload over the reader's limit. */
export type FrameFault = { invalid: string } | { tooBig: number }

const EMPTY = Buffer.alloc(0)

/** A received frame; a payload in several pieces keeps them as `views` and is joined only if asked for. */
function received(h: Header, views: Buffer[], intact: boolean): ReceivedFrame {
  const frame = { type: h.type, id: h.id, seq: h.seq, epoch: h.epoch, checksum: h.checksum, intact }
  if (views.length === 1) return { ...frame, payload: views[0] }
  let joined: Buffer | null = null
  return Object.defineProperty({ ...frame, views }, 'payload', {
    enumerable: true,
    get: () => (joined ??= Buffer.concat(views)),
  }) as unknown as ReceivedFrame
}

export class FrameReader {
  #header: Header | null = null
  #maxPayload: number

  /** `maxPayload`: longer payloads are a fault (upload frames are held to less than the protocol allows). */
  constructor(maxPayload = MAX_PAYLOAD) {
    this.#maxPayload = maxPayload
  }

  /** A frame is half read: its header has been taken. */
  get inFrame(): boolean {
    return this.#header !== null
  }

  /** Read on from a header found by other means (a hunt for the next valid one). */
  begin(header: Header): void {
    this.#header = header
  }

  /** Drop a half-read frame. */
  forget(): void {
    this.#header = null
  }

  /**
   * The frame at the front of `bytes`, taken from it once all of it is there;
   * null while more bytes are needed. A header that fails its check is a
   * fault with nothing taken (a caller that hunts starts from the same byte).
   * The payload comes as views of the received chunks: a page is never
   * copied on its way in.
   */
  read(bytes: ByteQueue): ReceivedFrame | null | FrameFault {
    if (!this.#header) {
      if (bytes.length < HEADER_SIZE) return null
      const result = decodeHeader(bytes.peek(HEADER_SIZE))
      if (!result.ok) return { invalid: result.reason }
      bytes.drop(HEADER_SIZE)
      if (result.header.length > this.#maxPayload) return { tooBig: result.header.length }
      this.#header = result.header
    }
    const h = this.#header
    const dsize = digestSize(h.checksum)
    if (bytes.length < dsize + h.length) return null
    const digest = bytes.take(dsize)
    const views = h.length === 0 ? [EMPTY] : bytes.takeViews(h.length)
    this.#header = null
    return received(h, views, verifyDigestOfViews(h.checksum, views, digest, 0))
  }
}

/** A fault, as opposed to a frame or "more bytes". */
export function isFault(r: ReceivedFrame | FrameFault): r is FrameFault {
  return 'invalid' in r || 'tooBig' in r
}
