/**
 * One HTTP client socket as the server counts connections: it takes a slot
 * of --max-connections, its leases are accounted (LeaseBook) so a reader
 * that stopped reading can be closed when memory is short, and a graceful
 * close lets its running response finish.
 */
import type { Socket } from 'node:net'
import type { Connection } from '../server/connection.js'
import { LeaseBook } from '../server/lease-book.js'

let nextId = 1

export class HttpConnection implements Connection {
  readonly id = nextId++
  readonly closed: Promise<void>
  readonly leases = new LeaseBook()
  readonly socket: Socket
  /** Responses being made now. */
  active = 0
  /** Finish what runs, then close; new requests get ESHUTDOWN. */
  draining = false
  /** When the socket last finished a write, or the connection began. */
  #progressAt = Date.now()

  constructor(socket: Socket) {
    this.socket = socket
    // Not events.once: it rejects when 'error' comes first (a peer's reset), and the leases
    // would never be released.
    this.closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        // Whatever was on its way out went with the socket.
        this.leases.releaseAll()
        resolve()
      }),
    )
  }

  /** A write has reached the socket's buffer's end: the peer is reading. */
  progress(): void {
    this.#progressAt = Date.now()
  }

  refuseNewRequests(): void {
    this.draining = true
    if (this.idle) this.socket.destroy()
  }

  get idle(): boolean {
    return this.active === 0 && this.socket.writableLength === 0
  }

  stalledHolding(ms: number, now = Date.now()): boolean {
    return this.socket.writableLength > 0 && now - this.#progressAt >= ms && this.leases.charged
  }

  destroy(): void {
    this.socket.destroy()
  }
}
