/**
 * A Client's connection, one at a time: opened (HELLO, auth), given to each
 * request that starts, and replaced by a new one when it has ended; the ids
 * requests go out with; and the rule for which failed requests may be sent
 * again on the next connection.
 */
import createDebug from '../debug.js'
import { type Address } from '../address.js'
import { type CacheservError, error } from '../errors.js'
import { MAX_ID } from '../protocol/constants.js'
import type { CorruptStats } from '../stages/corrupt.js'
import type { FrameHandler, RequestControl } from './handlers.js'
import { idleMargin, Link, type LinkStats, requestControl, type Slot } from './link.js'
import { ResultRequest } from './result-request.js'
import type { ClientStats, ConnectOptions } from './types.js'

const debug = createDebug('cacheserv:client')

/** Waits (ms) before each new attempt of a request the connection died under: 4 more attempts over 4.4 s. */
export const RETRY_DELAYS: readonly number[] = [100, 300, 1000, 3000]

/** Bytes at the start of a connection that injected faults leave alone: the HELLO lives there. */
const HELLO_ROOM = 512

export class Connections {
  #address: string | Address
  #opts: ConnectOptions
  #link!: Link
  /** The next connection while it opens: every request that starts meanwhile waits for it. */
  #connecting: Promise<Link> | null = null
  #nextId = 1
  /** Set by close(): nothing is sent, and no connection opened, any more. */
  #closed: Error | null = null
  #stats: LinkStats = { nacks: 0, lostSync: 0, timeouts: 0 }
  #injected: CorruptStats[] = []
  /** Requests waiting for the next connection to open. */
  #waiting = 0

  private constructor(address: string | Address, opts: ConnectOptions) {
    this.#address = address
    this.#opts = opts
  }

  /** Open the first connection: it fails as the first dial does. */
  static async open(address: string | Address, opts: ConnectOptions): Promise<Connections> {
    const conns = new Connections(address, opts)
    conns.#link = await conns.#dial()
    return conns
  }

  /** The current connection (possibly ended: see acquire). */
  get link(): Link {
    return this.#link
  }

  /** Why no request may start any more (close()), or null. */
  get closed(): Error | null {
    return this.#closed
  }

  /** Waits before each new attempt of a request its connection died under (ConnectOptions.retryDelays). */
  get retryDelays(): readonly number[] {
    return this.#opts.retryDelays ?? RETRY_DELAYS
  }

  /** Open a connection and authenticate on it if the server asks. */
  async #dial(): Promise<Link> {
    const opts = this.#opts
    // Fault injection is for diagnostics: its module loads only when asked for (start-up time).
    const damage = opts.faults ? (await import('../stages/corrupt.js')).corrupt({ ...opts.faults, skip: Math.max(opts.faults.skip ?? 0, HELLO_ROOM) }) : null
    if (damage) this.#injected.push(damage.stats)
    const link = await Link.open(this.#address, { timeout: opts.timeout ?? 10_000, progressTimeout: opts.progressTimeout ?? 5000, damage, stats: this.#stats })
    if (!link.hello.auth) return link
    const token = opts.token ?? process.env.CACHESERV_TOKEN
    try {
      if (token === undefined) throw error('EAUTH', 'this server needs a token: pass --token or set CACHESERV_TOKEN')
      const id = this.nextId()
      const slot: Slot = { link, released: false }
      const req = new ResultRequest<unknown>(this.control(id, slot))
      link.register(id, req, 'auth', { token })
      await req.promise
    } catch (err) {
      link.socket.destroy()
      await link.done
      throw err
    }
    return link
  }

  /** The current connection if a request may start on it now, else null. */
  #usable(): Link | null {
    const link = this.#link
    if (link.ended) return null
    const idle = link.closesAfter()
    if (idle > 0 && link.handlers.size === 0 && link.sending === 0 && Date.now() - link.lastActive >= idle - idleMargin(idle)) {
      // The server may be closing it right now, and a request sent meanwhile would be lost with
      // it: nothing is in flight on it, so close it here and use a new one.
      debug('connection idle for %d ms of the server\'s %d: opening a new one', Date.now() - link.lastActive, idle)
      link.ended = error('ECLOSED', 'connection left before the server\'s idle timeout')
      link.socket.destroy()
      return null
    }
    return link
  }

  /**
   * An open connection for a request that starts now: the current one, or,
   * once that has ended, a new one (HELLO, auth) opened for it and for
   * every request that starts while it opens. One attempt: if it fails,
   * these requests fail with its error (ECLOSED if nothing answers).
   */
  acquire(): Link | Promise<Link> {
    if (this.#closed) return Promise.reject(this.#closed)
    const link = this.#usable()
    if (link) return link
    const gone = this.#link.ended
    this.#connecting ??= this.#dial().then(
      (next) => {
        this.#connecting = null
        if (this.#closed) {
          next.socket.destroy()
          throw this.#closed
        }
        debug('reconnected')
        this.#link = next
        return next
      },
      (err: CacheservError) => {
        this.#connecting = null
        // Nothing listens (or answers) any more: the server is gone, as the request would have found it.
        if (err.code === 'ECONNECT') throw error('ECLOSED', `${gone?.message ?? 'connection closed'}, and a new one failed: ${err.message}`, err)
        throw err
      },
    )
    return this.#connecting
  }

  /** Send request `id` (whose handler is `handler`) once a connection is open; fail it if none opens. */
  begin(id: number, slot: Slot, handler: FrameHandler, op: string, args: Record<string, unknown>): void {
    const send = (link: Link) => {
      if (slot.released) return
      slot.link = link
      link.register(id, handler, op, args)
    }
    if (this.#closed) return handler.onAbort(this.#closed)
    const link = this.acquire()
    if (!(link instanceof Promise)) return send(link)
    this.#waiting++
    link.then(
      (l) => {
        this.#waiting--
        send(l)
      },
      (err: Error) => {
        this.#waiting--
        if (!slot.released) handler.onAbort(err)
      },
    )
  }

  /**
   * Whether a request that failed with `err` may be sent again: its
   * connection died (ECLOSED) or its server is shutting down (ESHUTDOWN;
   * that connection takes no new request then), and close() was not called.
   */
  retryable(err: Error, slot: Slot): boolean {
    if (this.#closed) return false
    const code = (err as CacheservError).code
    if (code === 'ESHUTDOWN' && slot.link) slot.link.ended ??= err
    return code === 'ECLOSED' || code === 'ESHUTDOWN'
  }

  /** The id for the next request: 1 to MAX_ID, then 1 again. */
  nextId(): number {
    const id = this.#nextId
    this.#nextId = id === MAX_ID ? 1 : id + 1
    return id
  }

  /** What request `id`'s handler may ask of the connection `slot` gets. */
  control(id: number, slot: Slot): RequestControl {
    return requestControl(id, slot, this.#stats)
  }

  /** Requests still waiting for their end (on the current connection, or for the next one to open). */
  get pending(): number {
    return this.#link.handlers.size + this.#waiting
  }

  /** The reverse path's counters over every connection, and the faults injected. */
  counters(): ClientStats {
    return { ...this.#stats, injected: this.#injected.reduce((sum, s) => sum + s.faults, 0) }
  }

  /** Close the connection; requests still in flight fail with ECLOSED. No new connection opens after this. */
  async close(): Promise<void> {
    this.#closed ??= error('ECLOSED', 'client closed')
    const connecting = this.#connecting
    const link = this.#link
    link.ended ??= this.#closed
    link.socket.destroy()
    link.abortAll(this.#closed)
    await link.done
    // A connection opening now is closed as soon as it opens (see acquire).
    await connecting?.catch(() => {})
  }
}
