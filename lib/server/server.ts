/**
 * The cache server: one shared cache and root, one pipeline per connection.
 * `handle(duplex)` is the core, so the server can be mounted on any
 * net.Server or tested over an in-memory duplex pair; `listen` is the usual
 * TCP / unix socket front.
 */
import createDebug from '../debug.js'
import { EventEmitter } from 'node:events'
import { unlink } from 'node:fs/promises'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { type Address, formatAddress, parseAddress } from '../address.js'
import { BlockCache, DEFAULT_BLOCK_SIZE } from '../cache/block-cache.js'
import { MemoryBudget } from '../cache/memory-budget.js'
import type { ShmStore } from '../cache/shm-store.js'
import { openStore } from './open-store.js'
import { LeaseGrants } from './lease-grants.js'
import type { CommandContext } from '../commands/context.js'
import { Jail } from '../fs/jail.js'
import { KnownFiles } from '../fs/known-files.js'
import { ListingSizes } from './listing-sizes.js'
import { MetaCache } from '../fs/meta-cache.js'
import { Pins } from './pins.js'
import { DEFAULT_SETTLE_MS, Settle } from '../fs/settle.js'
import { removeOrphanedUploads } from '../fs/upload-temp.js'
import { useFastCrc32 } from '../protocol/crc32.js'
import { type ChecksumName, DEFAULT_MAX_REQUEST, PROTOCOL_VERSION } from '../protocol/constants.js'
import { AuthThrottle } from './auth-throttle.js'
import { listenOn, listenUnix } from './listen.js'
import { noteConnectionClosed } from '../cache/collect-garbage.js'
import { type Connection, serveConnection } from './connection.js'
import { ConnectionSlots } from './connection-slots.js'
import { isLocalPeer } from './local-peer.js'
import { openSharedTier } from './open-shared-tier.js'
import { checkedPageSize } from './page-sizes.js'
import { refuseBusy } from './refuse-busy.js'
import { Warms } from './warms.js'
import { VERSION } from '../version.js'
import { error } from '../errors.js'
import type { WarmProgress } from '../commands/warm.js'
import type http from 'node:http'
import { createGateway } from '../http/gateway.js'
import type { HttpConnection } from '../http/http-connection.js'
import { Metrics } from '../metrics/metrics.js'
import type { SharedTier } from '../tier/shared-tier.js'
import {
  DEFAULT_AUTH_BACKOFF,
  DEFAULT_AUTH_TIMEOUT,
  DEFAULT_CACHE_SIZE,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REQUEST_TIMEOUT,
  defaultMaxBuffered,
  type ServerOptions,
} from './server-options.js'
import { NO_SHARED_TIER, type ServerStats } from './server-stats.js'

const debug = createDebug('cacheserv:server')

export * from './server-options.js'
export type { ServerStats } from './server-stats.js'

export class CacheServer extends EventEmitter {
  readonly root: string
  readonly cache: BlockCache
  /** The Redis tier, when the server has one. */
  readonly #shared: SharedTier | null
  /** Recently checked files, whose cached reads skip the open. */
  readonly files: KnownFiles
  /** Files pinned in the cache (pin, unpin, --pin). */
  readonly pins: Pins
  /** Directory listings held in RAM. */
  readonly meta: MetaCache
  readonly pageSize: number
  readonly checksum: ChecksumName
  #ctx: CommandContext
  #opts: ServerOptions
  #slots: ConnectionSlots
  /** Warms started by warm(), running. */
  #warms: Warms
  #cleanup: Promise<number> = Promise.resolve(0)
  #cleanupStop = new AbortController()
  #net: net.Server | null = null
  #unixPath: string | null = null
  #started = Date.now()
  #totalConnections = 0
  #bytesServed = 0
  /** File bytes same-host clients were given in shared memory. */
  #locatedBytes = 0
  #httpBytes = 0
  #http: http.Server | null = null
  #metrics: Metrics
  #nacks = 0
  #throttle: AuthThrottle
  #memory: MemoryBudget
  #store: ShmStore | null
  /** Said once at start (the CLI prints them): what the server runs without. */
  readonly warnings: string[] = []
  /** Blocks taken over from the store a crashed server left. */
  readonly adopted: { blocks: number; bytes: number; dropped: number }

  private constructor(jail: Jail, opts: ServerOptions, shared: SharedTier | null) {
    super()
    const pageSize = checkedPageSize(opts)
    this.root = jail.root
    this.pageSize = pageSize
    this.checksum = opts.checksum ?? 'crc32'
    // A server sums every page it reads from disk: the SIMD crc32 pays for its loading at once.
    if (this.checksum === 'crc32') useFastCrc32()
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE
    const cacheSize = opts.cacheSize ?? DEFAULT_CACHE_SIZE
    this.#slots = new ConnectionSlots(opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS)
    this.#memory = new MemoryBudget(Math.max(opts.maxBuffered ?? defaultMaxBuffered(cacheSize), blockSize), () => this.#slots.closeStalled())
    const { store, warning } = openStore({ dir: opts.shmDir, optional: opts.shmOptional, cacheSize, blockSize, outside: this.#memory.limit, root: jail.root })
    if (warning) this.warnings.push(warning)
    this.#store = store
    this.#shared = shared
    try {
      this.cache = new BlockCache({ limit: cacheSize, blockSize, policy: opts.policy, memory: this.#memory, store: store ?? undefined, shared: this.#shared ?? undefined })
      this.adopted = this.cache.adoptStored()
    } catch (err) {
      // Refused (an unknown policy): the store goes, or its directory stays claimed by this process.
      store?.close()
      throw err
    }
    if (this.adopted.blocks > 0) debug('adopted %d blocks (%d bytes) from %s', this.adopted.blocks, this.adopted.bytes, store?.dir)
    this.files = new KnownFiles(jail)
    const settle = new Settle(opts.settle ?? DEFAULT_SETTLE_MS)
    this.pins = new Pins(jail, this.cache, settle)
    // Told once, as a 'warning' event: the CLI prints it (a library user may listen).
    const listings = new ListingSizes(cacheSize, (path, bytes) =>
      this.emit('warning', `${path || 'the root'} holds more than the cache (${mib(bytes)} listed so far, cache ${mib(cacheSize)}): repeated epochs will read part of it from disk; raise --cache-size to keep all of it in RAM`),
    )
    // Listings take up to an eighth of the cache, out of its bytes.
    this.meta = new MetaCache(opts.metaCache === false ? 0 : Math.floor(cacheSize / 8), {
      watch: opts.metaCache === false ? null : undefined,
      onBytes: (bytes) => this.cache.reserve(bytes),
      // Pinned blocks come first: listings take only what they leave of the cache.
      room: () => cacheSize - this.cache.pinnedBytes - 2 * blockSize,
      // Where `stat` starts finding files from memory (MetaCache.resolve): listed now, and again after it changes.
      listRoot: () => void this.#listRoot(),
    })
    void this.#listRoot()
    this.#ctx = { jail, cache: this.cache, files: this.files, pins: this.pins, meta: this.meta, listings, settle, checksum: this.checksum, writable: opts.writable ?? false, stats: () => ({ ...this.stats() }), located: (n) => void (this.#locatedBytes += n) }
    this.#warms = new Warms(this.#ctx)
    this.#opts = opts
    this.#throttle = new AuthThrottle(opts.authBackoff ?? DEFAULT_AUTH_BACKOFF)
    this.#metrics = new Metrics(() => {
      const s = this.stats()
      return { ...s, bytesServedByInterface: { socket: s.bytesServed - s.httpBytesServed, http: s.httpBytesServed, shm: s.locatedBytes } }
    })
    // Uploads cut off by a server that died leave their temporary files behind: a writable
    // server removes them, beside serving (a big tree takes a while to walk).
    if (opts.writable) {
      this.#cleanup = removeOrphanedUploads(jail, this.#cleanupStop.signal).catch((err: Error) => {
        debug('removing orphaned uploads failed: %s', err.message)
        return 0
      })
    }
  }

  /** Have the metadata cache hold the root's listing (a failure only means it is not held). */
  async #listRoot(): Promise<void> {
    try {
      const root = await this.#ctx.jail.lookup('')
      try {
        await this.meta.list(root, true)
      } finally {
        root.close()
      }
    } catch (err) {
      debug('the root was not listed: %s', (err as Error).message)
    }
  }

  /** With a Redis tier: resolves true once Redis answered, false if it did not at first; null without one. */
  get sharedReady(): Promise<boolean | null> {
    return this.#shared?.ready ?? Promise.resolve(null)
  }

  /** The prefix of the server's keys in Redis; null without a Redis tier. */
  get sharedPrefix(): string | null {
    return this.#shared?.prefix ?? null
  }

  /** Create a server for `root` (which must be an existing directory). */
  static async create(opts: ServerOptions): Promise<CacheServer> {
    const jail = await Jail.open(opts.root)
    let shared: SharedTier | null = null
    try {
      shared = opts.redis === undefined ? null : await openSharedTier(opts.redis, opts)
      return new CacheServer(jail, opts, shared)
    } catch (err) {
      // A server that does not start leaves nothing open: the root's descriptor, a connection to Redis.
      jail.close()
      await shared?.close()
      throw err
    }
  }

  /** Resolves, once a writable server has removed the temporary files of dead servers' uploads, with their count. */
  get orphanedUploadsRemoved(): Promise<number> {
    return this.#cleanup
  }

  /** Serve one connection over any duplex byte stream. */
  handle(duplex: Duplex): Connection | null {
    this.#totalConnections++
    if (this.#slots.full) {
      // Refused before HELLO (the client's connect fails with EBUSY); close() cuts it off at once.
      this.#slots.refused(duplex)
      refuseBusy(duplex, this.#slots.size, this.checksum)
      return null
    }
    const idleTimeout = this.#opts.idleTimeout ?? DEFAULT_IDLE_TIMEOUT
    const requestTimeout = this.#opts.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT
    // Failed tokens are throttled per client address; connections without one (unix sockets, other duplexes) share one.
    const peer = (duplex as Partial<net.Socket>).remoteAddress ?? 'local'
    const shortCircuit = this.#store !== null && this.#opts.shortCircuit !== false && isLocalPeer(duplex)
    const conn = serveConnection(duplex, this.#ctx, {
      token: this.#opts.token,
      authTimeout: this.#opts.authTimeout ?? DEFAULT_AUTH_TIMEOUT,
      authSchedule: (ok, deadline) => this.#throttle.schedule(peer, ok, deadline),
      requestTimeout,
      idleTimeout,
      pageSize: this.pageSize,
      checksum: this.checksum,
      maxRequest: this.#opts.maxRequest ?? DEFAULT_MAX_REQUEST,
      maxInFlight: this.#opts.maxInFlight,
      minPageSize: this.#opts.minPageSize,
      retries: this.#opts.retries,
      heartbeat: this.#opts.heartbeat,
      onNack: () => void this.#nacks++,
      hello: { protocol: PROTOCOL_VERSION, server: `cacheserv-pipe/${VERSION}`, checksum: this.checksum, pageSize: this.pageSize, auth: this.#opts.token !== undefined, idleTimeout, requestTimeout, maxRequest: this.#opts.maxRequest ?? DEFAULT_MAX_REQUEST, shm: shortCircuit },
      grants: shortCircuit ? new LeaseGrants(grantLimit(this.cache.stats().cacheLimit, this.cache.blockSize)) : undefined,
      onData: (n) => void (this.#bytesServed += n),
    })
    this.#slots.add(conn, noteConnectionClosed)
    return conn
  }

  stats(): ServerStats {
    return {
      ...this.cache.stats(),
      ...this.meta.stats(),
      ...(this.#shared?.stats() ?? NO_SHARED_TIER),
      nacks: this.#nacks,
      bufferedBytes: this.#memory.used,
      bufferedLimit: this.#memory.limit,
      stalledClosed: this.#slots.stalledClosed,
      connections: this.#slots.size,
      totalConnections: this.#totalConnections,
      bytesServed: this.#bytesServed,
      locatedBytes: this.#locatedBytes,
      httpBytesServed: this.#httpBytes,
      pinnedFiles: this.pins.files,
      shm: this.#store ? { dir: this.#store.dir, blocks: this.#store.slots, bytes: this.#store.used } : null,
      uptime: (Date.now() - this.#started) / 1000,
    }
  }

  /** Load a file or a tree into the cache (as the `warm` command does); `onProgress` sees how far it got. */
  async warm(path = '', onProgress?: (p: WarmProgress) => void): Promise<WarmProgress> {
    return this.#warms.run(path, onProgress)
  }

  /** Listen on an address (see parseAddress); resolves with the URL actually bound. */
  async listen(address: string | Address): Promise<string> {
    if (this.#net) throw new Error('server is already listening')
    const addr = typeof address === 'string' ? parseAddress(address) : address
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      socket.on('error', (err) => debug('socket error %s', err.message))
      this.handle(socket)
    })
    this.#net = server
    try {
      if (addr.kind === 'unix') {
        await listenUnix(server, addr.path, this.#opts.socketMode ?? 0o600)
        this.#unixPath = addr.path
      } else {
        await listenOn(server, { host: addr.host, port: addr.port })
      }
    } catch (err) {
      // Not bound (EADDRINUSE, EACCES): the caller gets the error; the server may listen elsewhere.
      this.#net = null
      const e = err as NodeJS.ErrnoException
      throw Object.assign(new Error(`cannot listen on ${formatAddress(addr)}: ${e.message.replace(/^listen \w+: /, '')}`, { cause: err }), { code: e.code })
    }
    // Errors after binding (EMFILE on accept) are the server's to report.
    server.on('error', (err) => this.emit('error', err))
    const url = this.url
    debug('listening on %s', url)
    return url
  }

  /** The URL the server is listening on. */
  get url(): string {
    const a = this.#net?.address()
    if (!a) throw new Error('server is not listening')
    if (typeof a === 'string') return formatAddress({ kind: 'unix', path: a })
    return formatAddress({ kind: 'tcp', host: a.address, port: a.port })
  }

  /**
   * Serve the same root over HTTP too (see lib/http/gateway.ts), on a TCP
   * address (`HOST:PORT`, `http://HOST:PORT`); resolves with its URL.
   */
  async listenHttp(address: string): Promise<string> {
    if (this.#http) throw new Error('the HTTP gateway is already listening')
    const addr = parseAddress(address.replace(/^http:\/\//i, '').replace(/\/$/, ''))
    if (addr.kind !== 'tcp') throw error('EBADREQ', 'the HTTP gateway listens on TCP only: give HOST:PORT')
    const gateway = createGateway({
      ctx: this.#ctx,
      token: this.#opts.token,
      authDelay: (peer) => this.#throttle.schedule(peer, false, Infinity) ?? 0,
      admit: (conn) => this.#admit(conn),
      onData: (n) => {
        this.#bytesServed += n
        this.#httpBytes += n
      },
      onResponse: (method, status, seconds) => this.#metrics.observe('http', method, status, seconds),
      stats: () => this.stats(),
      metrics: () => this.#metrics.text(),
      idleTimeout: this.#opts.idleTimeout ?? DEFAULT_IDLE_TIMEOUT,
      requestTimeout: this.#opts.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT,
      maxRequest: this.#opts.maxRequest ?? DEFAULT_MAX_REQUEST,
    })
    await listenOn(gateway, { host: addr.host, port: addr.port })
    gateway.on('error', (err) => this.emit('error', err))
    this.#http = gateway
    const url = this.httpUrl
    debug('listening on %s', url)
    return url
  }

  /** The URL the HTTP gateway is listening on. */
  get httpUrl(): string {
    const a = this.#http?.address()
    if (!a || typeof a === 'string') throw new Error('the HTTP gateway is not listening')
    return a.address.includes(':') ? `http://[${a.address}]:${a.port}` : `http://${a.address}:${a.port}`
  }

  /** An HTTP connection takes a slot like a socket connection; false when none is left. */
  #admit(conn: HttpConnection): boolean {
    this.#totalConnections++
    if (this.#slots.full) return false
    this.#slots.add(conn)
    return true
  }

  /**
   * Stop listening and close every connection; resolves when all are gone.
   * With `grace` (ms), requests already running may finish first (new ones
   * get ESHUTDOWN); whatever still runs after it is cut off.
   */
  async close({ grace = 0 }: { grace?: number } = {}): Promise<void> {
    const server = this.#net
    this.#net = null
    const gateway = this.#http
    this.#http = null
    const stopped = Promise.all([server, gateway].map((s) => (s ? new Promise<void>((resolve) => s.close(() => resolve())) : undefined)))
    if (grace > 0) await this.#slots.drain(grace)
    this.#slots.destroy()
    // Refused HTTP connections are the gateway's only.
    gateway?.closeAllConnections()
    // A warm started through warm() (--warm) belongs to no connection: stop it too; it closes its files.
    const warms = this.#warms.stop()
    this.#cleanupStop.abort()
    await Promise.all([stopped, this.#slots.closed(), this.#cleanup, warms])
    if (this.#unixPath) await unlink(this.#unixPath).catch(() => {})
    this.#unixPath = null
    // The root's descriptor goes once the lookups still under way are done.
    this.#ctx.jail.close()
    this.meta.close()
    // Nothing is sent any more: the store's pages go back (a clean exit leaves nothing to adopt).
    this.#store?.close()
    await this.#shared?.close()
  }
}

export async function createServer(opts: ServerOptions): Promise<CacheServer> {
  return CacheServer.create(opts)
}

/** Bytes one connection's grants may hold: an eighth of the cache (at most 256 MiB), one block at least. */
function grantLimit(cacheSize: number, blockSize: number): number {
  return Math.max(blockSize, Math.min(Math.floor(cacheSize / 8), 256 * 1024 * 1024))
}

/** Bytes as MiB for messages. */
function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}
