/**
 * One connection of a Client: its socket, the decoder of what arrives, the
 * requests in flight on it (routed by id), and the watchdog that notices when
 * the server falls silent. A Client has one at a time; when one ends, its
 * next request opens the next (connections.ts).
 *
 * Received bytes land in one reused buffer and are decoded and routed at
 * once: no fresh memory per read. The decoder copies out only a partial
 * frame, and every handler takes what it keeps from a frame before
 * returning (handlers.ts).
 */
import createDebug from '../debug.js'
import net from 'node:net'
import { type Address, parseAddress } from '../address.js'
import { error } from '../errors.js'
import { FrameType, PROTOCOL_VERSION } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import type { Nack } from '../protocol/receive-window.js'
import { encodeRequest } from '../protocol/request.js'
import { FrameDecoder } from '../protocol/decoder.js'
import type { Corrupter } from '../stages/corrupt.js'
import { errorFromFrame, type FrameHandler, parseJsonPayload, type RequestControl } from './handlers.js'
import type { Hello } from './types.js'

const debug = createDebug('cacheserv:client')

/** Progress timeouts in a row, each answered by asking again, before the connection is given up. */
const SILENT_TIMEOUTS = 4

/** Longest watchdog interval (setInterval takes at most 2^31 - 1 ms). */
const MAX_TICK = 60_000

/** Bytes one socket read can bring; the buffer is reused for every read. */
const RECEIVE_BUFFER = 1024 * 1024

/** The reverse path's counters, shared by every connection of a client. */
export interface LinkStats {
  nacks: number
  lostSync: number
  timeouts: number
}

export interface LinkOptions {
  /** ms to wait for the server's HELLO. */
  timeout: number
  /** ms of silence, while requests wait, before they are asked again. */
  progressTimeout: number
  /** Injected faults: received bytes pass through this first. */
  damage: Corrupter | null
  stats: LinkStats
}

/** Where a request lives: the connection it was sent on, once it was. */
export interface Slot {
  link: Link | null
  /** Given up by its consumer before it was sent: it is never sent. */
  released: boolean
}

/**
 * A connection this close to the server's idle timeout (HELLO `idleTimeout`)
 * is not used for a new request: the server may be closing it while the
 * request travels. A quarter of the timeout, at most 5 s.
 */
export function idleMargin(idleTimeout: number): number {
  return Math.min(idleTimeout / 4, 5000)
}

export class Link {
  readonly handlers = new Map<number, FrameHandler>()
  /** Why this connection is over, once it is: nothing more is sent on it. */
  ended: Error | null = null
  /** Uploads sending their bytes now: the server's silence is expected meanwhile. */
  sending = 0
  /** When a byte last moved either way: the server's idle timeout counts from there. */
  lastActive = Date.now()
  /** A handler's consumer is full: the socket is paused on purpose, silence is expected. */
  #holding = false
  /** A request line went out on it: the server's first-request deadline no longer applies. */
  #requested = false
  #lastByte = Date.now()
  #lastTick = Date.now()
  #silentTimeouts = 0
  #watchdog: NodeJS.Timeout | null = null
  #stats: LinkStats

  private constructor(
    readonly socket: net.Socket,
    readonly decoder: FrameDecoder,
    readonly hello: Hello,
    /** Resolves once the socket has closed and every request on it has failed. */
    readonly done: Promise<void>,
    stats: LinkStats,
  ) {
    this.#stats = stats
  }

  /** Connect to `address` and wait for the server's HELLO. */
  static open(address: string | Address, opts: LinkOptions): Promise<Link> {
    const addr = typeof address === 'string' ? parseAddress(address) : address
    const { damage, stats } = opts
    return new Promise<Link>((resolve, reject) => {
      let link: Link | null = null
      let handshakeDone = false
      const timer = setTimeout(() => fail(error('ECONNECT', `no answer from ${String(address)} within ${opts.timeout} ms`)), opts.timeout)
      const fail = (err: Error) => {
        if (handshakeDone) return
        handshakeDone = true
        clearTimeout(timer)
        socket.destroy()
        reject(err)
      }
      const decoder = new FrameDecoder(
        {
          onFrame: (frame) => {
            if (link) return link.#route(frame)
            if (handshakeDone) return
            handshakeDone = true
            clearTimeout(timer)
            try {
              link = new Link(socket, decoder, parseHello(frame), done, stats)
              link.#watch(opts.progressTimeout)
              resolve(link)
            } catch (err) {
              socket.destroy()
              reject(err)
            }
          },
          onInvalid: (reason) => {
            // Whose frame was damaged is unknown here; each victim finds out from a gap in its
            // sequence numbers, or, if nothing of it follows, from the progress timeout.
            if (!link) return fail(error('EPROTO', 'server did not open with a HELLO frame; is this a cacheserv-pipe server?'))
            stats.lostSync++
            debug('lost sync: %s', reason)
          },
        },
        { resync: true },
      )
      // Injected faults work on copies (the damage is a stream).
      damage?.on('data', (chunk: Buffer) => decoder.write(chunk))
      const received = Buffer.allocUnsafe(RECEIVE_BUFFER)
      const onread = {
        buffer: received,
        callback: (n: number, buf: Uint8Array): boolean => {
          const chunk = (buf as Buffer).subarray(0, n)
          if (damage) damage.write(Buffer.from(chunk))
          else {
            decoder.write(chunk)
            decoder.retain()
          }
          // Heard now, after the routing: a consumer may have blocked in it (readChunks writing to
          // a slow pipe), and that was not the server falling silent.
          if (link) link.#heard()
          // false pauses reading while a consumer is full; resume() starts it again.
          return !(link && link.#holding)
        },
      }
      const socket =
        addr.kind === 'unix' ? net.connect({ path: addr.path, onread } as net.NetConnectOpts) : net.connect({ host: addr.host, port: addr.port, noDelay: true, onread } as net.NetConnectOpts)
      let failure: NodeJS.ErrnoException | null = null
      socket.on('error', (err: NodeJS.ErrnoException) => {
        failure ??= err
        if (!handshakeDone) fail(error('ECONNECT', `cannot connect to ${String(address)}: ${err.code ?? err.message}`, err))
      })
      // The server ended its side (its idle timeout, a shutdown): nothing new is sent on this
      // connection; what is in flight fails when the socket closes.
      socket.once('end', () => {
        if (link) link.ended ??= error('ECLOSED', 'connection closed by the server')
      })
      const done = new Promise<void>((resolveDone) => {
        socket.once('close', () => {
          const e = error('ECLOSED', `connection closed${failure ? ` (${failure.code ?? failure.message})` : ' by the server'}`)
          debug('connection ended: %s', e.message)
          damage?.destroy()
          fail(e)
          if (link) {
            if (link.#watchdog) clearInterval(link.#watchdog)
            link.abortAll(e)
          }
          resolveDone()
        })
      })
    })
  }

  /**
   * Ms of quiet after which the server closes this connection (0: never): its
   * idle timeout, or, before the first request, its first-request deadline
   * if that is sooner (HELLO `requestTimeout`).
   */
  closesAfter(): number {
    const ms = (v: unknown) => (typeof v === 'number' && v > 0 ? v : Infinity)
    const after = Math.min(ms(this.hello.idleTimeout), this.#requested ? Infinity : ms(this.hello.requestTimeout))
    return after === Infinity ? 0 : after
  }

  /** Route a new request's frames to `handler`, then send it (or fail it if this connection is over). */
  register(id: number, handler: FrameHandler, op: string, args?: Record<string, unknown>): void {
    if (this.ended) return handler.onAbort(this.ended)
    this.handlers.set(id, handler)
    this.send(id, op, args)
  }

  /** Send a request line. */
  send(id: number, op: string, args?: Record<string, unknown>): void {
    this.lastActive = Date.now()
    this.#requested = true
    this.socket.write(encodeRequest(id, op, args))
  }

  /** End this connection: every request in flight fails with `err`. */
  abortAll(err: Error): void {
    this.ended ??= err
    const handlers = [...this.handlers.values()]
    this.handlers.clear()
    for (const h of handlers) h.onAbort(err)
  }

  #watch(progressTimeout: number): void {
    const interval = Math.min(MAX_TICK, Math.max(10, progressTimeout / 4))
    this.#watchdog = setInterval(() => this.#checkProgress(progressTimeout, interval), interval).unref()
  }

  #checkProgress(timeout: number, interval: number): void {
    const now = Date.now()
    // Ticking late means this process did not run (a long synchronous consumer, a stopped process):
    // bytes may be waiting unread, so the quiet is ours, not the server's. Check again next tick.
    const late = now - this.#lastTick > 2 * interval
    this.#lastTick = now
    if (late || this.ended || this.#holding || this.sending > 0 || this.handlers.size === 0) {
      this.#lastByte = now
      return
    }
    if (now - this.#lastByte < timeout) return
    this.#lastByte = now
    this.#stats.timeouts++
    if (++this.#silentTimeouts > SILENT_TIMEOUTS) {
      this.abortAll(error('ETIMEDOUT', `no byte from the server in ${(SILENT_TIMEOUTS + 1) * timeout} ms, despite asking again ${SILENT_TIMEOUTS} times`))
      this.socket.destroy()
      return
    }
    // Whatever half-frame the deframer holds will never be completed.
    this.decoder.reset()
    // Bytes were lost and we cannot tell whose: ask every request in flight again.
    debug('nothing received for %d ms: asking %d requests again', timeout, this.handlers.size)
    for (const h of [...this.handlers.values()]) h.onLost()
  }

  #route(frame: ReceivedFrame): void {
    if (frame.id === 0) {
      if (!frame.intact) {
        // An unreadable connection-level error: if it was fatal the server closes and we see ECLOSED.
        debug('dropped a corrupt connection-level frame')
        return
      }
      const err = frame.type === FrameType.ERROR ? errorFromFrame(frame) : error('EPROTO', `unexpected connection frame type ${frame.type}`)
      // An unparseable line of ours is answered on id 0 and the connection goes on (PROTOCOL.md).
      if (err.code === 'EBADREQ') {
        debug('server could not read a request line: %s', err.message)
        return
      }
      // Any other connection-level error: the server is closing; nothing in flight will finish.
      this.abortAll(err)
      this.socket.destroy()
      return
    }
    const handler = this.handlers.get(frame.id)
    if (!handler) return // a request we cancelled: its remaining frames are dropped
    let took: boolean
    try {
      took = handler.onFrame(frame, () => this.#resume())
    } catch (err) {
      // A handler must never throw into the socket's read callback; whatever it was, this request is over.
      this.handlers.delete(frame.id)
      if (!this.ended) this.send(frame.id, 'cancel') // nobody will take the rest
      handler.onAbort(error('EPROTO', `request ${frame.id}: ${(err as Error).message}`))
      return
    }
    if (!took) this.#holding = true
  }

  /** Bytes arrived: the connection is alive. */
  #heard(): void {
    this.#lastByte = this.lastActive = Date.now()
    this.#silentTimeouts = 0
  }

  #resume(): void {
    if (!this.#holding) return
    this.#holding = false
    this.#lastByte = Date.now()
    this.socket.resume()
  }
}

/** What a request's handler may ask of its connection, whichever one it is sent on (see Slot). */
export function requestControl(id: number, slot: Slot, stats: LinkStats): RequestControl {
  return {
    nack: (n: Nack) => {
      const link = slot.link
      if (!link || link.ended) return
      stats.nacks++
      debug('nack %d from seq %d, byte %d (resync %d)', id, n.seq, n.offset, n.resync)
      link.send(id, 'nack', { seq: n.seq, offset: n.offset, resync: n.resync })
    },
    release: (cancelOnServer: boolean) => {
      const link = slot.link
      if (!link) {
        slot.released = true
        return
      }
      link.handlers.delete(id)
      if (cancelOnServer && !link.ended) link.send(id, 'cancel')
    },
  }
}

function parseHello(frame: ReceivedFrame): Hello {
  // A server that turns us away (EBUSY, say) answers with an ERROR instead of HELLO.
  if (frame.type === FrameType.ERROR && frame.id === 0 && frame.intact) throw errorFromFrame(frame)
  if (frame.type !== FrameType.HELLO || frame.id !== 0 || !frame.intact) {
    throw error('EPROTO', 'server did not open with a HELLO frame; is this a cacheserv-pipe server?')
  }
  const hello = parseJsonPayload<Hello | null>(frame)
  if (hello === null || typeof hello !== 'object') throw error('EPROTO', 'HELLO carries no JSON object')
  if (hello.protocol !== PROTOCOL_VERSION) {
    throw error('EPROTO', `server speaks protocol ${hello.protocol}, this client speaks ${PROTOCOL_VERSION}`)
  }
  if (!Number.isSafeInteger(hello.pageSize) || hello.pageSize < 1) throw error('EPROTO', `HELLO announces no usable page size (${String(hello.pageSize)})`)
  return hello
}
