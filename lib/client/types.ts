/**
 * What the client's calls take and return: the shapes of the server's
 * answers (PROTOCOL.md) and the client's options.
 */
import type { WarmProgress } from '../commands/warm.js'
import type { ServerStats } from '../server/server.js'
import type { CorruptOptions } from '../stages/corrupt.js'
import type { ReadInfo } from './read-receiver.js'

export interface Hello {
  protocol: number
  server: string
  checksum: string
  pageSize: number
  /** The server wants a token (`auth`) before anything else. */
  auth?: boolean
  /** Ms without a byte either way after which the server closes a connection; 0 or absent: never. */
  idleTimeout?: number
  /** Ms after HELLO within which the server wants the first request; 0 or absent: no limit. */
  requestTimeout?: number
  /** Longest request line the server takes, in bytes; absent in older servers. */
  maxRequest?: number
  /** This connection may read cached blocks from the server's shared memory itself (`locate`). */
  shm?: boolean
}

export interface Entry {
  name: string
  type: 'file' | 'dir' | 'other'
  /** Files only. */
  size?: number
}

/** A file found by `tree`: its path under the root and its size. */
export interface TreeFile {
  path: string
  size: number
}

export interface StatResult {
  path: string
  type: 'file' | 'dir' | 'other'
  size: number
  mtimeMs: number
  mtime: string
  cachedBytes: number
  cached: boolean
  /** Pinned in the cache (see pin). */
  pinned?: boolean
}

/** What pin and unpin did, and what is pinned now. */
export interface PinResult {
  files: number
  bytes: number
  pinnedFiles: number
  pinnedBytes: number
}

/** The server's counters, as the `stats` command returns them. */
export type ServerStatsResult = ServerStats

/** What `warm` reports (PROGRESS and RESULT), and for a list the first paths it skipped with their codes. */
export type WarmResult = WarmProgress & {
  skippedPaths?: { path: string; code: string }[]
}

export interface EvictResult {
  files: number | null
  blocks: number
  bytes: number
}

export interface ReadOptions {
  /** First byte to read. Default 0. */
  offset?: number
  /** Bytes to read; clipped at the end of the file. Default: to the end. */
  length?: number
  /** Bytes the returned stream buffers before it holds the connection. Default 1 MiB. */
  highWaterMark?: number
  /**
   * readChunks only: on the server's host (HELLO `shm`), take the bytes from
   * the server's shared memory, 16 MiB at a time (`locate` of a range), as
   * long as it has them there; the rest comes over the socket. Each range
   * must be of the version the first one was (size and mtime), or ECHANGED.
   * One more round trip per range, and the copy out of shared memory is
   * made in this thread: it pays where the consumer keeps the bytes in this
   * process, or with `pipe`. Default false.
   */
  sharedMemory?: boolean
  /**
   * readChunks with `sharedMemory` only: the pipe `onChunk` writes to, made
   * ready (widened) when the read turns out longer than SPLICE_MIN. The
   * blocks are moved into it from shared memory without a copy (splice(2)),
   * all but the last pipe-full, which goes through `onChunk`: once it is
   * written, the pipe no longer refers to the server's pages, which may then
   * be reused. The client CLI's stdout.
   */
  pipe?: () => Promise<PipeTarget | null>
}

/** A pipe that blocks of the server's shared memory can be moved into (native/shm.cc). */
export interface PipeTarget {
  /** The most the pipe holds, bytes. */
  size(): number
  /** Bytes written into the pipe and not yet read. */
  unread(): number
  /** Move up to `length` bytes of the file `fd` at `offset` into the pipe, blocking while it is full; returns the bytes moved. */
  splice(fd: number, offset: number, length: number): number
}

export interface ConnectOptions {
  /** Give up connecting (and waiting for HELLO) after this many ms. Default 10000. */
  timeout?: number
  /**
   * With requests waiting and the connection not held by a slow consumer,
   * this many ms without a byte means something was lost: every request in
   * flight is asked again. Default 5000.
   */
  progressTimeout?: number
  /**
   * Damage received bytes on purpose (see corrupt()), to watch the NACK path
   * repair them. For diagnostics and tests; the HELLO is always spared.
   */
  faults?: CorruptOptions
  /** Token for a server that needs one. Default: $CACHESERV_TOKEN. */
  token?: string
  /**
   * When the connection dies (ECLOSED) or the server shuts down (ESHUTDOWN)
   * before a read, stat, ls or stats is answered, it is sent again on a new
   * connection after each of these waits (ms) in turn, until one attempt
   * gets an answer; then it fails with the last attempt's error. Default
   * [100, 300, 1000, 3000]; [] turns retrying off.
   */
  retryDelays?: readonly number[]
  /**
   * On the server's host (HELLO `shm`), readMany asks where each file's
   * cached blocks are (`locate`, `inFlight` requests pipelined) and reads them
   * from the server's shared memory instead of the socket; files it cannot place
   * there (under 16 KiB, or more than the connection may hold) come over the
   * socket. Default true; no effect with `faults` (which act on the socket).
   */
  shortCircuit?: boolean
}

/** One read as its consumer sees it, over however many attempts it takes. */
export interface ReadHandle {
  /** What the first START announced. */
  readonly info: ReadInfo | null
  /** NACKs sent, over every attempt. */
  readonly nacks: number
  /** The consumer left: stop the read (on the server too), and make no new attempt. */
  release(): void
}

export interface ClientStats {
  /** NACKs sent. */
  nacks: number
  /** Times the byte stream lost sync (bad header, garbage). */
  lostSync: number
  /** Times nothing arrived within the progress timeout while requests waited. */
  timeouts: number
  /** Faults injected by the `faults` option. */
  injected: number
}
