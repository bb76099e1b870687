/**
 * Incremental frame decoder: feed it bytes in any chunking, it calls back with
 * whole frames. It never throws on bad input.
 *
 * A header that fails its own check is reported through `onInvalid`. Then,
 * by default, the decoder stops: the stream is not trusted. With `resync`,
 * it hunts instead: it skips bytes until a position where a whole valid
 * header starts (magic, header CRC, sane fields) and goes on from there. The
 * caller decides what to distrust in between (the NACK path asks every
 * request in flight to be resent).
 */
import { HEADER_SIZE, MAGIC } from './constants.js'
import type { ReceivedFrame } from './frame.js'
import { ByteQueue } from './byte-queue.js'
import { FrameReader, isFault } from './frame-reader.js'
import { decodeHeader } from './header.js'

export interface DecoderHandlers {
  onFrame(frame: ReceivedFrame): void
  /** A header failed its check at a frame boundary (reported once per loss of sync). */
  onInvalid(reason: string): void
  /** With `resync`: a valid header was found again after `skipped` bytes. */
  onResync?(skipped: number): void
}

export interface DecoderOptions {
  /** Hunt for the next valid header after an invalid one, instead of stopping. */
  resync?: boolean
}

const MAGIC_BYTES = Buffer.from([MAGIC >> 8, MAGIC & 0xff])
/** Smallest carry buffer retain() allocates: most partial frames fit, so it is allocated once. */
const MIN_CARRY = 512 * 1024

export class FrameDecoder {
  #bytes = new ByteQueue()
  #reader = new FrameReader()
  /** Looking for the next valid header (with `resync`, after an invalid one). */
  #hunting = false
  #failed = false
  #skipped = 0
  #handlers: DecoderHandlers
  #resync: boolean
  /** See retain(). */
  #carries: [Buffer | null, Buffer | null] = [null, null]
  #carry = 0

  constructor(handlers: DecoderHandlers, { resync = false }: DecoderOptions = {}) {
    this.#handlers = handlers
    this.#resync = resync
  }

  /** Bytes received but not yet handed on as part of a whole frame (a header already read counts). */
  get buffered(): number {
    return this.#bytes.length + (this.#reader.inFrame ? HEADER_SIZE : 0)
  }

  /** True when the stream stopped at a frame boundary (nothing half-received). */
  get atBoundary(): boolean {
    return !this.#hunting && !this.#reader.inFrame && this.#bytes.length === 0
  }

  write(chunk: Buffer): void {
    if (this.#failed || chunk.length === 0) return
    this.#bytes.push(chunk)
    while (!this.#failed) {
      if (this.#hunting) {
        if (!this.#hunt()) return
        continue
      }
      const read = this.#reader.read(this.#bytes)
      if (read === null) return
      if (isFault(read)) this.#lost('invalid' in read ? read.invalid : `payload length ${read.tooBig} is too long`)
      else this.#handlers.onFrame(read)
    }
  }

  /**
   * The caller is about to reuse the memory of the chunks it wrote (a reused
   * receive buffer): copy what is still buffered, a partial frame, into the
   * decoder's own memory. Frames already handed on are not copied: a caller
   * that reuses its buffer must consume each frame within onFrame.
   * Two carry buffers are used in turn when a new frame starts, so a copy
   * never overlaps its source (the bytes kept at the last call are among
   * those copied now).
   */
  retain(): void {
    const n = this.#bytes.length
    if (n === 0) return
    // A partial frame that grows across reads is extended in place: each byte is copied once.
    const current = this.#carries[this.#carry]
    if (current && this.#bytes.extendInto(current)) return
    this.#carry ^= 1
    let into = this.#carries[this.#carry]
    // Grown for a big page (twice what is needed, so growing stays linear); back to small once pages are.
    if (!into || into.length < n || (into.length > 4 * MIN_CARRY && n <= MIN_CARRY)) {
      into = this.#carries[this.#carry] = Buffer.allocUnsafe(n <= MIN_CARRY ? MIN_CARRY : 2 * n)
    }
    this.#bytes.moveInto(into)
  }

  /**
   * Forget any half-received frame and hunt for the next header, silently:
   * for a caller that already knows the bytes it holds will never be
   * completed (a progress timeout). Needs `resync`.
   */
  reset(): void {
    if (this.#failed || !this.#resync) return
    const midFrame = this.#reader.inFrame
    this.#reader.forget()
    if (this.#bytes.length > 0 || midFrame) this.#hunting = true
  }

  #lost(reason: string): void {
    if (!this.#resync) {
      this.#failed = true
      this.#bytes.clear()
      this.#handlers.onInvalid(reason)
      return
    }
    if (!this.#hunting) this.#handlers.onInvalid(reason)
    this.#hunting = true
    this.#reader.forget()
    // The bytes at the current position are not a header: hunt from the next one.
    if (this.#bytes.length > 0) {
      this.#bytes.drop(1)
      this.#skipped++
    }
  }

  /** Look for a valid header in what is buffered; true when found (its frame is then read on). */
  #hunt(): boolean {
    const all = this.#bytes.flatten()
    let from = 0
    while (true) {
      const at = all.indexOf(MAGIC_BYTES, from)
      if (at === -1) {
        // Keep a last byte that may be the first half of a magic.
        const keep = all.length > 0 && all[all.length - 1] === MAGIC_BYTES[0] ? 1 : 0
        this.#discard(all.length - keep)
        return false
      }
      if (all.length - at < HEADER_SIZE) {
        this.#discard(at)
        return false
      }
      const result = decodeHeader(all, at)
      if (result.ok) {
        this.#discard(at + HEADER_SIZE)
        this.#skipped -= HEADER_SIZE
        this.#handlers.onResync?.(this.#skipped)
        this.#skipped = 0
        this.#reader.begin(result.header)
        this.#hunting = false
        return true
      }
      from = at + 1
    }
  }

  /** Drop n bytes from the front, counting them as skipped. */
  #discard(n: number): void {
    this.#skipped += n
    this.#bytes.drop(n)
  }
}
