/**
 * The client: one connection, many requests in flight. Requests go out as
 * JSON lines. Replies are decoded and routed by id to each request's
 * handler within the socket's read callback (link.ts): a page is copied at
 * most once, into memory its consumer keeps (none at all for readChunks). Backpressure: when a
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
 *
 * Client is the public face of the parts that do this: connections.ts (the
 * connection, its replacement, the retry rule), requests.ts (RESULT and
 * streamed requests), resumable-read.ts, tree.ts, readv.ts (readEntries),
 * located-reads.ts (shared memory) and upload.ts.
 */
import { type Address, DEFAULT_ADDRESS } from '../address.js'
import { error } from '../errors.js'
import { MAX_UPLOADS_PER_CONNECTION } from '../protocol/constants.js'
import { Connections } from './connections.js'
import type { ReadInfo } from './read-receiver.js'
import type { ReadStream } from './read-stream.js'
import type { BatchEntry, BatchItem } from './read-batches.js'
import { READV_BATCH, readEntries } from './readv.js'
import { request } from './requests.js'
import { readBuffer, readChunks, readStream } from './resumable-read.js'
import { pagedTree, streamedTree } from './tree.js'
import { LocatedReads } from './located-reads.js'
import { upload, type UploadSource } from './upload.js'
import { warmList } from './warm-list.js'
import type { Hello, Entry, TreeFile, StatResult, PinResult, ServerStatsResult, WarmResult, EvictResult, ReadOptions, ConnectOptions, ClientStats } from './types.js'
export type { Hello, Entry, TreeFile, StatResult, PinResult, ServerStatsResult, WarmResult, EvictResult, ReadOptions, ConnectOptions, ReadHandle, ClientStats } from './types.js'
export { idleMargin } from './link.js'
export { RETRY_DELAYS } from './connections.js'

export class Client {
  #conns: Connections
  #opts: ConnectOptions
  /** Reads from the server's shared memory, on its host. */
  #located = new LocatedReads({
    request: (op, args) => this.request(op, args),
    readFile: (path) => this.readFile(path),
    readChunksRemote: (path, onChunk, opts) => readChunks(this.#conns, path, onChunk, opts),
    maxRequest: () => this.#conns.link.hello.maxRequest,
  })
  /** Uploads running; the server runs MAX_UPLOADS_PER_CONNECTION at once (more get EBUSY), so the rest queue here. */
  #uploads = 0
  #uploadTurns: (() => void)[] = []

  private constructor(conns: Connections, opts: ConnectOptions) {
    this.#conns = conns
    this.#opts = opts
  }

  /** What the server announced when the connection (the latest one) opened. */
  get hello(): Hello {
    return this.#conns.link.hello
  }

  /** Connect to a server, wait for its HELLO, and authenticate if it asks. */
  static async connect(address: string | Address = process.env.CACHESERV_SERVER || DEFAULT_ADDRESS, opts: ConnectOptions = {}): Promise<Client> {
    return new Client(await Connections.open(address, opts), opts)
  }

  /** Read a file (or a range of it) as a stream of exactly its bytes. */
  read(path: string, opts: ReadOptions = {}): ReadStream {
    return readStream(this.#conns, path, opts)
  }

  /** Read a whole file (or range) into one Buffer: allocated once START says the length, filled page by page. */
  readFile(path: string, opts: ReadOptions = {}): Promise<Buffer> {
    return readBuffer(this.#conns, path, opts)
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
    return readChunks(this.#conns, path, onChunk, opts)
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
  tree(path = '', { suffix, pageSize }: { suffix?: string; pageSize?: number } = {}): AsyncGenerator<TreeFile, void, void> {
    return pageSize === undefined ? streamedTree(this.#conns, path, suffix) : pagedTree(this.#conns, path, suffix, pageSize)
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
   * `idle`: a prefetch, whose disk reads wait while requests' run.
   */
  warmList(paths: Iterable<string> | AsyncIterable<string>, onProgress?: (progress: WarmResult) => void, { idle = false }: { idle?: boolean } = {}): Promise<WarmResult> {
    return warmList((args, onP) => this.request<WarmResult>('warm', idle ? { ...args, idle } : args, onP), () => this.hello?.maxRequest, paths, onProgress)
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
  async write(path: string, data: UploadSource): Promise<{ path: string; size: number }> {
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

  async #upload(path: string, data: UploadSource): Promise<{ path: string; size: number }> {
    if (this.#conns.closed) throw this.#conns.closed
    // An upload that has not started may open a new connection; once started, it lives and dies with this one.
    const link = await this.#conns.acquire()
    const id = this.#conns.nextId()
    return upload(link, id, this.#conns.control(id, { link, released: false }), path, data)
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
      // Each entry also carries its file's size and mtime (readEntries): extra fields, no extra step.
      return yield* this.readEntries(paths, { batch: Math.max(inFlight, READV_BATCH) })
    }
    // On the server's host: a locate per batch of paths, then shared memory (located-reads.ts).
    yield* this.#located.many(paths, inFlight)
  }

  /**
   * Read files, or ranges of them, over the socket in `readv` batches (as
   * readMany does there), yielding each with the size and mtime of its file,
   * in order; a file that cannot be read rejects at its place. `items` may be
   * an async source: a batch goes out with what it has at hand. Past
   * `highWater` bytes of entries not yet taken the connection is held; with
   * Infinity it never is, for a consumer that bounds what it asks for.
   */
  readEntries(
    items: Iterable<string | BatchItem> | AsyncIterable<string | BatchItem>,
    { batch, highWater }: { batch?: number; highWater?: number } = {},
  ): AsyncGenerator<BatchEntry, void, void> {
    return readEntries(this.#conns, items, { batch, highWater })
  }

  /** Send any command answered by one RESULT frame (PROGRESS frames before it go to `onProgress`). */
  request<T>(op: string, args: Record<string, unknown> = {}, onProgress?: (progress: unknown) => void): Promise<T> {
    return request<T>(this.#conns, op, args, onProgress)
  }

  /** Requests still waiting for their end (on the current connection, or for the next one to open). */
  get pending(): number {
    return this.#conns.pending
  }

  /** This client's own counters of the reverse path, over all its connections (the server's are in `stats()`). */
  counters(): ClientStats {
    return this.#conns.counters()
  }

  /** Short-circuit reads are on, and this connection may make them (HELLO `shm`). */
  #shortCircuitOn(): boolean {
    return this.#opts.shortCircuit !== false && !this.#opts.faults && this.#conns.link.hello.shm === true
  }

  /** Close the connection; requests still in flight fail with ECLOSED. No new connection opens after this. */
  async close(): Promise<void> {
    this.#located.close()
    await this.#conns.close()
  }
}

/** Connect to a cacheserv-pipe server (default: $CACHESERV_SERVER or tcp://127.0.0.1:7070). */
export function connect(address?: string | Address, opts?: ConnectOptions): Promise<Client> {
  return Client.connect(address, opts)
}
