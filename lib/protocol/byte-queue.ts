const EMPTY = Buffer.alloc(0)

/**
 * Received bytes not yet parsed, as a queue of chunks. Taking n bytes is
 * zero-copy when one chunk holds them. The queue keeps a head index rather
 * than shifting its array, so a peer that trickles a frame one byte per
 * packet costs linear time, not quadratic.
 */
export class ByteQueue {
  #chunks: Buffer[] = []
  #head = 0
  #length = 0

  /** Chunks held: a line trickled in byte by byte is as many chunks as bytes. */
  get chunks(): number {
    return this.#chunks.length - this.#head
  }

  get length(): number {
    return this.#length
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#length += chunk.length
  }

  clear(): void {
    this.#chunks = []
    this.#head = 0
    this.#length = 0
  }

  /** The first byte (the queue must not be empty). */
  first(): number {
    return this.#chunks[this.#head][0]
  }

  /** Index of the first `byte` at or after `from`, counting from the front; -1 if absent. */
  indexOf(byte: number, from = 0): number {
    let base = 0
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i]
      if (base + chunk.length > from) {
        const at = chunk.indexOf(byte, Math.max(0, from - base))
        if (at !== -1) return base + at
      }
      base += chunk.length
    }
    return -1
  }

  /** Everything as one Buffer, which becomes the queue's only chunk. */
  flatten(): Buffer {
    const live = this.#chunks.slice(this.#head)
    const all = live.length === 1 ? live[0] : Buffer.concat(live, this.#length)
    this.#chunks = all.length > 0 ? [all] : []
    this.#head = 0
    return all
  }

  /** The first n bytes, without consuming them. */
  peek(n: number): Buffer {
    const first = this.#chunks[this.#head]
    if (first.length >= n) return first.subarray(0, n)
    return this.#copy(n, false)
  }

  /** Remove and return exactly n bytes. */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0)
    const first = this.#chunks[this.#head]
    if (first.length >= n) {
      this.#consume(n)
      return first.subarray(0, n)
    }
    return this.#copy(n, true)
  }

  /** Remove n bytes and return them as views of the chunks that hold them (no copy). */
  takeViews(n: number): Buffer[] {
    const views: Buffer[] = []
    let left = n
    for (let i = this.#head; left > 0; i++) {
      const c = this.#chunks[i]
      const v = c.length <= left ? c : c.subarray(0, left)
      views.push(v)
      left -= v.length
    }
    this.#consume(n)
    return views
  }

  /** Copy everything into `into` (at least `length` bytes), which then holds the queue's only chunk. */
  moveInto(into: Buffer): void {
    let at = 0
    for (let i = this.#head; i < this.#chunks.length; i++) at += this.#chunks[i].copy(into, at)
    this.#chunks = at > 0 ? [into.subarray(0, at)] : []
    this.#head = 0
  }

  /**
   * Like moveInto, when the first chunk already begins `into` (moved there
   * before) and everything fits: copies only the chunks after it. False, and
   * nothing done, otherwise.
   */
  extendInto(into: Buffer): boolean {
    const first = this.#chunks[this.#head]
    if (!first || first.buffer !== into.buffer || first.byteOffset !== into.byteOffset || this.#length > into.length) return false
    let at = first.length
    for (let i = this.#head + 1; i < this.#chunks.length; i++) at += this.#chunks[i].copy(into, at)
    this.#chunks = [into.subarray(0, at)]
    this.#head = 0
    return true
  }

  /** Remove n bytes. */
  drop(n: number): void {
    this.#consume(n)
  }

  #copy(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    for (let i = this.#head; filled < n; i++) {
      const c = this.#chunks[i]
      const want = Math.min(n - filled, c.length)
      c.copy(out, filled, 0, want)
      filled += want
    }
    if (consume) this.#consume(n)
    return out
  }

  #consume(n: number): void {
    this.#length -= n
    while (n > 0) {
      const c = this.#chunks[this.#head]
      if (c.length <= n) {
        n -= c.length
        // Let go of the chunk at once: it may be a whole read buffer of its own.
        this.#chunks[this.#head++] = EMPTY
      } else {
        this.#chunks[this.#head] = c.subarray(n)
        n = 0
      }
    }
    // Let go of consumed chunks now and then, not on every byte.
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head)
      this.#head = 0
    }
  }
}
