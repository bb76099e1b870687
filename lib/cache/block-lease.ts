/**
 * A claim on a block's memory while bytes of it are on their way to a
 * socket. A block the cache holds costs nothing more; one it does not (never
 * admitted, or evicted while leased) is charged to the server's MemoryBudget
 * until its last lease is released. Whoever drops the bytes releases the
 * lease: the connection once they are written, or whatever discards them.
 */
export interface Releasable {
  release(): void
}

export class BlockLease implements Releasable {
  // Both closures hold the block: dropped on release, so a released lease pins nothing.
  #release: (() => void) | null
  #charged: (() => boolean) | null
  /** Told once, on release (the connection's book forgets the lease). */
  onRelease: (() => void) | null = null

  constructor(release: () => void, charged: () => boolean) {
    this.#release = release
    this.#charged = charged
  }

  /** The block is outside the cache: holding this lease holds memory. */
  get charged(): boolean {
    return this.#charged !== null && this.#charged()
  }

  get released(): boolean {
    return this.#release === null
  }

  /** Idempotent. */
  release(): void {
    const release = this.#release
    if (!release) return
    this.#release = null
    this.#charged = null
    release()
    this.onRelease?.()
    this.onRelease = null
  }
}

/** Release the lease a part or frame may carry. */
export function releaseHeld(x: { lease?: Releasable }): void {
  x.lease?.release()
}
