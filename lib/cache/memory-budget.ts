/**
 * The bytes of file data a server holds outside its cache: blocks being read
 * from disk, and blocks on their way to a socket that the cache does not hold
 * (never admitted, or evicted since). Without a bound, clients that ask for
 * big files and never read would pin a block or more each, at any cache size.
 *
 * Copies of file data (a page assembled across two blocks) are counted too,
 * but never make a read wait: whoever holds one may itself be waiting for a
 * disk read, and the two waits would deadlock.
 *
 * A new disk read waits for room (`reserve`). While any read waits, or more
 * than the limit is held, the budget asks its owner to relieve it (`relieve`: the server closes
 * connections that hold such bytes and have stopped reading). If nothing can
 * be relieved for OVERDRAFT_MS, the oldest waiter goes ahead anyway: the
 * holders are then themselves waiting for the disk, and waiting longer could
 * only deadlock them.
 */
import createDebug from '../debug.js'

const debug = createDebug('cacheserv:memory')

/** How often waiting reads ask for relief. */
const TICK_MS = 250
/** How long reads wait with nothing relieved before the oldest goes ahead. */
export const OVERDRAFT_MS = 2000

/** How a read waits (see reserve). */
export interface ReserveOptions {
  signal?: AbortSignal
  /** True while the read's own client is not taking what it was sent: it goes after those that are. */
  later?: () => boolean
}

interface Waiter {
  bytes: number
  later?: () => boolean
  resolve: () => void
  reject: (err: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}

export class MemoryBudget {
  readonly limit: number
  /** Disk reads in progress and blocks held outside the cache: what reads wait on. */
  #used = 0
  /** Copies: counted, never waited on. */
  #copies = 0
  #waiters: Waiter[] = []
  #relieve: () => number
  #timer: NodeJS.Timeout | null = null
  /** When a relief last freed something, or when the waiting began. */
  #lastRelief = 0
  #overdrafts = 0

  /** `relieve` frees what it can (eventually calling `free`) and says how many holders it let go. */
  constructor(limit: number, relieve: () => number = () => 0) {
    this.limit = limit
    this.#relieve = relieve
  }

  /** All bytes held: blocks, reads in progress and copies. */
  get used(): number {
    return this.#used + this.#copies
  }

  /** Reads waiting for room. */
  get waiting(): number {
    return this.#waiters.length
  }

  /** Times a waiter went ahead over the limit because nothing could be relieved. */
  get overdrafts(): number {
    return this.#overdrafts
  }

  /**
   * Take `bytes` once they fit, in turn; but a read whose client has stopped
   * taking its output (`later`) lets the others go first and may fill only
   * three quarters of the limit, so clients that read are not held up behind
   * those that do not. A request larger than the
   * whole limit runs when nothing else is held. Rejects with the signal's
   * reason if it aborts first.
   */
  reserve(bytes: number, { signal, later }: ReserveOptions = {}): Promise<void> {
    signal?.throwIfAborted()
    if (this.#waiters.length === 0 && this.#fits(bytes, later?.())) {
      this.#used += bytes
      return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, later, resolve, reject, signal }
      if (signal) {
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter)
          if (i !== -1) this.#waiters.splice(i, 1)
          reject(signal.reason)
          this.#grant()
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      if (this.#waiters.length === 0) this.#lastRelief = Date.now()
      this.#waiters.push(waiter)
      this.#tick()
    })
  }

  /** Take `bytes` at once, over the limit if need be (a block the cache just let go while it is being sent). */
  charge(bytes: number): void {
    this.#used += bytes
    if (this.used > this.limit) this.#tick()
  }

  free(bytes: number): void {
    this.#used -= bytes
    if (this.#used < 0) {
      debug('freed %d bytes more than held', -this.#used)
      this.#used = 0
    }
    this.#grant()
  }

  /** Count a copy of `bytes` (never waits; see above). */
  chargeCopy(bytes: number): void {
    this.#copies += bytes
    if (this.used > this.limit) this.#tick()
  }

  freeCopy(bytes: number): void {
    this.#copies = Math.max(0, this.#copies - bytes)
    if (this.#waiters.length === 0 && this.used <= this.limit) this.#stop()
  }

  /** A read whose client is not reading may use three quarters of the limit: the rest is kept for those that are. */
  #fits(bytes: number, later = false): boolean {
    return this.#used + bytes <= (later ? (this.limit * 3) / 4 : this.limit) || this.#used === 0
  }

  #grant(): void {
    for (;;) {
      const i = this.#next()
      if (i === -1 || !this.#fits(this.#waiters[i].bytes, this.#waiters[i].later?.())) break
      this.#admit(this.#waiters.splice(i, 1)[0])
    }
    if (this.#waiters.length === 0 && this.used <= this.limit) this.#stop()
  }

  /** The first waiter whose client reads, else the first. */
  #next(): number {
    if (this.#waiters.length === 0) return -1
    const i = this.#waiters.findIndex((w) => !w.later?.())
    return i === -1 ? 0 : i
  }

  #admit(w: Waiter): void {
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort)
    this.#used += w.bytes
    w.resolve()
  }

  /** Ask for relief now, and every TICK_MS while reads wait or more than the limit is held. */
  #tick(): void {
    if (this.#timer) return
    const run = () => {
      const now = Date.now()
      if (this.#relieve() > 0) this.#lastRelief = now
      else if (this.#waiters.length > 0 && now - this.#lastRelief >= OVERDRAFT_MS) {
        const [w] = this.#waiters.splice(this.#next(), 1)
        debug('nothing to relieve for %d ms: overdraft of %d bytes', now - this.#lastRelief, w.bytes)
        this.#overdrafts++
        this.#lastRelief = now
        this.#admit(w)
      }
      this.#grant()
    }
    this.#timer = setInterval(run, TICK_MS)
    this.#timer.unref()
    queueMicrotask(run)
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }
}
