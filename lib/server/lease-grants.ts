/**
 * Blocks handed to a same-host client to read from the shared-memory store
 * itself (`locate`): each grant holds its blocks' leases, so no slot of them
 * is reused, until the client releases it, its connection ends, or its time
 * is up. One connection's grants hold a bounded number of bytes. A grant that
 * ends without its release tells the cache: the client may have left
 * references to the blocks' pages behind (a pipe it spliced them into).
 */
import type { Releasable } from '../cache/block-lease.js'

/** How long a grant holds its blocks unless released: a client reads a batch in milliseconds. */
export const GRANT_TTL_MS = 30_000

interface Grant {
  leases: Releasable[]
  bytes: number
  timer: NodeJS.Timeout
  lapsed?: () => void
}

export class LeaseGrants {
  readonly limit: number
  readonly ttl: number
  #grants = new Map<number, Grant>()
  #next = 1
  #bytes = 0

  constructor(limit: number, ttl = GRANT_TTL_MS) {
    this.limit = limit
    this.ttl = ttl
  }

  /** Bytes the connection's grants hold. */
  get bytes(): number {
    return this.#bytes
  }

  /** Bytes a new grant may still hold. */
  get room(): number {
    return Math.max(0, this.limit - this.#bytes)
  }

  /**
   * Hold `leases` (of `bytes` of blocks) until release(id), close(), or the
   * ttl; returns the grant's id. `lapsed` is called when it ends other than
   * by release(id), just before its leases go.
   */
  grant(leases: Releasable[], bytes: number, lapsed?: () => void): number {
    const id = this.#next++
    const timer = setTimeout(() => this.release(id, true), this.ttl)
    timer.unref()
    this.#grants.set(id, { leases, bytes, timer, lapsed })
    this.#bytes += bytes
    return id
  }

  /** Let grant `id` go (`lapsed`: the client did not release it); false if there is none (released, expired, or never made). */
  release(id: number, lapsed = false): boolean {
    const g = this.#grants.get(id)
    if (!g) return false
    this.#grants.delete(id)
    clearTimeout(g.timer)
    this.#bytes -= g.bytes
    if (lapsed) g.lapsed?.()
    for (const lease of g.leases) lease.release()
    return true
  }

  /** The connection ended: every grant goes. */
  close(): void {
    for (const id of [...this.#grants.keys()]) this.release(id, true)
  }
}
