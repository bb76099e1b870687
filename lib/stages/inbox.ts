/**
 * Frames uploaded by the client for one request (a `write`), handed to its
 * command as an async iterable. Holds one frame at a time: the frame's
 * `done` callback (which releases the connection's input) runs only when the
 * command takes the frame, so a slow disk slows the client, not our memory.
 */
import type { ReceivedFrame } from '../protocol/frame.js'

export class Inbox implements AsyncIterable<ReceivedFrame> {
  #queue: { frame: ReceivedFrame; done: () => void }[] = []
  #wake: (() => void) | null = null
  #closed = false

  /** Queue a frame; `done` is called once the command has taken it (or the inbox is closed). */
  push(frame: ReceivedFrame, done: () => void): void {
    if (this.#closed) return done()
    this.#queue.push({ frame, done })
    this.#signal()
  }

  /** No more frames will come (the request ended or was dropped): the iterator ends, held callbacks run. */
  close(): void {
    this.#closed = true
    for (const { done } of this.#queue.splice(0)) done()
    this.#signal()
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ReceivedFrame, void, void> {
    while (true) {
      const next = this.#queue.shift()
      if (next) {
        next.done()
        yield next.frame
        continue
      }
      if (this.#closed) return
      await new Promise<void>((resolve) => (this.#wake = resolve))
    }
  }

  #signal(): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }
}
