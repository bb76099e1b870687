/**
 * The connections a server serves at once, socket and HTTP alike: one slot
 * each up to the limit, free again once the connection has closed. Refused
 * connections (EBUSY) hold no slot but are known until they close, so that a
 * closing server cuts them off instead of waiting out their linger.
 */
import type { Duplex } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { collectGarbageSoon } from '../cache/collect-garbage.js'
import createDebug from '../debug.js'
import { type Connection, STALL_MS } from './connection.js'

// Closing connections is the server's decision, and logged as such.
const debug = createDebug('cacheserv:server')

export class ConnectionSlots {
  readonly limit: number
  #open = new Set<Connection>()
  #refused = new Set<Duplex>()
  #stalledClosed = 0

  constructor(limit: number) {
    this.limit = limit
  }

  /** Connections holding a slot. */
  get size(): number {
    return this.#open.size
  }

  get full(): boolean {
    return this.#open.size >= this.limit
  }

  /** Connections closed by closeStalled. */
  get stalledClosed(): number {
    return this.#stalledClosed
  }

  /** `conn` holds a slot until it has closed; `onClosed` is called then, after the slot is free. */
  add(conn: Connection, onClosed?: () => void): void {
    this.#open.add(conn)
    void conn.closed.then(() => {
      this.#open.delete(conn)
      onClosed?.()
    })
  }

  /** A connection refused for want of a slot, known until its close (see destroy). */
  refused(duplex: Duplex): void {
    this.#refused.add(duplex)
    duplex.once('close', () => this.#refused.delete(duplex))
  }

  /**
   * Memory is short (reads wait for it): close the connections that hold file
   * data outside the cache and have not read for STALL_MS. Their clients see a
   * closed connection, which ours retry; the others go on. Returns how many.
   */
  closeStalled(now = Date.now()): number {
    let closed = 0
    for (const conn of this.#open) {
      if (!conn.stalledHolding(STALL_MS, now)) continue
      debug('connection %d stopped reading while holding memory others wait for: closed', conn.id)
      conn.destroy()
      closed++
    }
    this.#stalledClosed += closed
    if (closed > 0) collectGarbageSoon()
    return closed
  }

  /** New requests get ESHUTDOWN; resolves once every connection has finished and sent what it was doing, or after `grace` ms. */
  async drain(grace: number): Promise<void> {
    for (const conn of this.#open) conn.refuseNewRequests()
    const deadline = Date.now() + grace
    while (Date.now() < deadline && [...this.#open].some((c) => !c.idle)) await sleep(20)
  }

  /** Cut off every connection, the refused ones too. */
  destroy(): void {
    for (const conn of this.#open) conn.destroy()
    for (const refused of this.#refused) refused.destroy()
  }

  /** Resolves once the connections holding a slot now have closed. */
  closed(): Promise<unknown> {
    return Promise.all([...this.#open].map((c) => c.closed))
  }
}
