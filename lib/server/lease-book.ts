/**
 * The block leases one connection holds, and when each may go: a lease is
 * held from the moment its part leaves a job, marked with the output byte
 * that ends its last frame, and released once the socket has written that
 * far. Whatever is left when the connection ends is released then, wherever
 * in the pipeline it was dropped.
 */
import type { BlockLease } from '../cache/block-lease.js'
import type { Releasable } from '../cache/block-lease.js'

export class LeaseBook {
  #held = new Set<BlockLease>()
  /** Leases in output order, each with the output byte its frame ends at. */
  #marks: ({ end: number; lease: Releasable } | undefined)[] = []
  #head = 0
  #written = 0

  hold(lease: Releasable): void {
    if (!isBlockLease(lease) || lease.released) return
    this.#held.add(lease)
    lease.onRelease = () => this.#held.delete(lease)
  }

  /** `lease` may go once the output has been written up to byte `end`. */
  mark(end: number, lease: Releasable): void {
    if (end <= this.#written) return lease.release()
    this.#marks.push({ end, lease })
  }

  /** The socket has written the output up to byte `pos`. */
  written(pos: number): void {
    if (pos > this.#written) this.#written = pos
    while (this.#head < this.#marks.length && this.#marks[this.#head]!.end <= this.#written) {
      const { lease } = this.#marks[this.#head]!
      this.#marks[this.#head++] = undefined
      lease.release()
    }
    if (this.#head === this.#marks.length) {
      this.#marks = []
      this.#head = 0
    } else if (this.#head > 64 && this.#head * 2 > this.#marks.length) {
      this.#marks = this.#marks.slice(this.#head)
      this.#head = 0
    }
  }

  /** Some lease held here is on a block the cache no longer holds: this connection holds memory. */
  get charged(): boolean {
    for (const lease of this.#held) if (lease.charged) return true
    return false
  }

  get size(): number {
    return this.#held.size
  }

  releaseAll(): void {
    for (const lease of [...this.#held]) lease.release()
    for (let i = this.#head; i < this.#marks.length; i++) this.#marks[i]?.lease.release()
    this.#marks = []
    this.#head = 0
  }
}

function isBlockLease(x: Releasable): x is BlockLease {
  return 'charged' in x && 'onRelease' in x
}
