/**
 * The client: one connection, many requests in flight. Requests go out as
 * JSON lines. Replies are read into one reused receive buffer, decoded and
 * routed by id to each request's handler within the socket's read callback:
 * no fresh memory per read, and a page is copied at most once, into memory
 * its consumer keeps (none at all for readChunks). Backpressure: when a
 * read's consumer is full, the client stops reading the socket (so all
 * requests on this connection wait; use one connection per independent
 * consumer).
 *
 * The reverse path: a handler that sees a corrupt frame, or a gap in its
 * sequence numbers, sends a NACK for its request. When the byte stream loses
 * sync (a bad header, garbage between frames) the decoder hunts for the
 * next frame, and each request that lost a frame finds out from the gap.
 * A request whose last frames were lost sees no gap: when the connection
 * goes quiet while requests wait, every one of them is asked again.
 *
 * When a connection dies under requests that are safe to repeat (read, stat,
 * ls, stats), they are sent again on a new one after a short wait, a few
 * times (ConnectOptions.retryDelays); a read that had delivered bytes asks
 * for the rest only, from the same version of the file.
 */
import createDebug from '../debug.js'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { constants as bufferConstants } from 'node:buffer'
import net from 'node:net'
import { type Address, DEFAULT_ADDRESS, parseAddress } from '../address.js'
import { type CacheservError, error } from '../errors.js'
import { checksumId } from '../protocol/checksum.js'
import { type ChecksumName, FrameType, MAX_ID, MAX_LOCATE_PATHS, MAX_UPLOAD_PAYLOAD, MAX_UPLOADS_PER_CONNECTION, PROTOCOL_VERSION } from '../protocol/constants.js'
import { encodeFrame, type ReceivedFrame } from '../protocol/frame.js'
import type { Nack } from '../protocol/receive-window.js'
import { encodeRequest } from '../protocol/request.js'
import type { Corrupter, CorruptStats } from '../stages/corrupt.js'
import { FrameDecoder } from '../protocol/decoder.js'
import { type Entry as ReadvEntry, EntryDecoder } from '../protocol/readv-entry.js'
import { errorFromFrame, type FrameHandler, parseJsonPayload, type RequestControl } from './handlers.js'
import { type ReadInfo, ReadReceiver, type ReadSink } from './read-receiver.js'
import { ReadStream } from './read-stream.js'
import { ResultRequest } from './result-request.js'
import { BatchReads } from './read-batches.js'
import { treeFiles } from './tree-stream.js'
import { LocatedReads } from './located-reads.js'
import type { Hello, Entry, TreeFile, StatResult, PinResult, ServerStatsResult, WarmResult, EvictResult, ReadOptions, ConnectOptions, ReadHandle, ClientStats } from './types.js'
export type { Hello, Entry, TreeFile, StatResult, PinResult, ServerStatsResult, WarmResult, EvictResult, ReadOptions, ConnectOptions, ReadHandle, ClientStats } from './types.js'

const debug = createDebug('cacheserv:client')

/** Progress timeouts in a row, each answered by asking again, before the connection is given up. */
const SILENT_TIMEOUTS = 4

/** Largest Buffer this Node can allocate (readFile's limit). */
const MAX_LENGTH = bufferConstants.MAX_LENGTH

/** Longest watchdog interval (setInterval takes at most 2^31 - 1 ms). */
const MAX_TICK = 60_000

/** Uploads the server runs at once per connection (more get EBUSY); the client queues beyond it. */

const EMPTY = Buffer.alloc(0)

/** Waits (ms) before each new attempt of a request the connection died under: 4 more attempts over 4.4 s. */
export const RETRY_DELAYS: readonly number[] = [100, 300, 1000, 3000]

/**
 * Requests sent again when their connection dies: they change nothing on the
 * server. Not write (the bytes would be stored twice, or half), nor warm and
 * evict (a second run reports what it did, not what the first one did).
 */
const REPEATABLE = new Set(['read', 'stat', 'ls', 'stats', 'tree', 'locate'])
/** Paths a readMany over the socket asks for in one readv, at least. */
const READV_BATCH = 256
/** Errors of a request whose connection died under it: the request may be sent again. */
const retryableErrors = new WeakSet<Error>()

/** Bytes one socket read can bring; the buffer is reused for every read. */
const RECEIVE_BUFFER = 1024 * 1024

/** Bytes at the start of a connection that injected faults leave alone: the HELLO lives there. */
const HELLO_ROOM = 512

/** Bytes of paths one `warm` request of a list carries (request lines are bounded: --max-request). */
const WARM_BATCH_BYTES = 32 * 1024

/**
 * One connection of a Client: its socket, its requests in flight, and what
 * the watchdog keeps of its traffic. A Client has one at a time; when it
 * ends, the next request opens the next one.
 */
interface Link {
  readonly socket: net.Socket
  readonly decoder: FrameDecoder
  readonly hello: Hello
  readonly handlers: Map<number, FrameHandler>
  /** Resolves once the socket has closed and every request on it has failed. */
  readonly done: Promise<void>
  /** Why this connection is over, once it is: nothing more is sent on it. */
  ended: Error | null
  /** A handler's consumer is full: the socket is paused on purpose, silence is expected. */
  holding: boolean
  lastByte: number
  lastTick: number
  silentTimeouts: number
  /** Uploads sending their bytes now. */
  sending: number
  /** When a byte last moved either way: the server's idle timeout counts from there. */
  lastActive: number
  /** A request line went out on it: the server's first-request deadline no longer applies. */
  requested: boolean
  watchdog: NodeJS.Timeout | null
}

/** Where a request lives: the connection it was sent on, once it was. */
interface Slot {
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

/**
 * Ms of quiet after which the server closes this connection (0: never): its
 * idle timeout, or, before the first request, its first-request deadline
 * if that is sooner (HELLO `requestTimeout`).
 */
function closesAfter(link: Link): number {
  const ms = (v: unknown) => (typeof v === 'number' && v > 0 ? v : Infinity)
  const after = Math.min(ms(link.hello.idleTimeout), link.requested ? Infinity : ms(link.hello.requestTimeout))
  return after === Infinity ? 0 : after
}

export class Client {
  #address: string | Address
  #opts: ConnectOptions
  /** Reads from the server's shared memory, on its host. */
  #located = new LocatedReads({
    request: (op, args) => this.request(op, args),
    readFile: (path) => this.readFile(path),
    readChunksRemote: (path, onChunk, opts) => this.#readChunksRemote(path, onChunk, opts),
  })
  #link!: Link
  /** The next connection while it opens: every request that starts meanwhile waits for it. */
  #connecting: Promise<Link> | null = null
  #nextId = 1
  /** Set by close(): nothing is sent, and no connection opened, any more. */
  #closed: Error | null = null
  #stats = { nacks: 0, lostSync: 0, timeouts: 0 }
  #injected: CorruptStats[] = []
  /** Requests waiting for the next connection to open. */
  #waiting = 0
  #uploads = 0
  #uploadTurns: (() => void)[] = []

  private constructor(address: string | Address, opts: ConnectOptions) {
    this.#address = address
    this.#opts = opts
  }

  /** What the server announced when the connection (the latest one) opened. */
  get hello(): Hello {
    return this.#link.hello
  }

  /** Connect to a server, wait for its HELLO, and authenticate if it asks. */
  static async connect(address: string | Address = process.env.CACHESERV_SERVER || DEFAULT_ADDRESS, opts: ConnectOptions = {}): Promise<Client> {
    const client = new Client(address, opts)
    client.#link = await client.#dial()
    return client
  }

  /** Open a connection and authenticate on it if the server asks. */
  async #dial(): Promise<Link> {
    const opts = this.#opts
    // Fault injection is for diagnostics: its module loads only when asked for (start-up time).
    const damage = opts.faults ? (await import('../stages/corrupt.js')).corrupt({ ...opts.faults, skip: Math.max(opts.faults.skip ?? 0, HELLO_ROOM) }) : null
    if (damage) this.#injected.push(damage.stats)
    const link = await this.#open(damage)
    if (!link.hello.auth) return link
    const token = opts.token ?? process.env.CACHESERV_TOKEN
    try {
      if (token === undefined) throw error('EAUTH', 'this server needs a token: pass --token or set CACHESERV_TOKEN')
      const id = this.#allocId()
      const slot: Slot = { link, released: false }
      const req = new ResultRequest<unknown>(this.#control(id, slot))
      this.#register(link, id, req, 'auth', { token })
      await req.promise
    } catch (err) {
      link.socket.destroy()
      await link.done
      throw err
    }
    return link
  }

  #open(damage: Corrupter | null): Promise<Link> {
    const address = this.#address
    const addr = typeof address === 'string' ? parseAddress(address) : address
    const timeout = this.#opts.timeout ?? 10_000
    const progressTimeout = this.#opts.progressTimeout ?? 5000
    return new Promise<Link>((resolve, reject) => {
      let link: Link | null = null
      let handshakeDone = false
      const timer = setTimeout(() => fail(error('ECONNECT', `no answer from ${String(address)} within ${timeout} ms`)), timeout)
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
            if (link) return this.#route(link, frame)
            if (handshakeDone) return
            handshakeDone = true
            clearTimeout(timer)
            try {
              const now = Date.now()
              const l: Link = {
                socket,
                decoder,
                hello: parseHello(frame),
                handlers: new Map(),
                done,
                ended: null,
                holding: false,
                lastByte: now,
                lastTick: now,
                silentTimeouts: 0,
                sending: 0,
                lastActive: now,
                requested: false,
                watchdog: null,
              }
              const interval = Math.min(MAX_TICK, Math.max(10, progressTimeout / 4))
              l.watchdog = setInterval(() => this.#checkProgress(l, progressTimeout, interval), interval).unref()
              link = l
              resolve(l)
            } catch (err) {
              socket.destroy()
              reject(err)
            }
          },
          onInvalid: (reason) => {
            // Whose frame was damaged is unknown here; each victim finds out from a gap in its
            // sequence numbers, or, if nothing of it follows, from the progress timeout.
            if (!link) return fail(error('EPROTO', 'server did not open with a HELLO frame; is this a cacheserv-pipe server?'))
            this.#stats.lostSync++
            debug('lost sync: %s', reason)
          },
        },
        { resync: true },
      )
      // Received bytes land in one reused buffer (no fresh memory per read) and are decoded and
      // routed at once; the decoder copies out only a partial frame, and every handler takes what
      // it keeps from a frame before returning. Injected faults work on copies (the damage is a stream).
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
          if (link) this.#heard(link)
          // false pauses reading while a consumer is full; #resume starts it again.
          return !(link && link.holding)
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
            if (link.watchdog) clearInterval(link.watchdog)
            this.#abortAll(link, e)
          }
          resolveDone()
        })
      })
    })
  }

  /** The current connection if a request may start on it now, else null. */
  #usable(): Link | null {
    const link = this.#link
    if (link.ended) return null
    const idle = closesAfter(link)
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
  #acquire(): Link | Promise<Link> {
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

  /** Route a new request's frames to `handler`, then send it on `link` (or fail it if `link` is over). */
  #register(link: Link, id: number, handler: FrameHandler, op: string, args?: Record<string, unknown>): void {
    if (link.ended) return handler.onAbort(link.ended)
    link.handlers.set(id, handler)
    this.#send(link, id, op, args)
  }

  /** Send request `id` (whose handler is `handler`) once a connection is open; fail it if none opens. */
  #begin(id: number, slot: Slot, handler: FrameHandler, op: string, args: Record<string, unknown>): void {
    const send = (link: Link) => {
      if (slot.released) return
      slot.link = link
      this.#register(link, id, handler, op, args)
    }
    if (this.#closed) return handler.onAbort(this.#closed)
    const link = this.#acquire()
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

  /** Read a file (or a range of it) as a stream of exactly its bytes. */
  read(path: string, opts: ReadOptions = {}): ReadStream {
    const closed = this.#closed
    if (closed) {
      const stream = new ReadStream(() => ({ info: null, nacks: 0, release() {} }), opts.highWaterMark)
      process.nextTick(() => stream.destroy(closed))
      return stream
    }
    return new ReadStream((sink) => this.#readWith(path, opts, sink), opts.highWaterMark)
  }

  /** Read a whole file (or range) into one Buffer: allocated once START says the length, filled page by page. */
  readFile(path: string, opts: ReadOptions = {}): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let buf: Buffer = EMPTY
      let at = 0
      this.#readWith(path, opts, {
        info: (info) => {
          if (info.length > MAX_LENGTH) throw error('ETOOBIG', `${path}: ${info.length} bytes is more than one Buffer holds (${MAX_LENGTH}); use read() or readChunks()`)
          buf = Buffer.allocUnsafe(info.length)
        },
        data: (views) => {
          for (const v of views) at += v.copy(buf, at)
          return true
        },
        end: () => resolve(buf),
        fail: reject,
      })
    })
  }

  /**
   * Read a file (or range), handing each verified piece to `onChunk`, in
   * order, without copying it. A piece lies in the connection's reused
   * receive buffer: it is valid only until `onChunk` returns, so write it out
   * or copy what you keep. No piece is handed on before its page passed its
   * checksum. Resolves with what START announced once every byte arrived; if
   * `onChunk` throws, the read stops with that error.
   */
  readChunks(path: string, onChunk: (chunk: Buffer) => void, opts: Omit<ReadOptions, 'highWaterMark'> = {}): Promise<ReadInfo> {
    if (opts.sharedMemory && this.#shortCircuitOn()) return this.#located.readChunks(path, onChunk, opts)
    return this.#readChunksRemote(path, onChunk, opts)
  }

  #readChunksRemote(path: string, onChunk: (chunk: Buffer) => void, opts: Omit<ReadOptions, 'highWaterMark'>): Promise<ReadInfo> {
    return new Promise((resolve, reject) => {
      let info: ReadInfo | null = null
      this.#readWith(path, opts, {
        info: (i) => void (info = i),
        data: (views) => {
          for (const v of views) onChunk(v)
          return true
        },
        end: () => resolve(info!),
        fail: reject,
      })
    })
  }

  /**
   * Run a read into `sink`. When its connection dies (#retryable), it is sent
   * again after the next retry delay: the whole read if START had not
   * arrived, else the rest of it (from the byte the sink reached), which must
   * come from the version START announced (the same size and mtimeMs), or
   * the read fails with ECHANGED. No byte reaches the sink twice. An attempt
   * that delivered bytes starts the count of retry delays again.
   */
  #readWith(path: string, opts: ReadOptions, sink: ReadSink): ReadHandle {
    const delays = this.#opts.retryDelays ?? RETRY_DELAYS
    let info: ReadInfo | null = null
    let delivered = 0
    let attempt = 0
    let nacks = 0
    let receiver: ReadReceiver | null = null
    let released = false
    let timer: NodeJS.Timeout | null = null
    const start = () => {
      timer = null
      if (released) return
      if (this.#closed) return sink.fail(this.#closed)
      if (receiver) nacks += receiver.nacks
      const first = info
      const from = delivered
      const id = this.#allocId()
      const slot: Slot = { link: null, released: false }
      const args = first ? { path, offset: first.offset + delivered, length: first.length - delivered } : { path, offset: opts.offset, length: opts.length }
      receiver = new ReadReceiver(id, this.#control(id, slot), {
        info: (i) => {
          if (!first) {
            info = i
            return sink.info(i)
          }
          if (i.size !== first.size || i.mtimeMs !== first.mtimeMs || i.length !== first.length - delivered) {
            throw error('ECHANGED', `${path} changed on the server while the read was resumed on a new connection (${first.size} bytes, mtime ${first.mtimeMs} before; ${i.size} bytes, mtime ${i.mtimeMs} now)`)
          }
        },
        data: (views, resume) => {
          for (const v of views) delivered += v.length
          return sink.data(views, resume)
        },
        end: () => sink.end(),
        fail: (err) => {
          if (released) return
          // An attempt that brought bytes was a success as far as it went: the count starts again.
          if (delivered > from) attempt = 0
          if (attempt < delays.length && this.#retryable(err, slot)) {
            debug('read %s failed (%s): again in %d ms from byte %d', path, err.message, delays[attempt], delivered)
            timer = setTimeout(start, delays[attempt++])
            return
          }
          sink.fail(err)
        },
      })
      this.#begin(id, slot, receiver, 'read', args)
    }
    start()
    return {
      get info() {
        return info
      },
      get nacks() {
        return nacks + (receiver?.nacks ?? 0)
      },
      release: () => {
        released = true
        if (timer) clearTimeout(timer)
        timer = null
        receiver?.release()
      },
    }
  }

  /**
   * Whether a request that failed with `err` may be sent again: its
   * connection died (ECLOSED) or its server is shutting down (ESHUTDOWN;
   * that connection takes no new request then), and the client is not closed.
   */
  #retryable(err: Error, slot: Slot): boolean {
    if (this.#closed) return false
    const code = (err as CacheservError).code
    if (code === 'ESHUTDOWN' && slot.link) slot.link.ended ??= err
    return code === 'ECLOSED' || code === 'ESHUTDOWN'
  }

  /** Entries of a directory under the root, sorted by name; with `long`, files have their sizes. */
  async ls(path = '', { long = false }: { long?: boolean } = {}): Promise<Entry[]> {
    const result = await this.request<{ entries?: unknown } | null>('ls', long ? { path, long } : { path })
    if (!Array.isArray(result?.entries)) throw error('EPROTO', 'ls result without an entries list')
    return result.entries as Entry[]
  }

  /**
   * Every file under a directory (or the file itself) with its size, depth
   * first in name order, in one streamed response (a connection that dies
   * under it is asked again for the files after the last one given);
   * `suffix` keeps only names ending with it. With `pageSize`, a page of
   * that many files per round trip instead.
   */
  async *tree(path = '', { suffix, pageSize }: { suffix?: string; pageSize?: number } = {}): AsyncGenerator<TreeFile, void, void> {
    if (pageSize !== undefined) return yield* this.#treePages(path, suffix, pageSize)
    const delays = this.#opts.retryDelays ?? RETRY_DELAYS
    let after: string | null = null
    for (let attempt = 0; ; ) {
      const args: Record<string, unknown> = { path, stream: true }
      if (suffix) args.suffix = suffix
      if (after !== null) args.after = after
      const from: string | null = after
      try {
        for await (const f of treeFiles((sink) => this.#stream('tree', args, sink))) {
          after = f.path
          yield f
        }
        return
      } catch (err) {
        if (after !== from) attempt = 0
        if (attempt >= delays.length || !retryableErrors.has(err as Error)) throw err
        debug('tree %s failed (%s): again in %d ms after %s', path, (err as Error).message, delays[attempt], after)
        await sleep(delays[attempt++])
        if (this.#closed) throw this.#closed
      }
    }
  }

  async *#treePages(path: string, suffix: string | undefined, pageSize: number): AsyncGenerator<TreeFile, void, void> {
    let after: string | null = null
    do {
      const args: Record<string, unknown> = { path, limit: pageSize }
      if (suffix) args.suffix = suffix
      if (after !== null) args.after = after
      const page = await this.request<{ files?: unknown; next?: unknown } | null>('tree', args)
      if (!Array.isArray(page?.files) || !(page.next === null || typeof page.next === 'string')) throw error('EPROTO', 'tree result without a files list and a next cursor')
      yield* page.files as TreeFile[]
      after = page.next
    } while (after !== null)
  }

  /** A request answered by START, a stream of DATA and END, into `sink`; an error it fails with is marked when its connection died. */
  #stream(op: string, args: Record<string, unknown>, sink: ReadSink): { release(): void } {
    const id = this.#allocId()
    const slot: Slot = { link: null, released: false }
    const receiver = new ReadReceiver(
      id,
      this.#control(id, slot),
      {
        ...sink,
        fail: (err) => {
          if (this.#retryable(err, slot)) retryableErrors.add(err)
          sink.fail(err)
        },
      },
      { stream: true },
    )
    this.#begin(id, slot, receiver, op, args)
    return receiver
  }

  stat(path: string): Promise<StatResult> {
    return this.request<StatResult>('stat', { path })
  }

  /** The server's counters. */
  stats(): Promise<ServerStatsResult> {
    return this.request<ServerStatsResult>('stats')
  }

  /** Load a file or a tree into the server's cache; `onProgress` sees how far it got. */
  warm(path = '', onProgress?: (progress: WarmResult) => void): Promise<WarmResult> {
    return this.request<WarmResult>('warm', { path }, onProgress as (p: unknown) => void)
  }

  /**
   * Load exactly the files listed, in that order, into the server's cache
   * (an epoch's sample order, say): a request per batch of paths, with
   * progress and the result summed over them. Stops once the cache is full.
   */
  async warmList(paths: Iterable<string> | AsyncIterable<string>, onProgress?: (progress: WarmResult) => void): Promise<WarmResult> {
    const total: Required<WarmResult> = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false, skipped: 0, skippedPaths: [] }
    const sum = (r: WarmResult): Required<WarmResult> => ({
      files: total.files + r.files,
      bytes: total.bytes + r.bytes,
      totalFiles: total.totalFiles + r.totalFiles,
      totalBytes: total.totalBytes + r.totalBytes,
      full: r.full,
      skipped: total.skipped + (r.skipped ?? 0),
      skippedPaths: [...total.skippedPaths, ...(r.skippedPaths ?? [])].slice(0, 20),
    })
    let batch: string[] = []
    let bytes = 0
    const send = async () => {
      const r = await this.request<WarmResult>('warm', { paths: batch }, onProgress && ((p) => onProgress(sum(p as WarmResult))))
      Object.assign(total, sum(r))
      batch = []
      bytes = 0
    }
    // Batches well within the server's longest request line (a path's JSON may be 6× its bytes: \u escapes).
    const limit = () => Math.min(WARM_BATCH_BYTES, Math.floor((this.hello?.maxRequest ?? WARM_BATCH_BYTES * 2) / 2))
    for await (const path of paths) {
      if (total.full) break
      const size = Buffer.byteLength(JSON.stringify(path)) + 1
      if (batch.length > 0 && bytes + size > limit()) await send()
      batch.push(path)
      bytes += size
    }
    if (batch.length > 0 && !total.full) await send()
    return total
  }

  /**
   * Keep a file, or every file under a directory, in the server's cache
   * whatever its eviction policy does (loading what is not cached). More than
   * the cache can pin fails with ENOSPC and pins nothing.
   */
  pin(path: string): Promise<PinResult> {
    return this.request<PinResult>('pin', { path })
  }

  /** Let the pinned files at or under `path` (everything without one) be evicted again. */
  unpin(path = ''): Promise<PinResult> {
    return this.request<PinResult>('unpin', { path })
  }

  /** Drop a file, a tree, or (without a path) everything from the server's cache. */
  evict(path?: string): Promise<EvictResult> {
    return this.request<EvictResult>('evict', path === undefined ? {} : { path })
  }

  /**
   * Write a file on the server (if it was started writable): the bytes are
   * uploaded as checksummed pages and renamed into place atomically.
   */
  async write(path: string, data: Buffer | AsyncIterable<Buffer | Uint8Array>): Promise<{ path: string; size: number }> {
    // The server runs at most MAX_UPLOADS_PER_CONNECTION uploads per connection: wait for a turn.
    while (this.#uploads >= MAX_UPLOADS_PER_CONNECTION) await new Promise<void>((resolve) => this.#uploadTurns.push(resolve))
    this.#uploads++
    try {
      return await this.#upload(path, data)
    } finally {
      this.#uploads--
      this.#uploadTurns.shift()?.()
    }
  }

  async #upload(path: string, data: Buffer | AsyncIterable<Buffer | Uint8Array>): Promise<{ path: string; size: number }> {
    if (this.#closed) throw this.#closed
    // An upload that has not started may open a new connection; once started, it lives and dies with this one.
    const link = await this.#acquire()
    const id = this.#allocId()
    let total = 0
    let ended = false
    // Never NACKed: the server cannot resend an upload (the bytes are ours), so a NACK would only
    // make it fail. A lost RESULT shows as silence (ETIMEDOUT once the connection is quiet); a
    // damaged one still says the file is stored, as big as what was sent (once all was sent).
    const known = () => (ended ? { path, size: total } : null)
    const req = new ResultRequest<{ path: string; size: number }>(this.#control(id, { link, released: false }), { once: { known } })
    const settled = req.promise.then(
      () => true,
      () => true,
    )
    let finished = false
    void settled.then(() => (finished = true))
    this.#register(link, id, req, 'write', Buffer.isBuffer(data) ? { path, length: data.length } : { path })
    const checksum = checksumId(link.hello.checksum as ChecksumName)
    // Pages as HELLO says, but no bigger than a server takes from a client (PROTOCOL.md, Uploads).
    const page = Math.min(link.hello.pageSize, MAX_UPLOAD_PAYLOAD)
    let seq = 1
    const sendFrame = async (type: FrameType, payload: Buffer) => {
      // A frame's header and payload go out together, then we wait: waiting between them would
      // let another upload's frame (or a request line) in between, and the server would misread both.
      let room = true
      link.lastActive = Date.now()
      for (const buf of encodeFrame({ type, id, seq: seq++, payload }, checksum)) room = link.socket.write(buf)
      // A socket error surfaces as the request's ECLOSED (through done), not as a raw ECONNRESET here.
      if (!room) await Promise.race([once(link.socket, 'drain').catch(() => {}), settled, link.done])
    }
    // Chunks are awaited against the request's end: once it has failed (EROFS, the connection
    // went), a source that is slow to produce (a terminal on stdin) must not keep the write waiting.
    const source = Buffer.isBuffer(data) ? (async function* () { yield data })() : data
    const chunks = source[Symbol.asyncIterator]()
    const stopped = Promise.race([settled, link.done]).then(() => null)
    // While we send, the server has nothing to say: its silence is not a loss (see #checkProgress).
    link.sending++
    try {
      while (!finished && !link.ended) {
        const next = await Promise.race([chunks.next(), stopped])
        if (next === null) {
          chunks.return?.().catch(() => {})
          break
        }
        if (next.done) break
        const buf = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value)
        for (let at = 0; at < buf.length && !finished && !link.ended; at += page) {
          const payload = buf.subarray(at, at + page)
          total += payload.length
          await sendFrame(FrameType.DATA, payload)
        }
      }
    } catch (err) {
      // The bytes to upload failed: stop the upload on the server (its temporary file goes) and say why.
      link.handlers.delete(id)
      if (!link.ended) this.#send(link, id, 'cancel')
      req.onAbort(err as Error)
      throw err
    } finally {
      link.sending--
    }
    if (!finished && !link.ended) {
      ended = true
      await sendFrame(FrameType.END, Buffer.from(JSON.stringify({ length: total })))
    }
    const result = await req.promise
    if (result?.size !== total) throw error('EPROTO', `the server stored ${String(result?.size)} bytes of ${path}; ${total} were sent`)
    return result
  }

  /**
   * Read many files over this one connection and yield them in the order
   * given. Over the socket the paths go out in batches of at least
   * READV_BATCH, one `readv` request each, two batches on their way at once.
   * On the server's host the files are located `inFlight` at a time, one
   * `locate` per batch with the next batch's on its way, and read from shared
   * memory.
   */
  async *readMany(paths: Iterable<string>, { inFlight = 8 }: { inFlight?: number } = {}): AsyncGenerator<{ path: string; data: Buffer }, void, void> {
    if (!Number.isSafeInteger(inFlight) || inFlight < 1) throw error('EBADREQ', `readMany: inFlight must be a positive integer, not ${inFlight}`)
    if (!this.#shortCircuitOn()) {
      // Over the socket: a readv request per batch of paths (read-batches.ts).
      const delays = this.#opts.retryDelays ?? RETRY_DELAYS
      const batches = new BatchReads(
        (paths, onEntry, hold, onHeld) => this.#readv(paths, onEntry, hold, onHeld),
        (err, attempt) => (attempt < delays.length && retryableErrors.has(err) ? delays[attempt] : null),
      )
      return yield* batches.read(paths, Math.max(inFlight, READV_BATCH))
    }
    const batch = Math.min(inFlight, MAX_LOCATE_PATHS)
    const queue: { path: string; data: Promise<Buffer> }[] = []
    const iterator = paths[Symbol.iterator]()
    const refill = () => {
      // On the server's host: a locate per batch of paths, the next batch's on its way.
      while (queue.length + batch <= 2 * batch) {
        const next: string[] = []
        for (let r = iterator.next(); !r.done; r = iterator.next()) if (next.push(r.value) === batch) break
        if (next.length === 0) return
        const answers = this.#located.batch(next)
        next.forEach((path, i) => {
          const data = answers.then((got) => got[i]())
          data.catch(() => {}) // surfaced when its turn comes
          queue.push({ path, data })
        })
      }
    }
    refill()
    while (queue.length > 0) {
      const head = queue.shift()!
      const data = await head.data
      refill()
      yield { path: head.path, data }
    }
  }

  /** One readv request: its entries to `onEntry` as they arrive whole (see BatchReads). */
  #readv(paths: string[], onEntry: (entry: ReadvEntry) => void, hold: () => boolean, onHeld: (resume: () => void) => void): { done: Promise<void>; cancel(): void } {
    const id = this.#allocId()
    const slot: Slot = { link: null, released: false }
    let receiver!: ReadReceiver
    const done = new Promise<void>((resolve, reject) => {
      const decoder = new EntryDecoder(onEntry)
      receiver = new ReadReceiver(
        id,
        this.#control(id, slot),
        {
          info: () => {},
          data: (views, resume) => {
            for (const v of views) decoder.push(v)
            if (!hold()) return true
            onHeld(resume)
            return false
          },
          end: () => (decoder.atBoundary ? resolve() : reject(error('EPROTO', `readv ${id}: the stream ended inside an entry`))),
          fail: (err) => {
            if (this.#retryable(err, slot)) retryableErrors.add(err)
            reject(err)
          },
        },
        { stream: true },
      )
    })
    this.#begin(id, slot, receiver, 'readv', { paths })
    return { done, cancel: () => receiver.release() }
  }

  /** Send any command answered by one RESULT frame (PROGRESS frames before it go to `onProgress`). */
  request<T>(op: string, args: Record<string, unknown> = {}, onProgress?: (progress: unknown) => void): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed)
    if (!REPEATABLE.has(op)) return this.#requestOnce<T>(op, args, onProgress).promise
    return this.#requestRetrying<T>(op, args, onProgress)
  }

  /** A repeatable request, sent again after each retry delay while its connection dies under it. */
  async #requestRetrying<T>(op: string, args: Record<string, unknown>, onProgress?: (progress: unknown) => void): Promise<T> {
    const delays = this.#opts.retryDelays ?? RETRY_DELAYS
    for (let attempt = 0; ; attempt++) {
      const { promise, slot } = this.#requestOnce<T>(op, args, onProgress)
      try {
        return await promise
      } catch (err) {
        if (attempt >= delays.length || !this.#retryable(err as Error, slot)) throw err
        debug('%s failed (%s): again in %d ms', op, (err as Error).message, delays[attempt])
        await sleep(delays[attempt])
        if (this.#closed) throw this.#closed
      }
    }
  }

  #requestOnce<T>(op: string, args: Record<string, unknown>, onProgress?: (progress: unknown) => void): { promise: Promise<T>; slot: Slot } {
    const id = this.#allocId()
    const slot: Slot = { link: null, released: false }
    const req = new ResultRequest<T>(this.#control(id, slot), { onProgress })
    this.#begin(id, slot, req, op, args)
    return { promise: req.promise, slot }
  }

  /** Requests still waiting for their end (on the current connection, or for the next one to open). */
  get pending(): number {
    return this.#link.handlers.size + this.#waiting
  }

  /** This client's own counters of the reverse path, over all its connections (the server's are in `stats()`). */
  counters(): ClientStats {
    return { ...this.#stats, injected: this.#injected.reduce((sum, s) => sum + s.faults, 0) }
  }

  /** Short-circuit reads are on, and this connection may make them (HELLO `shm`). */
  #shortCircuitOn(): boolean {
    return this.#opts.shortCircuit !== false && !this.#opts.faults && this.#link?.hello.shm === true
  }

  /** Close the connection; requests still in flight fail with ECLOSED. No new connection opens after this. */
  async close(): Promise<void> {
    this.#located.close()
    this.#closed ??= error('ECLOSED', 'client closed')
    const connecting = this.#connecting
    const link = this.#link
    link.ended ??= this.#closed
    link.socket.destroy()
    this.#abortAll(link, this.#closed)
    await link.done
    // A connection opening now is closed as soon as it opens (see #acquire).
    await connecting?.catch(() => {})
  }

  #allocId(): number {
    const id = this.#nextId
    this.#nextId = id === MAX_ID ? 1 : id + 1
    return id
  }

  #send(link: Link, id: number, op: string, args?: Record<string, unknown>): void {
    link.lastActive = Date.now()
    link.requested = true
    link.socket.write(encodeRequest(id, op, args))
  }

  #control(id: number, slot: Slot): RequestControl {
    return {
      nack: (n: Nack) => {
        const link = slot.link
        if (!link || link.ended) return
        this.#stats.nacks++
        debug('nack %d from seq %d, byte %d (resync %d)', id, n.seq, n.offset, n.resync)
        this.#send(link, id, 'nack', { seq: n.seq, offset: n.offset, resync: n.resync })
      },
      release: (cancelOnServer: boolean) => {
        const link = slot.link
        if (!link) {
          slot.released = true
          return
        }
        link.handlers.delete(id)
        if (cancelOnServer && !link.ended) this.#send(link, id, 'cancel')
      },
    }
  }

  /** Ask every request in flight again: bytes were lost and we cannot tell whose. */
  #lostAll(link: Link, reason: string): void {
    debug('%s: asking %d requests again', reason, link.handlers.size)
    for (const h of [...link.handlers.values()]) h.onLost()
  }

  #checkProgress(link: Link, timeout: number, interval: number): void {
    const now = Date.now()
    // Ticking late means this process did not run (a long synchronous consumer, a stopped process):
    // bytes may be waiting unread, so the quiet is ours, not the server's. Check again next tick.
    const late = now - link.lastTick > 2 * interval
    link.lastTick = now
    if (late || link.ended || link.holding || link.sending > 0 || link.handlers.size === 0) {
      link.lastByte = now
      return
    }
    if (now - link.lastByte < timeout) return
    link.lastByte = now
    this.#stats.timeouts++
    if (++link.silentTimeouts > SILENT_TIMEOUTS) {
      this.#abortAll(link, error('ETIMEDOUT', `no byte from the server in ${(SILENT_TIMEOUTS + 1) * timeout} ms, despite asking again ${SILENT_TIMEOUTS} times`))
      link.socket.destroy()
      return
    }
    // Whatever half-frame the deframer holds will never be completed.
    link.decoder.reset()
    this.#lostAll(link, `nothing received for ${timeout} ms`)
  }

  #route(link: Link, frame: ReceivedFrame): void {
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
      this.#abortAll(link, err)
      link.socket.destroy()
      return
    }
    const handler = link.handlers.get(frame.id)
    if (!handler) return // a request we cancelled: its remaining frames are dropped
    let took: boolean
    try {
      took = handler.onFrame(frame, () => this.#resume(link))
    } catch (err) {
      // A handler must never throw into the socket's read callback; whatever it was, this request is over.
      link.handlers.delete(frame.id)
      if (!link.ended) this.#send(link, frame.id, 'cancel') // nobody will take the rest
      handler.onAbort(error('EPROTO', `request ${frame.id}: ${(err as Error).message}`))
      return
    }
    if (!took) link.holding = true
  }

  /** Bytes arrived: the connection is alive. */
  #heard(link: Link): void {
    link.lastByte = link.lastActive = Date.now()
    link.silentTimeouts = 0
  }

  #resume(link: Link): void {
    if (!link.holding) return
    link.holding = false
    link.lastByte = Date.now()
    link.socket.resume()
  }

  #abortAll(link: Link, err: Error): void {
    link.ended ??= err
    const handlers = [...link.handlers.values()]
    link.handlers.clear()
    for (const h of handlers) h.onAbort(err)
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

/** Connect to a cacheserv-pipe server (default: $CACHESERV_SERVER or tcp://127.0.0.1:7070). */
export function connect(address?: string | Address, opts?: ConnectOptions): Promise<Client> {
  return Client.connect(address, opts)
}
