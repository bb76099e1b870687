/**
 * Where a server keeps its blocks: a shared-memory store (ShmStore) when it
 * can have one, else the heap. A directory the user names must work, or the
 * server does not start; the default one falls back to the heap with a
 * warning (a container's /dev/shm is often 64 MiB).
 */
import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { ShmStore } from '../cache/shm-store.js'
import { sweepStores } from '../cache/store-sweep.js'

export const SHM_ROOT = '/dev/shm'
/** Every store a server makes under SHM_ROOT is named so (the sweep finds them by it). */
const STORE_PREFIX = 'cacheserv-pipe-'

export interface StoreChoice {
  /** The store's directory; a store a crashed server left there is adopted. Undefined: a fresh one under /dev/shm. False: the heap. */
  dir?: string | false
  /** A store that cannot be opened leaves the blocks on the heap (with a warning) instead of failing. Default: only for the default directory. */
  optional?: boolean
  cacheSize: number
  blockSize: number
  /** Bytes of blocks the server may hold outside the cache (its memory budget). */
  outside: number
  /** The served directory (real path), noted in the store. */
  root: string
}

export interface OpenedStore {
  store: ShmStore | null
  /** Why the blocks are on the heap although a store was wanted. */
  warning?: string
}

export function openStore({ dir, optional = dir === undefined, cacheSize, blockSize, outside, root }: StoreChoice): OpenedStore {
  if (dir === false) return { store: null }
  sweepStores(SHM_ROOT, STORE_PREFIX)
  // Blocks take whole pages: a sixteenth more than the cache's bytes for small files' last pages.
  const bytes = cacheSize + Math.ceil(cacheSize / 16) + outside + 2 * blockSize
  try {
    return { store: ShmStore.open({ dir: dir ?? mkdtempSync(join(SHM_ROOT, STORE_PREFIX)), blockSize, bytes, root, temporary: dir === undefined }) }
  } catch (err) {
    if (!optional) {
      const e = err as NodeJS.ErrnoException
      // A system call's own error does not say what it was for: name the store, so it is not taken for the root's.
      if (e.syscall) throw Object.assign(new Error(`the shared-memory store ${dir}: ${e.message}`), { code: e.code })
      throw err
    }
    return { store: null, warning: `${(err as Error).message}; cached blocks stay on the heap and same-host clients read over the socket` }
  }
}

/** The store directory a server of `root` uses unless told otherwise: the same one after a restart, so it adopts what a crashed one left. */
export function defaultStoreDir(realRoot: string): string {
  const uid = process.getuid?.() ?? 0
  return join(SHM_ROOT, `${STORE_PREFIX}${uid}-${createHash('sha256').update(realRoot).digest('hex').slice(0, 16)}`)
}
