/**
 * What a CacheServer can be told, and what it does when it is not told: every
 * server option and its default in one place (the CLI's flags and --help
 * take their defaults from here).
 */
import type { PolicyName } from '../cache/policy.js'
import type { ChecksumName } from '../protocol/constants.js'

export interface ServerOptions {
  /** Directory to serve; every path is resolved inside it. */
  root: string
  /** Byte budget of the block cache. Default 1 GiB. */
  cacheSize?: number
  /**
   * Keep directory listings in RAM, kept coherent by inotify (lib/fs/meta-cache.ts), within an
   * eighth of cacheSize taken out of it. Default true; false reads every listing afresh.
   */
  metaCache?: boolean
  /** Payload bytes per DATA frame. Default 256 KiB. */
  pageSize?: number
  /** Payload checksum of every frame. Default crc32. */
  checksum?: ChecksumName
  /** Cache block size. Default 1 MiB. */
  blockSize?: number
  /** Longest request line in bytes. Default 64 KiB. */
  maxRequest?: number
  /** Requests one connection may have running at once. Default 32. */
  maxInFlight?: number
  /** Smallest page size NACKs shrink a request's pages to. Default 1 KiB. */
  minPageSize?: number
  /** NACKs in a row at the smallest page size, without progress, before a read fails with ECORRUPT. Default 8. */
  retries?: number
  /** Ms a slow command (ls, stat, stats, evict) may be silent before it sends an empty PROGRESS. Default 1000. */
  heartbeat?: number
  /** Allow `write`. Default false: the server is read-only. */
  writable?: boolean
  /** Cache eviction policy: 'tinylfu' (default, scan-resistant) or 'lru'. */
  policy?: PolicyName
  /** Shared secret every connection must present first (`auth`); none by default. */
  token?: string
  /** Connections served at once; more get EBUSY. Default 256. */
  maxConnections?: number
  /** Close a connection that for this many ms neither sent a complete request nor took any output (idle, or a reader frozen). Default 600000; 0 never. */
  idleTimeout?: number
  /**
   * Ms a file must be left unchanged (by its ctime) before its bytes are
   * trusted: a read of a file written to more recently waits until then, and
   * only settled versions are cached. Default 1000.
   */
  settle?: number
  /** Ms within which a request line must arrive whole once its first byte has, and the first request after HELLO. Default 10000; 0 no limit. */
  requestTimeout?: number
  /** With `token`: ms from HELLO within which a connection must authenticate (EAUTH otherwise). Default 5000; 0 no limit. */
  authTimeout?: number
  /** With `token`: ms before a wrong token is answered; doubles with each further failure from the same address. Default 1000; 0 no throttling. */
  authBackoff?: number
  /** Permissions of a unix socket file. Default 0o600: only this user may connect. */
  socketMode?: number
  /**
   * Bytes of file data the server may hold outside the cache: blocks being
   * read from disk and blocks on their way to clients that the cache does not
   * keep. Reads wait for room; connections that hold such bytes and stopped
   * reading are closed when others wait. Default 1/64 of the cache size, from
   * 4 to 16 MiB (defaultMaxBuffered).
   */
  maxBuffered?: number
  /**
   * Directory of the shared-memory block store (see README, "Shared memory");
   * blocks a crashed server left there are adopted. Default: a fresh one under
   * /dev/shm, or the heap if that cannot be had. False: the heap.
   */
  shmDir?: string | false
  /** A store that cannot be opened leaves blocks on the heap, with a warning, instead of failing. Default: true only without shmDir. */
  shmOptional?: boolean
  /** Let same-host clients read blocks from the store themselves (`locate`). Default true (with a store). */
  shortCircuit?: boolean
  /**
   * Redis seed URLs (redis://HOST:PORT, comma-separated or a list): a second block tier shared
   * with other hosts' servers (see README, "Several machines"). A cluster is found and used as one.
   */
  redis?: string | readonly string[]
  /** Put before every key in Redis, so several datasets can share one cluster. Default 'cacheserv:'. */
  redisPrefix?: string
  /** Ms a Redis lookup or store may take before the disk is read instead. Default 500. */
  redisTimeout?: number
  /**
   * Name each file's inode number in its Redis keys. Default true: right where every host sees
   * the same numbers (NFS, CephFS, Lustre). False for filesystems that number inodes per host
   * (FUSE bucket mounts), at the risk README "Several machines" describes.
   */
  redisInode?: boolean
}

export const DEFAULT_CACHE_SIZE = 1024 * 1024 * 1024
/**
 * Default file data held outside the cache: 1/64 of the cache, from 4 to 16
 * MiB. With the blocks clients that do not read keep after the cache has let
 * them go, and garbage not yet collected, that stays within the 5 % of the
 * cache the documented memory bound allows beyond the cached bytes.
 */
export function defaultMaxBuffered(cacheSize: number): number {
  return Math.min(16 * 1024 * 1024, Math.max(4 * 1024 * 1024, Math.floor(cacheSize / 64)))
}
export const DEFAULT_MAX_CONNECTIONS = 256
export const DEFAULT_REDIS_PREFIX = 'cacheserv:'
export const DEFAULT_REDIS_TIMEOUT = 500
export const DEFAULT_IDLE_TIMEOUT = 600_000
export const DEFAULT_GRACE = 10_000
export const DEFAULT_REQUEST_TIMEOUT = 10_000
export const DEFAULT_AUTH_TIMEOUT = 5_000
export const DEFAULT_AUTH_BACKOFF = 1_000
