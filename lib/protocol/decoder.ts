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
import { digestSize, verifyDigestOfViews } from './checksum.js'
import { HEADER_SIZE, MAGIC } from './constants.js'
import type { ReceivedFrame } from './frame.js'
import { ByteQueue } from './byte-queue.js'
import { decodeHeader, type Header } from './header.js'

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

const enum State {
  Header,
  Body,
  Hunt,
}

const MAGIC_BYTES = Buffer.from([MAGIC >> 8, MAGIC & 0xff])
const EMPTY = Buffer.alloc(0)
/** Smallest carry buffer retain() allocates: most partial frames fit, so it is allocated once. */
const MIN_CARRY = 512 * 1024

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

export class FrameDecoder {
  #bytes = new ByteQueue()
  #state = State.Header
  #failed = false
  #skipped = 0
  #header: Header | null = null
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
    return this.#bytes.length + (this.#state === State.Body ? HEADER_SIZE : 0)
  }

  /** True when the stream stopped at a frame boundary (nothing half-received). */
  get atBoundary(): boolean {
    return this.#state === State.Header && this.#bytes.length === 0
  }

  write(chunk: Buffer): void {
    if (this.#failed || chunk.length === 0) return
    this.#bytes.push(chunk)
    while (!this.#failed) {
      switch (this.#state) {
        case State.Header: {
          if (this.#bytes.length < HEADER_SIZE) return
          const result = decodeHeader(this.#bytes.peek(HEADER_SIZE))
          if (!result.ok) {
            this.#lost(result.reason)
            break
          }
          this.#bytes.drop(HEADER_SIZE)
          this.#header = result.header
          this.#state = State.Body
          break
        }
        case State.Body: {
          const h = this.#header!
          const dsize = digestSize(h.checksum)
          if (this.#bytes.length < dsize + h.length) return
          const digest = this.#bytes.take(dsize)
          // The payload as views of the received chunks: a page is never copied on its way in.
          const views = h.length === 0 ? [EMPTY] : this.#bytes.takeViews(h.length)
          this.#state = State.Header
          this.#header = null
          const intact = verifyDigestOfViews(h.checksum, views, digest, 0)
          this.#handlers.onFrame(received(h, views, intact))
          break
        }
        case State.Hunt:
          if (!this.#hunt()) return
          break
      }
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
    this.#header = null
    if (this.#bytes.length > 0 || this.#state !== State.Header) this.#state = State.Hunt
  }

  #lost(reason: string): void {
    if (!this.#resync) {
      this.#failed = true
      this.#bytes.clear()
      this.#handlers.onInvalid(reason)
      return
    }
    if (this.#state !== State.Hunt) this.#handlers.onInvalid(reason)
    this.#state = State.Hunt
    this.#header = null
    // The bytes at the current position are not a header: hunt from the next one.
    if (this.#bytes.length > 0) {
      this.#bytes.drop(1)
      this.#skipped++
    }
  }

  /** Look for a valid header in what is buffered; true when found (state is then Body). */
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
        this.#header = result.header
        this.#state = State.Body
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
