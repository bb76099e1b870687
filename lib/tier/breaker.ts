/**
 * A circuit breaker: after `failures` errors in a row the shared tier is left
 * alone (every lookup goes to disk at once) and `probe` is tried every
 * `retryMs` in the background until it succeeds. Redis being down then costs
 * one failed probe a period, not a timeout per block.
 */
export interface BreakerOptions {
  failures: number
  retryMs: number
  /** Resolves when the tier answers again; rejects (or resolves false) when it does not. */
  probe: () => Promise<boolean>
  onChange?: (open: boolean) => void
}

export class Breaker {
  #failures = 0
  #open: boolean
  #timer: NodeJS.Timeout | null = null
  #closed = false
  readonly #opts: BreakerOptions

  /** `open`: start with the tier left alone (not known to be up yet). */
  constructor(opts: BreakerOptions, open = false) {
    this.#opts = opts
    this.#open = false
    if (open) this.#trip()
  }

  /** May the tier be asked now? */
  get allows(): boolean {
    return !this.#open
  }

  succeeded(): void {
    this.#failures = 0
  }

  failed(): void {
    if (this.#open || ++this.#failures < this.#opts.failures) return
    this.#trip()
  }

  #trip(): void {
    if (this.#closed) return
    this.#open = true
    this.#opts.onChange?.(true)
    this.#schedule()
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#opts.probe().then(
        (ok) => (ok ? this.reset() : this.#again()),
        () => this.#again(),
      )
    }, this.#opts.retryMs)
    this.#timer.unref()
  }

  #again(): void {
    if (!this.#closed) this.#schedule()
  }

  /** The tier answers: ask it again. */
  reset(): void {
    if (this.#closed || !this.#open) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#failures = 0
    this.#open = false
    this.#opts.onChange?.(false)
  }

  /** No more probes. */
  stop(): void {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
  }
}
