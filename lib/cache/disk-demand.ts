/**
 * Disk reads that requests are waiting on, so that a prefetch can keep out
 * of their way: a read marked idle (an epoch's read-ahead) starts only once
 * none has been under way for a moment. The moment (IDLE_AFTER_MS) bridges
 * the gap between one batch's reads and the next request's, which would
 * otherwise let a prefetch in at every batch and take the disk from the
 * reads it was meant to get ahead of.
 */

/** Quiet, after the last read a request waited on, before prefetches go. */
const IDLE_AFTER_MS = 10

export class DiskDemand {
  #running = 0
  #lastEnd = -Infinity
  #waiters: (() => void)[] = []
  #timer: NodeJS.Timeout | null = null
  readonly #quietMs: number

  constructor(quietMs = IDLE_AFTER_MS) {
    this.#quietMs = quietMs
  }

  /** Reads requests are waiting on now. */
  get running(): number {
    return this.#running
  }

  /** A read a request waits on has started; call the function given back once it is over (more calls do nothing). */
  begin(): () => void {
    this.#running++
    let over = false
    return () => {
      if (over) return
      over = true
      this.#lastEnd = performance.now()
      if (--this.#running === 0 && this.#waiters.length > 0) this.#arm()
    }
  }

  /** No read a request waits on has run for the quiet time. */
  get quiet(): boolean {
    return this.#running === 0 && this.#quietFor() <= 0
  }

  /** Settles once quiet (at once if it is), or once `signal` aborts: a read that never ends must not hold a cancelled prefetch. */
  idle(signal?: AbortSignal): Promise<void> {
    if (this.quiet || signal?.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const go = () => {
        signal?.removeEventListener('abort', go)
        const i = this.#waiters.indexOf(go)
        if (i >= 0) this.#waiters.splice(i, 1)
        resolve()
      }
      signal?.addEventListener('abort', go, { once: true })
      this.#waiters.push(go)
      if (this.#running === 0) this.#arm()
    })
  }

  /** Ms of quiet still needed. */
  #quietFor(): number {
    return this.#quietMs - (performance.now() - this.#lastEnd)
  }

  #arm(): void {
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      // Busy again: the read that ends last arms it anew.
      if (this.#running > 0) return
      if (this.#quietFor() > 0) return this.#arm()
      const go = this.#waiters
      this.#waiters = []
      for (const resolve of go) resolve()
    }, Math.max(1, this.#quietFor()))
  }
}
