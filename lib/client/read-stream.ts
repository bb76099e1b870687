/**
 * A read request as a Readable of exactly the requested bytes. Only pages
 * that arrive intact and in sequence are pushed; a corrupt or missing page
 * is asked for again (NACK) and everything after it discarded until the
 * server's RESYNC. The byte count announced by START and END is checked, so
 * a short transfer is an error, never a quiet success.
 */
import { Readable } from 'node:stream'
import { error } from '../errors.js'
import { FrameType } from '../protocol/constants.js'
import { payloadViews, type ReceivedFrame } from '../protocol/frame.js'
import { type Nack, ReceiveWindow } from '../protocol/receive-window.js'
import { errorFromFrame, type FrameHandler, giveUp, parseObject, type RequestControl, unreadableError } from './handlers.js'

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
  #window = new ReceiveWindow()
  #held: (() => void) | null = null
  /** The server has ended this request (END or ERROR seen), or the connection is gone. */
  #finished = false
  #control: RequestControl

  constructor(id: number, control: RequestControl, highWaterMark = 1024 * 1024) {
    super({ highWaterMark })
    this.id = id
    this.#control = control
  }

  /** NACKs this read has sent. */
  get nacks(): number {
    return this.#window.nacks
  }

  override _read(): void {
    const held = this.#held
    this.#held = null
    held?.()
  }

  onFrame(frame: ReceivedFrame, resume: () => void): boolean {
    if (this.#finished) return true
    const verdict = this.#window.accept(frame)
    if (typeof verdict === 'object') this.#nack(verdict)
    else if (verdict === 'unreadable-error') this.#failUnreadable(frame)
    if (verdict !== 'deliver') return true
    switch (frame.type) {
      case FrameType.ERROR:
        this.#finished = true
        return this.#fail(errorFromFrame(frame))
      case FrameType.START:
        if (this.info) return this.#fail(error('EPROTO', `read ${this.id}: second START frame`))
        try {
          this.info = parseObject<ReadInfo>(frame, ['size', 'offset', 'length'])
        } catch (err) {
          return this.#fail(err as Error)
        }
        this.emit('info', this.info)
        return true
      case FrameType.DATA: {
        if (!this.info) return this.#fail(error('EPROTO', `read ${this.id}: DATA before START`))
        if (this.#window.offset > this.info.length) return this.#fail(error('EPROTO', `read ${this.id}: more bytes than announced`))
        // Pieces as they arrived (views of the received bytes): a page is never copied.
        let more = true
        for (const view of payloadViews(frame)) more = this.push(view)
        if (more) return true
        this.#held = resume
        return false
      }
      case FrameType.END: {
        let end: { length: number }
        try {
          end = parseObject<{ length: number }>(frame, ['length'])
        } catch (err) {
          return this.#fail(err as Error)
        }
        const got = this.#window.offset
        if (!this.info || got !== this.info.length || end.length !== got) {
          return this.#fail(error('EPROTO', `read ${this.id}: got ${got} bytes, expected ${this.info?.length ?? '?'}`))
        }
        this.#finished = true
        this.#control.release(false)
        this.push(null)
        return true
      }
      default:
        return this.#fail(error('EPROTO', `read ${this.id}: unexpected frame type ${frame.type}`))
    }
  }

  onLost(): void {
    if (!this.#finished) this.#nack(this.#window.lost())
  }

  #failUnreadable(frame: ReceivedFrame): void {
    this.#finished = true
    this.destroy(unreadableError(frame))
  }

  #nack(nack: Nack): void {
    if (!this.#window.exhausted) return this.#control.nack(nack)
    this.destroy(giveUp(nack)) // _destroy cancels it on the server
  }

  onAbort(err: Error): void {
    if (this.#finished) return
    this.#finished = true
    this.destroy(err)
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Destroyed by the consumer before the end (e.g. `| head -c 10`): stop the server too.
    this.#control.release(!this.#finished)
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
