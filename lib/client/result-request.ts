/** A request answered by one RESULT (or ERROR) frame: ls, stat, and the like. */
import { error } from '../errors.js'
import { FrameType } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import { errorFromFrame, type FrameHandler, parseJsonPayload } from './handlers.js'

export class ResultRequest<T> implements FrameHandler {
  readonly promise: Promise<T>
  #resolve!: (value: T) => void
  #reject!: (err: Error) => void
  #done: () => void

  constructor(done: () => void) {
    this.#done = done
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  onFrame(frame: ReceivedFrame): boolean {
    this.#done()
    if (!frame.intact) this.#reject(error('ECHECKSUM', `response to request ${frame.id} failed its checksum`))
    else if (frame.type === FrameType.RESULT) {
      try {
        this.#resolve(parseJsonPayload<T>(frame))
      } catch (err) {
        this.#reject(err as Error)
      }
    } else if (frame.type === FrameType.ERROR) this.#reject(errorFromFrame(frame))
    else this.#reject(error('EPROTO', `unexpected frame type ${frame.type} in reply to request ${frame.id}`))
    return true
  }

  onAbort(err: Error): void {
    this.#reject(err)
  }
}
