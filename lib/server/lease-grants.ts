/**
 * Blocks handed to a same-host client to read from the shared-memory store
 * itself (`locate`): each grant holds its blocks' leases, so no slot of them
 * is reused, until the client releases it, its connection ends, or its time
 * is up. One connection's grants hold a bounded number of bytes.
 */
import type { Releasable } from '../cache/block-lease.js'

/** How long a grant holds its blocks unless released: a client reads a batch in milliseconds. */
export const GRANT_TTL_MS = 30_000

interface Grant {
  leases: Releasable[]
  bytes: number
  timer: NodeJS.Timeout
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

  /** Hold `leases` (of `bytes` of blocks) until release(id), close(), or the ttl; returns the grant's id. */
  grant(leases: Releasable[], bytes: number): number {
    const id = this.#next++
    const timer = setTimeout(() => this.release(id), this.ttl)
    timer.unref()
    this.#grants.set(id, { leases, bytes, timer })
    this.#bytes += bytes
    return id
  }

  /** Let grant `id` go; false if there is none (released, expired, or never made). */
  release(id: number): boolean {
    const g = this.#grants.get(id)
    if (!g) return false
    this.#grants.delete(id)
    clearTimeout(g.timer)
    this.#bytes -= g.bytes
    for (const lease of g.leases) lease.release()
    return true
  }

  /** The connection ended: every grant goes. */
  close(): void {
    for (const id of [...this.#grants.keys()]) this.release(id)
  }
}
