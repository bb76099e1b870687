/**
 * readMany over the socket: the paths go out in batches, one `readv` request
 * each (PROTOCOL.md, "readv"), and come back as one stream of entries per
 * batch: a list of 10,000 small files costs a few request lines, not 10,000.
 * Two batches are on their way at once, so the server has the next one
 * while the client takes the last entries of the one before.
 *
 * The entries wait here, in order, until the consumer takes them; past
 * HIGH_WATER bytes of them, the connection is held (the server stops
 * sending). A batch whose connection died is asked for again from its first
 * entry not received whole, after the client's retry delay.
 */
import { type CacheservError, error, isErrorCode } from '../errors.js'
import { type Entry, ENTRY_ERROR } from '../protocol/readv-entry.js'

/** Bytes of entries received and not yet taken before the connection is held. */
const HIGH_WATER = 32 * 1024 * 1024
/** Bytes of paths one batch carries at most: its request line must stay within the server's (64 KiB by default). */
const BATCH_BYTES = 32 * 1024

/**
 * How a batch is sent: `onEntry` gets each entry, in order; after each
 * piece, `hold()` says whether to hold the connection, and `onHeld` gets the
 * function that resumes it. `done` settles when the request ends; `cancel`
 * stops it.
 */
export type SendBatch = (
  paths: string[],
  onEntry: (entry: Entry) => void,
  hold: () => boolean,
  onHeld: (resume: () => void) => void,
) => { done: Promise<void>; cancel(): void }

interface Slot {
  path: string
  done: Promise<Buffer>
  settle: { resolve(data: Buffer): void; reject(err: Error): void }
}

export class BatchReads {
  #send: SendBatch
  #retry: (err: Error, attempt: number) => number | null
  #buffered = 0
  #held: (() => void) | null = null
  #running = new Set<() => void>()
  #left = false

  /** `retry`: ms to wait before asking for a batch's rest again after `err`, or null to fail. */
  constructor(send: SendBatch, retry: (err: Error, attempt: number) => number | null) {
    this.#send = send
    this.#retry = retry
  }

  /** The bytes of each path, in order; `batch` paths per request. */
  async *read(paths: Iterable<string>, batch: number): AsyncGenerator<{ path: string; data: Buffer }, void, void> {
    const iterator = paths[Symbol.iterator]()
    const queue: Slot[] = []
    let batches = 0
    /** Wakes the consumer when a batch has ended (its entries may all have been taken before). */
    let wake: (() => void) | null = null
    // Two batches at most on their way, and no new one while more than a batch of paths waits here.
    const refill = () => {
      while (batches < 2 && queue.length <= batch) {
        const slots: Slot[] = []
        let bytes = 0
        for (let r = iterator.next(); !r.done; r = iterator.next()) {
          slots.push(slot(r.value))
          bytes += Buffer.byteLength(JSON.stringify(r.value)) + 1
          if (slots.length === batch || bytes >= BATCH_BYTES) break
        }
        if (slots.length === 0) return
        queue.push(...slots)
        batches++
        void this.#run(slots).finally(() => {
          batches--
          refill()
          wake?.()
        })
      }
    }
    refill()
    try {
      for (;;) {
        if (queue.length === 0) {
          // Every entry taken: the list is done once no batch is on its way and refill finds no path.
          if (batches === 0) refill()
          else await new Promise<void>((resolve) => (wake = resolve))
          wake = null
          if (queue.length === 0 && batches === 0) break
          continue
        }
        const head = queue.shift()!
        const data = await head.done
        this.#taken(data.length)
        refill()
        yield { path: head.path, data }
      }
    } finally {
      // Done, or the consumer left early: the batches' requests are stopped, and a connection held
      // for entries nobody will take goes on for the client's other requests.
      this.#left = true
      for (const cancel of this.#running) cancel()
      const held = this.#held
      this.#held = null
      held?.()
    }
  }

  /** One batch, its rest asked for again while its connection dies under it. */
  async #run(slots: Slot[]): Promise<void> {
    let next = 0
    for (let attempt = 0; next < slots.length && !this.#left; ) {
      const from = next
      const { done, cancel } = this.#send(
        slots.slice(next).map((s) => s.path),
        (entry) => this.#entry(slots[next++], entry),
        () => this.#buffered > HIGH_WATER,
        (resume) => (this.#held = resume),
      )
      this.#running.add(cancel)
      try {
        await done
        if (next < slots.length) throw error('EPROTO', `readv: ${slots.length - from} paths asked for, ${next - from} entries received`)
      } catch (err) {
        if (next > from) attempt = 0
        const wait = this.#retry(err as Error, attempt++)
        if (wait === null) {
          for (const s of slots.slice(next)) s.settle.reject(err as Error)
          return
        }
        await new Promise((r) => setTimeout(r, wait))
      } finally {
        this.#running.delete(cancel)
      }
    }
  }

  #entry(s: Slot, { header, body }: Entry): void {
    if (header.kind === ENTRY_ERROR) return s.settle.reject(entryError(s.path, body))
    this.#buffered += body.length
    s.settle.resolve(body)
  }

  #taken(bytes: number): void {
    this.#buffered -= bytes
    if (this.#held && this.#buffered <= HIGH_WATER / 2) {
      const resume = this.#held
      this.#held = null
      resume()
    }
  }
}

function slot(path: string): Slot {
  let settle!: Slot['settle']
  const done = new Promise<Buffer>((resolve, reject) => (settle = { resolve, reject }))
  done.catch(() => {}) // surfaced when its turn comes
  return { path, done, settle }
}

function entryError(path: string, body: Buffer): CacheservError {
  try {
    const { code, message } = JSON.parse(body.toString('utf8')) as { code?: unknown; message?: unknown }
    return error(typeof code === 'string' && isErrorCode(code) ? code : 'EIO', typeof message === 'string' ? message : `${path}: read failed`)
  } catch {
    return error('EPROTO', `readv: the error entry of ${path} is not JSON`)
  }
}
