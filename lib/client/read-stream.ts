/**
 * A read request as a Readable of exactly the requested bytes (see
 * ReadReceiver for what is checked, resumable-read.ts for how a read goes on
 * after its connection died). Each page is copied out of the
 * client's reused receive buffer into a Buffer of the stream's own.
 */
import { Readable } from 'node:stream'
import type { ReadHandle } from './client.js'
import type { ReadInfo, ReadSink } from './read-receiver.js'

export type { ReadInfo } from './read-receiver.js'

export class ReadStream extends Readable {
  #read: ReadHandle
  #held: (() => void) | null = null

  /** `open` starts the read into the sink it is given (see readStream in resumable-read.ts). */
  constructor(open: (sink: ReadSink) => ReadHandle, highWaterMark = 1024 * 1024) {
    super({ highWaterMark })
    this.#read = open({
      info: (info) => this.emit('info', info),
      data: (views, resume) => {
        let more = true
        for (const piece of copies(views)) {
          more = this.push(piece)
          // A 'data' listener may destroy the stream mid-page: then there is nothing to hold for.
          if (this.destroyed) return true
        }
        if (more) return true
        this.#held = resume
        return false
      },
      end: () => this.push(null),
      fail: (err) => this.destroy(err),
    })
  }

  /** What the server announced before the bytes (START frame). */
  get info(): ReadInfo | null {
    return this.#read?.info ?? null
  }

  /** NACKs this read has sent. */
  get nacks(): number {
    return this.#read.nacks
  }

  override _read(): void {
    const held = this.#held
    this.#held = null
    held?.()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Destroyed by the consumer before the end (e.g. `| head -c 10`): stop the server too.
    // (Unset when the read failed while it started: nothing to stop.)
    this.#read?.release()
    const held = this.#held
    this.#held = null
    held?.()
    cb(err)
  }
}

/**
 * Copies of pieces, in buffers of at most COPY_SIZE bytes. Why not one buffer
 * per page: glibc serves allocations above 128 KiB with fresh mmap()ed memory,
 * and faulting that in cost more than the copy (a 256 KiB page per buffer:
 * ~1.3 s of CPU per GB here); smaller buffers are recycled from its heap.
 */
function copies(views: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = []
  for (const v of views) {
    for (let at = 0; at < v.length; at += COPY_SIZE) out.push(Buffer.from(v.subarray(at, at + COPY_SIZE)))
  }
  return out
}

const COPY_SIZE = 64 * 1024
