/**
 * The bytes of file data a server holds outside its cache: blocks being read
 * from disk, blocks on their way to a socket that the cache does not hold
 * (never admitted, or evicted since), and pages copied from two blocks.
 * Without a bound, clients that ask for big files and never read would pin a
 * block or more each, at any cache size.
 *
 * Two pools: blocks, up to the limit, and copies, up to a quarter of it.
 * Whoever waits for a block holds no block meanwhile. A page copied across
 * two blocks waits for room in the copy pool before its blocks are fetched;
 * a page a pager joins (after a page size change) is charged at once, as a
 * pager cannot wait. A block the cache lets go while leased is charged at
 * once too (it is already in memory), over the limit if need be; a disk
 * read is cached before its own room is freed, so a leased block it pushes
 * out takes that room rather than adding to it.
 *
 * Charges do not wait, so while blocks leased from the cache keep being
 * evicted, the pool may stay over its limit with memory coming and going. A
 * reading client's reservation then takes the place of bytes freed since it
 * began to wait, up to a quarter over the limit: the reader is not starved,
 * and the charges its reads cause by evicting leased blocks stay bounded.
 *
 * While any reservation waits, or more than the limit is held, the budget
 * asks its owner to relieve it (`relieve`: the server closes connections that
 * hold such bytes and have stopped reading). If nothing can be relieved for
 * OVERDRAFT_MS, the first waiter goes ahead anyway, so a wait is bounded
 * whatever the clients do.
 */
import createDebug from '../debug.js'

const debug = createDebug('cacheserv:memory')

/** How often waiting reservations ask for relief. */
const TICK_MS = 250
/** How long reservations wait with nothing relieved before the first goes ahead. */
export const OVERDRAFT_MS = 2000
/** How far over its limit a pool may go by reservations taking the place of freed bytes (see #grant). */
const CREDIT_CEILING = 1.25

export type Pool = 'block' | 'copy'

/** How a reservation waits (see reserve). */
export interface ReserveOptions {
  signal?: AbortSignal
  /** True while the reader's own client is not taking what it was sent: it goes after those that are. */
  later?: () => boolean
  /** Bytes its request has left to send: among readers whose clients read, the shortest goes first. */
  left?: () => number
  /** Default 'block'. */
  pool?: Pool
}

interface Waiter {
  bytes: number
  pool: Pool
  later?: () => boolean
  left?: () => number
  resolve: () => void
  reject: (err: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}

export class MemoryBudget {
  readonly limit: number
  #held: Record<Pool, number> = { block: 0, copy: 0 }
  #waiters: Waiter[] = []
  #relieve: () => number
  #timer: NodeJS.Timeout | null = null
  /** When a relief last freed something, or when the waiting began. */
  #lastRelief = 0
  #overdrafts = 0
  /** Bytes freed while reservations of the pool waited and not yet handed on (see #grant). */
  #credit: Record<Pool, number> = { block: 0, copy: 0 }

  /** `relieve` frees what it can (its holders then call `free`) and says how many holders it let go. */
  constructor(limit: number, relieve: () => number = () => 0) {
    this.limit = limit
    this.#relieve = relieve
  }

  /** All bytes held, in both pools. */
  get used(): number {
    return this.#held.block + this.#held.copy
  }

  /** Reservations waiting for room. */
  get waiting(): number {
    return this.#waiters.length
  }

  /** Times a waiter went ahead over the limit because nothing could be relieved. */
  get overdrafts(): number {
    return this.#overdrafts
  }

  /**
   * Take `bytes` from a pool once they fit, in turn; but a reader whose client
   * has stopped taking its output (`later`) lets the others go first and may
   * fill only three quarters of the pool, so clients that read are not held up
   * behind those that do not. A reservation larger than the whole pool goes
   * ahead when the pool is empty. Rejects with the signal's reason if it
   * aborts first.
   */
  reserve(bytes: number, { signal, later, left, pool = 'block' }: ReserveOptions = {}): Promise<void> {
    signal?.throwIfAborted()
    if (!this.#waiters.some((w) => w.pool === pool) && this.#fits(pool, bytes, later?.())) {
      this.#held[pool] += bytes
      return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, pool, later, left, resolve, reject, signal }
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
      // It may fit now where those before it do not (a reading client behind stalled ones).
      this.#grant()
      if (this.#waiters.includes(waiter)) this.#tick()
    })
  }

  /** Take `bytes` at once, over the limit if need be (memory that is already held: see above). */
  charge(bytes: number, pool: Pool = 'block'): void {
    this.#held[pool] += bytes
    if (this.used > this.limit) this.#tick()
  }

  free(bytes: number, pool: Pool = 'block'): void {
    if (this.#waiters.some((w) => w.pool === pool)) this.#credit[pool] += bytes
    this.#held[pool] -= bytes
    if (this.#held[pool] < 0) {
      debug('freed %d bytes more than held in %s', -this.#held[pool], pool)
      this.#held[pool] = 0
    }
    this.#grant()
  }

  #capacity(pool: Pool): number {
    return pool === 'block' ? this.limit : this.limit / 4
  }

  #fits(pool: Pool, bytes: number, later = false): boolean {
    const held = this.#held[pool]
    return held + bytes <= this.#capacity(pool) * (later ? 3 / 4 : 1) || held === 0
  }

  #grant(): void {
    for (const pool of ['block', 'copy'] as const) {
      for (;;) {
        const i = this.#next(pool)
        if (i === -1) {
          this.#credit[pool] = 0
          break
        }
        const w = this.#waiters[i]
        const later = w.later?.() ?? false
        if (this.#fits(pool, w.bytes, later)) this.#admit(this.#waiters.splice(i, 1)[0])
        else if (!later && this.#credit[pool] >= w.bytes && this.#held[pool] + w.bytes <= CREDIT_CEILING * this.#capacity(pool)) {
          // Charges keep the pool over its limit, but bytes are flowing: take the place of those freed
          // (only a little over the limit: each read may push a leased block out of the cache, a new charge).
          this.#credit[pool] -= w.bytes
          this.#admit(this.#waiters.splice(i, 1)[0])
        } else break
      }
    }
    if (this.#waiters.length === 0 && this.used <= this.limit) this.#stop()
  }

  /**
   * In `pool` (any, without one): of the waiters whose clients read, the one
   * with the fewest bytes left to send (the earliest of equals), else the first.
   * A short request (a probe, one small file) is not queued behind big reads
   * of clients that have not yet shown whether they read.
   */
  #next(pool?: Pool): number {
    let first = -1
    let best = -1
    let bestLeft = Infinity
    for (let i = 0; i < this.#waiters.length; i++) {
      const w = this.#waiters[i]
      if (pool && w.pool !== pool) continue
      if (w.later?.()) {
        if (first === -1) first = i
        continue
      }
      const left = w.left?.() ?? Infinity
      if (best === -1 || left < bestLeft) {
        best = i
        bestLeft = left
      }
    }
    return best !== -1 ? best : first
  }

  #admit(w: Waiter): void {
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort)
    this.#held[w.pool] += w.bytes
    w.resolve()
  }

  /** Ask for relief now, and every TICK_MS while reservations wait or more than the limit is held. */
  #tick(): void {
    if (this.#timer) return
    const run = () => {
      const now = Date.now()
      if (this.#relieve() > 0) this.#lastRelief = now
      else if (this.#waiters.length > 0 && now - this.#lastRelief >= OVERDRAFT_MS) {
        const [w] = this.#waiters.splice(this.#next(), 1)
        debug('nothing to relieve for %d ms: overdraft of %d bytes (%s)', now - this.#lastRelief, w.bytes, w.pool)
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
