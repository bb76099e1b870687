/**
 * Incremental frame decoder: feed it bytes in any chunking, it calls back with
 * whole frames. It never throws on bad input: a header that fails its own
 * check is reported through `onInvalid`, after which the stream is not
 * trusted and the decoder stops.
 */
import { digestSize, verifyDigest } from './checksum.js'
import { HEADER_SIZE } from './constants.js'
import type { ReceivedFrame } from './frame.js'
import { decodeHeader, type Header } from './header.js'

export interface DecoderHandlers {
  onFrame(frame: ReceivedFrame): void
  onInvalid(reason: string): void
}

const enum State {
  Header,
  Body,
}

export class FrameDecoder {
  #chunks: Buffer[] = []
  #buffered = 0
  #state = State.Header
  #failed = false
  #header: Header | null = null
  #handlers: DecoderHandlers

  constructor(handlers: DecoderHandlers) {
    this.#handlers = handlers
  }

  /** Bytes received but not yet part of a whole frame. */
  get buffered(): number {
    return this.#buffered
  }

  write(chunk: Buffer): void {
    if (this.#failed || chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    while (!this.#failed) {
      switch (this.#state) {
        case State.Header: {
          if (this.#buffered < HEADER_SIZE) return
          const result = decodeHeader(this.#take(HEADER_SIZE))
          if (!result.ok) return this.#fail(result.reason)
          this.#header = result.header
          this.#state = State.Body
          break
        }
        case State.Body: {
          const h = this.#header!
          const dsize = digestSize(h.checksum)
          if (this.#buffered < dsize + h.length) return
          const digest = this.#take(dsize)
          const payload = this.#take(h.length)
          this.#state = State.Header
          this.#header = null
          const intact = verifyDigest(h.checksum, payload, digest, 0)
          this.#handlers.onFrame({ type: h.type, id: h.id, seq: h.seq, checksum: h.checksum, payload, intact })
          break
        }
      }
    }
  }

  /** True when the stream stopped at a frame boundary (nothing half-received). */
  get atBoundary(): boolean {
    return this.#state === State.Header && this.#buffered === 0
  }

  #fail(reason: string): void {
    this.#failed = true
    this.#chunks = []
    this.#buffered = 0
    this.#handlers.onInvalid(reason)
  }

  /** Remove exactly n bytes from the front; zero-copy when one chunk holds them. */
  #take(n: number): Buffer {
    this.#buffered -= n
    const first = this.#chunks[0]
    if (n === 0) return Buffer.alloc(0)
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const c = this.#chunks[0]
      const want = n - filled
      if (c.length <= want) {
        c.copy(out, filled)
        filled += c.length
        this.#chunks.shift()
      } else {
        c.copy(out, filled, 0, want)
        this.#chunks[0] = c.subarray(want)
        filled += want
      }
    }
    return out
  }
}
