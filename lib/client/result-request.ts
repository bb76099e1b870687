/**
 * A request answered by one RESULT (or ERROR) frame: ls, stat, and the like;
 * long ones (warm) send PROGRESS frames before it.
 */
import { error } from '../errors.js'
import { FrameType } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import { type Nack, ReceiveWindow } from '../protocol/receive-window.js'
import { errorFromFrame, type FrameHandler, giveUp, parseJsonPayload, type RequestControl, unreadableError } from './handlers.js'

export interface ResultOptions<T> {
  /** PROGRESS frames before the RESULT. */
  onProgress?: (progress: unknown) => void
  /**
   * For a request the server cannot run again (an upload: the bytes are the
   * client's): never NACKed, and silence is not answered. A RESULT whose
   * payload arrived damaged is taken as `known()`: its header, which has a
   * CRC of its own, says the request succeeded, and the caller knows what
   * the payload would say (null: it cannot know yet, and the request fails
   * with ECORRUPT). A damaged ERROR fails it with ECORRUPT too.
   */
  once?: { known: () => T | null }
}

export class ResultRequest<T> implements FrameHandler {
  readonly promise: Promise<T>
  #resolve!: (value: T) => void
  #reject!: (err: Error) => void
  #control: RequestControl
  #window = new ReceiveWindow()
  #done = false

  #onProgress?: (progress: unknown) => void
  #once?: { known: () => T | null }

  constructor(control: RequestControl, { onProgress, once }: ResultOptions<T> = {}) {
    this.#control = control
    this.#onProgress = onProgress
    this.#once = once
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  onFrame(frame: ReceivedFrame): boolean {
    if (this.#done) return true
    // Nothing is ever asked again, so no resend window: each frame is taken as it comes.
    const verdict = this.#once ? this.#takeOnce(frame) : this.#window.accept(frame)
    if (typeof verdict === 'object') this.#nack(verdict)
    else if (verdict === 'unreadable-error') this.#failUnreadable(frame)
    if (verdict !== 'deliver') return true
    if (frame.type === FrameType.PROGRESS) {
      try {
        this.#onProgress?.(parseJsonPayload(frame))
      } catch {
        // progress is advisory: a bad one is skipped, not fatal
      }
      return true
    }
    this.#done = true
    // Only an ERROR is delivered while a NACK waits for its answer: the server will still
    // answer the NACK (run the request again), so cancel that.
    this.#control.release(this.#window.awaiting)
    if (frame.type === FrameType.RESULT && !frame.intact) {
      // Only a `once` request delivers it (see ResultOptions).
      const known = this.#once!.known()
      if (known !== null) this.#resolve(known)
      else this.#reject(error('ECORRUPT', `request ${frame.id}: a RESULT whose payload arrived damaged, before the request was sent whole`))
    } else if (frame.type === FrameType.RESULT) {
      try {
        this.#resolve(parseJsonPayload<T>(frame))
      } catch (err) {
        this.#reject(err as Error)
      }
    } else if (frame.type === FrameType.ERROR) this.#reject(errorFromFrame(frame))
    else this.#reject(error('EPROTO', `unexpected frame type ${frame.type} in reply to request ${frame.id}`))
    return true
  }

  /** The verdict on a frame of a `once` request: a damaged RESULT is delivered too (see ResultOptions). */
  #takeOnce(frame: ReceivedFrame): 'deliver' | 'drop' | 'unreadable-error' {
    if (frame.intact || frame.type === FrameType.RESULT) return 'deliver'
    return frame.type === FrameType.ERROR ? 'unreadable-error' : 'drop'
  }

  onLost(): void {
    if (!this.#done && !this.#once) this.#nack(this.#window.lost())
  }

  #failUnreadable(frame: ReceivedFrame): void {
    this.#done = true
    this.#control.release(false)
    this.#reject(unreadableError(frame))
  }

  #nack(nack: Nack): void {
    if (!this.#window.exhausted) return this.#control.nack(nack)
    this.#done = true
    this.#control.release(true)
    this.#reject(giveUp(nack))
  }

  onAbort(err: Error): void {
    this.#done = true
    this.#reject(err)
  }
}
