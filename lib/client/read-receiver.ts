/**
 * The receiving side of one read request, whatever consumes its bytes. Only
 * pages that arrive intact and in sequence are handed to the sink; a corrupt
 * or missing page is asked for again (NACK) and everything after it
 * discarded until the server's RESYNC. The byte count announced by START and
 * END is checked, so a short transfer is an error, never a quiet success.
 *
 * Sinks: a Readable (ReadStream), one Buffer (readFile), a callback per
 * piece (readChunks, what the CLI writes to stdout with), the entries of a
 * readv (BatchReads).
 */
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

export interface ReadSink {
  /** START arrived: what follows. */
  info(info: ReadInfo): void
  /**
   * The next verified bytes, in order. They lie in the client's reused
   * receive buffer: copy or write out what you keep before returning.
   * Return false to hold the connection until `resume` is called.
   */
  data(views: readonly Buffer[], resume: () => void): boolean
  /** Every byte arrived. */
  end(): void
  /** The read failed; nothing more comes. */
  fail(err: Error): void
}

export class ReadReceiver implements FrameHandler {
  /** What the server announced before the bytes (START frame). */
  info: ReadInfo | null = null
  #window = new ReceiveWindow()
  /** The server has ended this request (END or ERROR seen), or the connection is gone. */
  #finished = false
  #released = false
  #control: RequestControl
  #sink: ReadSink

  /** A readv's stream: START announces no length (any object), END says how many bytes came. */
  #stream: boolean

  constructor(
    readonly id: number,
    control: RequestControl,
    sink: ReadSink,
    { stream = false }: { stream?: boolean } = {},
  ) {
    this.#control = control
    this.#sink = sink
    this.#stream = stream
  }

  /** NACKs this read has sent. */
  get nacks(): number {
    return this.#window.nacks
  }

  onFrame(frame: ReceivedFrame, resume: () => void): boolean {
    if (this.#finished) return true
    const verdict = this.#window.accept(frame)
    if (typeof verdict === 'object') this.#nack(verdict)
    else if (verdict === 'unreadable-error') {
      this.#finished = true
      this.#fail(unreadableError(frame))
    }
    if (verdict !== 'deliver') return true
    switch (frame.type) {
      case FrameType.ERROR:
        // An ERROR sent before our NACK arrived: the server will still answer the NACK with a
        // resend, so the request is not over there, and releasing it cancels that resend.
        this.#finished = !this.#window.awaiting
        return this.#fail(errorFromFrame(frame))
      case FrameType.START:
        if (this.info) return this.#fail(error('EPROTO', `read ${this.id}: second START frame`))
        try {
          this.info = parseObject<ReadInfo>(frame, this.#stream ? [] : ['size', 'offset', 'length'])
        } catch (err) {
          return this.#fail(err as Error)
        }
        try {
          this.#sink.info(this.info)
        } catch (err) {
          // The consumer cannot take this read (readFile of more than a Buffer holds): it ends with that error.
          return this.#fail(err as Error)
        }
        return true
      case FrameType.DATA: {
        if (!this.info) return this.#fail(error('EPROTO', `read ${this.id}: DATA before START`))
        if (!this.#stream && this.#window.offset > this.info.length) return this.#fail(error('EPROTO', `read ${this.id}: more bytes than announced`))
        try {
          return this.#sink.data(payloadViews(frame), resume)
        } catch (err) {
          // The consumer failed (stdout closed, say): the read ends with its error.
          return this.#fail(err as Error)
        }
      }
      case FrameType.END: {
        let end: { length: number }
        try {
          end = parseObject<{ length: number }>(frame, ['length'])
        } catch (err) {
          return this.#fail(err as Error)
        }
        const got = this.#window.offset
        if (!this.info || (!this.#stream && got !== this.info.length) || end.length !== got) {
          return this.#fail(error('EPROTO', `read ${this.id}: got ${got} bytes, expected ${this.info?.length ?? '?'}`))
        }
        this.#finished = true
        this.release()
        this.#sink.end()
        return true
      }
      case FrameType.PROGRESS:
        // A command's "still working" (a tree walking a slow disk): nothing to deliver. A read
        // never sends one: there it would be a DATA frame's place taken, its bytes lost unseen.
        if (this.#stream) return true
        return this.#fail(error('EPROTO', `read ${this.id}: PROGRESS in a read`))
      default:
        return this.#fail(error('EPROTO', `read ${this.id}: unexpected frame type ${frame.type}`))
    }
  }

  onLost(): void {
    if (!this.#finished) this.#nack(this.#window.lost())
  }

  onAbort(err: Error): void {
    if (this.#finished) return
    this.#finished = true
    this.#sink.fail(err)
  }

  /** Forget this request; if the server has not ended it, tell it to stop (the consumer left early). */
  release(): void {
    if (this.#released) return
    this.#released = true
    this.#control.release(!this.#finished)
    this.#finished = true
  }

  #nack(nack: Nack): void {
    if (!this.#window.exhausted) return this.#control.nack(nack)
    this.#fail(giveUp(nack))
  }

  #fail(err: Error): boolean {
    this.release()
    this.#sink.fail(err)
    return true
  }
}
