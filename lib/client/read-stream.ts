/**
 * A read request as a Readable of exactly the requested bytes. Every page was
 * verified against its checksum before it is pushed; sequence numbers and the
 * byte count announced by START and END are checked, so a short or reordered
 * transfer is an error, never a quiet success.
 */
import { Readable } from 'node:stream'
import { error } from '../errors.js'
import { FrameType } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import { errorFromFrame, type FrameHandler, parseJsonPayload } from './handlers.js'

export interface ReadInfo {
  /** Size of the whole file. */
  size: number
  offset: number
  /** Bytes this read delivers. */
  length: number
  mtimeMs: number
}

export class ReadStream extends Readable implements FrameHandler {
  readonly id: number
  /** What the server announced before the bytes (START frame). */
  info: ReadInfo | null = null
  #seq = 0
  #received = 0
  #held: (() => void) | null = null
  /** The server has ended this request (END or ERROR seen), or the connection is gone. */
  #finished = false
  #release: (cancelOnServer: boolean) => void

  /** `release` forgets this request in the client, and asks the server to stop when it still runs. */
  constructor(id: number, release: (cancelOnServer: boolean) => void, highWaterMark = 1024 * 1024) {
    super({ highWaterMark })
    this.id = id
    this.#release = release
  }

  override _read(): void {
    const held = this.#held
    this.#held = null
    held?.()
  }

  onFrame(frame: ReceivedFrame, resume: () => void): boolean {
    if (this.#finished) return true
    if (!frame.intact) return this.#fail(error('ECHECKSUM', `page ${frame.seq} of read ${this.id} failed its checksum`))
    if (frame.type === FrameType.ERROR) {
      this.#finished = true
      return this.#fail(errorFromFrame(frame))
    }
    if (frame.seq !== this.#seq) return this.#fail(error('EPROTO', `read ${this.id}: expected frame ${this.#seq}, got ${frame.seq}`))
    this.#seq++
    switch (frame.type) {
      case FrameType.START:
        if (this.info) return this.#fail(error('EPROTO', `read ${this.id}: second START frame`))
        this.info = parseJsonPayload<ReadInfo>(frame)
        this.emit('info', this.info)
        return true
      case FrameType.DATA: {
        if (!this.info) return this.#fail(error('EPROTO', `read ${this.id}: DATA before START`))
        this.#received += frame.payload.length
        if (this.#received > this.info.length) return this.#fail(error('EPROTO', `read ${this.id}: more bytes than announced`))
        if (this.push(frame.payload)) return true
        this.#held = resume
        return false
      }
      case FrameType.END: {
        const end = parseJsonPayload<{ length: number }>(frame)
        if (!this.info || this.#received !== this.info.length || end.length !== this.#received) {
          return this.#fail(error('EPROTO', `read ${this.id}: got ${this.#received} bytes, expected ${this.info?.length ?? '?'}`))
        }
        this.#finished = true
        this.#release(false)
        this.push(null)
        return true
      }
      default:
        return this.#fail(error('EPROTO', `read ${this.id}: unexpected frame type ${frame.type}`))
    }
  }

  onAbort(err: Error): void {
    if (this.#finished) return
    this.#finished = true
    this.destroy(err)
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Destroyed by the consumer before the end (e.g. `| head -c 10`): stop the server too.
    this.#release(!this.#finished)
    this.#finished = true
    const held = this.#held
    this.#held = null
    held?.()
    cb(err)
  }

  #fail(err: Error): boolean {
    this.destroy(err)
    return true
  }
}
