/**
 * What a server reads from a client: newline-delimited JSON requests, and,
 * where a line could start, upload frames (first byte 0xC5, the magic).
 * Pure and incremental like FrameDecoder: feed bytes in any chunking.
 * A bad line is reported and skipped; an over-long line or a frame header
 * that fails its check is fatal, since no later byte can be placed.
 */
import { MAGIC, MAX_UPLOAD_PAYLOAD } from './constants.js'
import type { ReceivedFrame } from './frame.js'
import { ByteQueue } from './byte-queue.js'
import { FrameReader, isFault } from './frame-reader.js'

const NEWLINE = 0x0a
const CR = 0x0d
const FRAME_START = MAGIC >> 8
/** Pieces of a partial request line kept apart before they are joined (see #step). */
const MAX_LINE_CHUNKS = 64

export interface InboundHandlers {
  /** A request line (without its line ending), not yet parsed. */
  onLine(line: Buffer): void
  onFrame(frame: ReceivedFrame): void
  /** The stream cannot be read on: `code` is ETOOBIG or EPROTO. */
  onFatal(code: 'ETOOBIG' | 'EPROTO', message: string): void
}

const enum State {
  Line,
  Frame,
  Failed,
}

export class InboundDecoder {
  #bytes = new ByteQueue()
  #state: State = State.Line
  #reader = new FrameReader(MAX_UPLOAD_PAYLOAD)
  /** Bytes of a partial request line already searched for its newline. */
  #searched = 0
  #maxRequest: number
  #on: InboundHandlers

  constructor(maxRequest: number, handlers: InboundHandlers) {
    this.#maxRequest = maxRequest
    this.#on = handlers
  }

  write(chunk: Buffer): void {
    if (this.#state === State.Failed || chunk.length === 0) return
    this.#bytes.push(chunk)
    while (this.#step());
  }

  /** What the bytes held so far start: part of a request line, part of an upload frame, or nothing. */
  get pending(): 'line' | 'frame' | null {
    if (this.#state === State.Frame) return 'frame'
    return this.#state === State.Line && this.#bytes.length > 0 ? 'line' : null
  }

  /** The input ended: a last line without a newline still counts. */
  end(): void {
    if (this.#state === State.Line && this.#bytes.length > 0) this.#on.onLine(this.#bytes.take(this.#bytes.length))
  }

  /** One step of the parser; false when it needs more bytes (or has failed). */
  #step(): boolean {
    switch (this.#state) {
      case State.Line: {
        if (this.#bytes.length === 0) return false
        if (this.#bytes.first() === FRAME_START) {
          this.#state = State.Frame
          return true
        }
        const nl = this.#bytes.indexOf(NEWLINE, this.#searched)
        if (nl === -1) {
          // Each byte is searched once, however finely the line arrives.
          this.#searched = this.#bytes.length
          // +1: a trailing \r may yet be followed by its \n.
          if (this.#bytes.length > this.#maxRequest + 1) return this.#fail('ETOOBIG', `request line exceeds ${this.#maxRequest} bytes; requests are one JSON object per line`)
          // A line trickled in tiny pieces: join them, or each arrival would step over every piece so far.
          if (this.#bytes.chunks > MAX_LINE_CHUNKS) this.#bytes.flatten()
          return false
        }
        this.#searched = 0
        const line = this.#bytes.take(nl + 1).subarray(0, nl)
        const length = line.length - (line[line.length - 1] === CR ? 1 : 0)
        if (length > this.#maxRequest) return this.#fail('ETOOBIG', `request line exceeds ${this.#maxRequest} bytes; requests are one JSON object per line`)
        this.#on.onLine(line.subarray(0, length))
        return true
      }
      case State.Frame: {
        const read = this.#reader.read(this.#bytes)
        if (read === null) return false
        if (isFault(read)) {
          if ('invalid' in read) return this.#fail('EPROTO', `invalid upload frame header (${read.invalid}); closing`)
          return this.#fail('ETOOBIG', `upload frames carry at most ${MAX_UPLOAD_PAYLOAD} bytes`)
        }
        this.#state = State.Line
        this.#on.onFrame(read)
        return true
      }
      case State.Failed:
        return false
    }
  }

  #fail(code: 'ETOOBIG' | 'EPROTO', message: string): false {
    this.#state = State.Failed
    this.#bytes.clear()
    this.#on.onFatal(code, message)
    return false
  }
}
