/**
 * The native half of the shared-memory store (native/shm.cc, built by
 * `npm run build` or at install): mapping a file, ArrayBuffers over ranges
 * of it, punching out a file's pages; a cheap open of a file under the root;
 * directories read whole and watched with inotify (the metadata cache); and
 * for the client CLI, a pipe's size and splice(2) into it. Null where it
 * was not built.
 */
import { createRequire } from 'node:module'
import createDebug from '../debug.js'

const debug = createDebug('cacheserv:shm')

/** The address of a file mapped shared; never unmapped (views may outlive it). */
export type Mapping = bigint

export interface ShmNative {
  /** The file's first `length` bytes (a multiple of 4096), mapped shared. */
  mapFile(fd: number, length: number): Mapping
  /** An ArrayBuffer over `length` bytes of the mapping at `offset`: unchecked, the caller stays inside the mapping. */
  view(mapping: Mapping, offset: number, length: number): ArrayBuffer
  /** Give the file's pages in the range back to the tmpfs; its size and mappings stay (they then read zeros). */
  punchHole(fd: number, offset: number, length: number): void
  /** The pipe's buffer size, after asking for at least `bytes` if given (F_SETPIPE_SZ). */
  pipeSize(fd: number, bytes?: number): number
  /** Bytes in the pipe not yet read (FIONREAD). */
  pipeUnread(fd: number): number
  /** Move up to `length` bytes of file `fd` at `offset` into the pipe without a copy, blocking while it is full; the bytes moved. Throws with `code` (EPIPE). */
  splice(fd: number, offset: number, pipe: number, length: number): number
  /**
   * On the thread pool: open `path` under the directory descriptor `dir` if it has no symlink and is a regular file
   * (lib/fs/open-beneath.ts). `code` an errno name or null; `fd` -1 for anything but a regular file; `stat` [dev, ino, mode, size, mtimeNs, ctimeNs].
   */
  openBeneath(dir: number, path: string, callback: (code: string | null, fd: number, stat: BigInt64Array) => void): void
  /**
   * On the thread pool: `length` bytes of the file at `position` into `buffer` at `offset` (fewer only where the file
   * ends), then its fstat (lib/fs/fd-file.ts). `code` an errno name or null; `stat` as openBeneath's.
   */
  readStat(fd: number, buffer: Buffer, offset: number, length: number, position: number, callback: (code: string | null, bytesRead: number, stat: BigInt64Array) => void): void
  /**
   * On the thread pool: `length` bytes of the file at `position` moved into file `dst` at `dstOffset` through a pipe
   * (fewer only where the source ends), then the source's fstat (lib/fs/fd-file.ts). As readStat's otherwise.
   */
  spliceStat(fd: number, position: number, length: number, dst: number, dstOffset: number, callback: (code: string | null, bytesMoved: number, stat: BigInt64Array) => void): void
  /**
   * On the thread pool: the directory at `path` read whole (lib/fs/listing.ts). `names` NUL-ended in one string;
   * `kinds` 0 file, 1 directory, 2 symlink, 3 other, 4 unknown; `stats` (with `withStats`) [dev, ino, size, mtimeNs,
   * ctimeNs, nlink] per entry, from lstat; `self` the directory's own six and its filesystem type.
   */
  listDir(
    path: string,
    withStats: boolean,
    callback: (code: string | null, names: string | null, kinds: Uint8Array | null, stats: BigInt64Array | null, self: BigInt64Array | null) => void,
  ): void
  /** A new inotify descriptor, non-blocking (lib/fs/dir-watch.ts). */
  watchInit(): number
  /** Watch the directory `path` names (followed) for changes to it and its entries; throws with `code` (ENOSPC: no watches left). */
  watchAdd(fd: number, path: string): number
  watchRemove(fd: number, wd: number): void
  /** The queued events as [wd, mask] pairs, without waiting. */
  watchRead(fd: number): Int32Array
  /** A descriptor of /proc/self/mountinfo, or -1. */
  mountsOpen(): number
  /** A filesystem was mounted or unmounted since the last call (poll, without waiting). */
  mountsChanged(fd: number): boolean
}

let loaded: ShmNative | null | undefined

export function shmNative(): ShmNative | null {
  if (loaded !== undefined) return loaded
  try {
    // dist/lib/cache → the package root.
    loaded = createRequire(import.meta.url)('../../../native/build/Release/shm.node') as ShmNative
  } catch (err) {
    debug('native/shm.node not loaded: %s', (err as Error).message)
    loaded = null
  }
  return loaded
}
