/**
 * The page size of one request on the sending side, steered by NACKs:
 * halve on every NACK (down to a floor), grow back by a fixed step after a
 * run of clean pages (additive increase), and give up after too many NACKs
 * in a row at the floor that brought no progress.
 *
 * There are no ACKs, so "clean" is inferred from silence: a NACK for a page
 * arrives only after about a window's worth of later bytes has been sent
 * (the bytes in flight when the last NACK came in). Pages count as clean once
 * that much more has gone out without a NACK. Without this, the page would
 * grow back during the very window in which its NACKs are still on the way.
 */
import createDebug from '../debug.js'
import { MIN_PAGE_SIZE } from '../protocol/constants.js'

const debug = createDebug('cacheserv:nack')

export interface PageSizeOptions {
  /** The configured (largest) page size. */
  max: number
  /** The smallest page size NACKs shrink to. Default 1 KiB. */
  floor?: number
  /** NACKs in a row at the floor without progress before giving up. Default 8. */
  retries?: number
  /** Clean pages at one size before growing by one step. Default 8. */
  growAfter?: number
}

export const DEFAULT_RETRIES = 8
export const DEFAULT_GROW_AFTER = 8

export class PageSize {
  readonly max: number
  readonly floor: number
  readonly retries: number
  readonly growAfter: number
  #size: number
  #step: number
  #cleanBytes = 0
  /** Bytes in flight (sent, not yet verified by the receiver) when the last NACK arrived. */
  #window = 0
  #lastOffset = -1
  #failuresAtFloor = 0

  constructor({ max, floor = MIN_PAGE_SIZE, retries = DEFAULT_RETRIES, growAfter = DEFAULT_GROW_AFTER }: PageSizeOptions) {
    this.max = max
    this.floor = Math.min(floor, max)
    this.retries = retries
    this.growAfter = growAfter
    this.#size = max
    // Sixteen steps from the floor back to the maximum.
    this.#step = Math.max(this.floor, Math.floor(max / 16))
  }

  get size(): number {
    return this.#size
  }

  /**
   * A NACK arrived: the receiver has verified `offset` bytes, while `inFlight`
   * more had been sent. Returns false when the request should give up
   * instead of resending.
   */
  nack(offset: number, inFlight = 0): boolean {
    this.#window = inFlight
    const progressed = offset > this.#lastOffset
    this.#lastOffset = Math.max(offset, this.#lastOffset)
    if (this.#size === this.floor && !progressed) this.#failuresAtFloor++
    else if (progressed) this.#failuresAtFloor = 0
    const before = this.#size
    this.#size = Math.max(this.floor, Math.floor(this.#size / 2))
    this.#cleanBytes = 0
    debug('nack at offset %d: page %d → %d, %d failures at the floor', offset, before, this.#size, this.#failuresAtFloor)
    return this.#failuresAtFloor < this.retries
  }

  /** Bytes sent since the last change; grows the page after `growAfter` pages known clean. */
  sent(bytes: number): void {
    if (this.#size >= this.max) return
    this.#cleanBytes += bytes
    if (this.#cleanBytes >= this.#window + this.growAfter * this.#size) {
      this.#cleanBytes = 0
      this.#size = Math.min(this.max, this.#size + this.#step)
      debug('clean run: page grows to %d', this.#size)
    }
  }
}
