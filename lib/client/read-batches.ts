/**
 * Many files (or ranges) over the socket: the items go out in batches, one
 * `readv` request each (PROTOCOL.md, "readv"), and come back as one stream of
 * entries per batch: a list of 10,000 small files costs a few request lines,
 * not 10,000. Two batches are on their way at once, so the server has the
 * next one while the client takes the last entries of the one before.
 *
 * The items may come from an async source (a list read from a pipe): a batch
 * goes out with the items at hand as soon as the source makes the next one
 * wait, so the first entries do not wait for a full batch.
 *
 * The entries wait here, in order, until the consumer takes them; past
 * `highWater` bytes of them, the connection is held (the server stops
 * sending). A batch whose connection died is asked for again from its first
 * entry not received whole, after the client's retry delay.
 */
import { type CacheservError, error, isErrorCode } from '../errors.js'
import { type Entry, ENTRY_ERROR } from '../protocol/readv-entry.js'

/** Bytes of entries received and not yet taken before the connection is held, by default. */
const HIGH_WATER = 32 * 1024 * 1024
/** Bytes of items one batch carries at most, when the server takes request lines of 64 KiB or more (its default). */
const BATCH_BYTES = 32 * 1024

/** Bytes of items a batch may carry to a server whose request lines take `maxRequest` bytes (HELLO; absent: the default). */
export function batchBytes(maxRequest: number | undefined): number {
  return Math.min(BATCH_BYTES, Math.floor((maxRequest ?? 2 * BATCH_BYTES) / 2))
}

/** A file, or a range of it (clipped to the file's end, as a read's). */
export interface BatchItem {
  path: string
  offset?: number
  length?: number
}

/** One item's answer: its bytes, and the file they are of. */
export interface BatchEntry {
  path: string
  data: Buffer
  /** Of the whole file. */
  size: number
  mtimeMs: number
}

/**
 * How a batch is sent: `onEntry` gets each entry, in order; after each
 * piece, `hold()` says whether to hold the connection, and `onHeld` gets the
 * function that resumes it. `done` settles when the request ends; `cancel`
 * stops it.
 */
export type SendBatch = (
  items: (string | BatchItem)[],
  onEntry: (entry: Entry) => void,
  hold: () => boolean,
  onHeld: (resume: () => void) => void,
) => { done: Promise<void>; cancel(): void }

export interface BatchOptions {
  /** Items per request, at most. */
  batch: number
  /** The longest request line the server takes (HELLO maxRequest), asked for each batch: its items take half of it at most. */
  maxRequest?: () => number | undefined
  /** Bytes of entries held here before the connection is held; Infinity for a consumer that bounds them itself. */
  highWater?: number
}

interface Slot {
  item: string | BatchItem
  path: string
  done: Promise<BatchEntry>
  settle: { resolve(entry: BatchEntry): void; reject(err: Error): void }
  /** Its entry (or error) has arrived. */
  settled: boolean
}

export class BatchReads {
  #send: SendBatch
  #retry: (err: Error, attempt: number) => number | null
  #buffered = 0
  #held: (() => void) | null = null
  #running = new Set<() => void>()
  #left = false
  /** The slot the consumer waits for: while its entry is incomplete, the connection is not held (it may be behind the hold). */
  #awaited: Slot | null = null

  /** `retry`: ms to wait before asking for a batch's rest again after `err`, or null to fail. */
  constructor(send: SendBatch, retry: (err: Error, attempt: number) => number | null) {
    this.#send = send
    this.#retry = retry
  }

  /** Each item's entry, in order. */
  async *read(items: Iterable<string | BatchItem> | AsyncIterable<string | BatchItem>, { batch, highWater = HIGH_WATER, maxRequest }: BatchOptions): AsyncGenerator<BatchEntry, void, void> {
    const source = new ItemSource(items)
    const queue: Slot[] = []
    let batches = 0
    let filling = false
    let failure = null as { err: unknown } | null
    /** Wakes the consumer when a batch went out or ended, or the source failed. */
    let wake: (() => void) | null = null
    const notify = () => {
      const w = wake
      wake = null
      w?.()
    }
    /** An item pulled from the source that did not fit the batch being filled: it opens the next. */
    let carried: { value: string | BatchItem } | null = null
    const exhausted = () => source.ended && carried === null
    // Two batches at most on their way, and no new one while more than a batch of items waits here.
    const refill = async () => {
      if (filling || exhausted() || failure) return
      filling = true
      try {
        while (!this.#left && !failure && batches < 2 && queue.length <= batch) {
          const slots: Slot[] = []
          let bytes = 0
          const limit = batchBytes(maxRequest?.())
          for (;;) {
            let value: string | BatchItem
            if (carried) {
              value = carried.value
              carried = null
            } else {
              // The first item is waited for; after it, only items the source has at hand.
              let r: IteratorResult<string | BatchItem> | null
              try {
                // A sync source answers at once: no await (a turn of the microtask queue) per item.
                const got = source.take(slots.length === 0)
                r = got instanceof Promise ? await got : got
              } catch (err) {
                // The items before it go out; the consumer meets the error after them.
                failure = { err }
                break
              }
              if (r === null || r.done) break
              value = r.value
            }
            const size = Buffer.byteLength(JSON.stringify(value)) + 1
            if (slots.length > 0 && bytes + size > limit) {
              carried = { value }
              break
            }
            if (size > limit) {
              // No request line holds it: refused here, at its place, and the others go on.
              queue.push(refusedSlot(value, size, limit))
              notify()
              continue
            }
            slots.push(slot(value))
            bytes += size
            if (slots.length === batch) break
          }
          if (slots.length === 0 || this.#left) return
          queue.push(...slots)
          batches++
          void this.#run(slots, highWater).finally(() => {
            batches--
            void refill()
            notify()
          })
          notify()
        }
      } finally {
        filling = false
        // The source may have ended, or failed, with nothing more sent: the consumer looks again.
        notify()
      }
    }
    void refill()
    try {
      for (;;) {
        if (queue.length === 0) {
          if (failure && batches === 0 && !filling) throw failure.err
          // Every entry taken: the list is done once the source is and no batch is on its way.
          if (exhausted() && batches === 0 && !filling) break
          await new Promise<void>((resolve) => (wake = resolve))
          void refill()
          continue
        }
        const head = queue.shift()!
        this.#awaited = head
        // Its rest may be behind a hold (two batches' frames interleave): let it come.
        if (!head.settled) this.#resumeHeld()
        const entry = await head.done
        this.#awaited = null
        this.#taken(entry.data.length, highWater)
        void refill()
        yield entry
      }
    } finally {
      // Done, or the consumer left early: the batches' requests are stopped, and a connection held
      // for entries nobody will take goes on for the client's other requests.
      this.#left = true
      for (const cancel of this.#running) cancel()
      this.#resumeHeld()
      source.close()
    }
  }

  /** One batch, its rest asked for again while its connection dies under it. */
  async #run(slots: Slot[], highWater: number): Promise<void> {
    let next = 0
    for (let attempt = 0; next < slots.length && !this.#left; ) {
      const from = next
      const { done, cancel } = this.#send(
        slots.slice(next).map((s) => s.item),
        (entry) => this.#entry(slots[next++], entry),
        () => this.#buffered > highWater && !(this.#awaited && !this.#awaited.settled),
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
          for (const s of slots.slice(next)) fail(s, err as Error)
          return
        }
        await new Promise((r) => setTimeout(r, wait))
      } finally {
        this.#running.delete(cancel)
      }
    }
    // Left early: what was not received is never taken.
    for (const s of slots.slice(next)) fail(s, error('ECANCELED', 'readMany was left'))
  }

  #entry(s: Slot, { header, body }: Entry): void {
    s.settled = true
    if (header.kind === ENTRY_ERROR) return fail(s, entryError(s.path, body))
    this.#buffered += body.length
    s.settle.resolve({ path: s.path, data: body, size: header.size, mtimeMs: header.mtimeMs })
  }

  #taken(bytes: number, highWater: number): void {
    this.#buffered -= bytes
    if (this.#buffered <= highWater / 2) this.#resumeHeld()
  }

  #resumeHeld(): void {
    const resume = this.#held
    this.#held = null
    resume?.()
  }
}

/**
 * The items, from a sync or an async source. Without waiting, an async
 * source's next item is taken only if the source has it at hand, else null:
 * the item it was waiting for is kept for the next call.
 */
class ItemSource {
  ended = false
  #sync: Iterator<string | BatchItem> | null = null
  #async: AsyncIterator<string | BatchItem> | null = null
  /** An async next() still under way, and what it gave once it did. */
  #pending: Promise<IteratorResult<string | BatchItem>> | null = null
  #settled: IteratorResult<string | BatchItem> | null = null

  constructor(items: Iterable<string | BatchItem> | AsyncIterable<string | BatchItem>) {
    if (Symbol.asyncIterator in items) this.#async = items[Symbol.asyncIterator]()
    else this.#sync = items[Symbol.iterator]()
  }

  /**
   * The next item: a sync source's at once; an async source's waited for
   * when `wait`, else only if it has it at hand (see above).
   */
  take(wait: boolean): IteratorResult<string | BatchItem> | Promise<IteratorResult<string | BatchItem> | null> {
    if (this.#sync) return this.#result(this.#sync.next())
    return wait ? this.#next() : this.#ready()
  }

  async #next(): Promise<IteratorResult<string | BatchItem>> {
    if (this.ended) return { done: true, value: undefined }
    this.#start()
    return this.#take(await this.#pending!)
  }

  /** Waits no longer than the current turn of the event loop (its microtasks): a source that needs I/O for the next item makes it null. */
  async #ready(): Promise<IteratorResult<string | BatchItem> | null> {
    if (this.ended) return null
    this.#start()
    if (!this.#settled) await Promise.race([this.#pending, new Promise((resolve) => setImmediate(resolve))]).catch(() => {})
    return this.#settled ? this.#take(this.#settled) : null
  }

  close(): void {
    if (!this.ended) void Promise.resolve(this.#async?.return?.()).catch(() => {})
    this.ended = true
  }

  #start(): void {
    if (this.#pending || this.ended) return
    const p = this.#async!.next()
    this.#pending = p
    void p.then(
      (r) => {
        if (this.#pending === p) this.#settled = r
      },
      () => {},
    )
  }

  #take(r: IteratorResult<string | BatchItem>): IteratorResult<string | BatchItem> {
    this.#pending = null
    this.#settled = null
    return this.#result(r)
  }

  #result(r: IteratorResult<string | BatchItem>): IteratorResult<string | BatchItem> {
    if (r.done) this.ended = true
    return r
  }
}

function slot(item: string | BatchItem): Slot {
  let settle!: Slot['settle']
  const done = new Promise<BatchEntry>((resolve, reject) => (settle = { resolve, reject }))
  done.catch(() => {}) // surfaced when its turn comes
  return { item, path: typeof item === 'string' ? item : item.path, done, settle, settled: false }
}

function fail(s: Slot, err: Error): void {
  s.settled = true
  s.settle.reject(err)
}

/** An item too long for any request line, failed in its place. */
function refusedSlot(item: string | BatchItem, size: number, limit: number): Slot {
  const s = slot(item)
  fail(s, error('ETOOBIG', `${s.path.slice(0, 64)}…: ${size} bytes as JSON, more than a readv request line takes (${limit})`))
  return s
}

function entryError(path: string, body: Buffer): CacheservError {
  try {
    const { code, message } = JSON.parse(body.toString('utf8')) as { code?: unknown; message?: unknown }
    return error(typeof code === 'string' && isErrorCode(code) ? code : 'EIO', typeof message === 'string' ? message : `${path}: read failed`)
  } catch {
    return error('EPROTO', `readv: the error entry of ${path} is not JSON`)
  }
}
