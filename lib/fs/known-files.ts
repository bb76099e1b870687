/**
 * Files the server opened and checked recently, by client path, with the
 * identity (device, inode, size, mtime) they had. A read of a known path
 * whose `stat` still shows that identity is the very file that was checked:
 * its cached blocks can be served without opening it again.
 *
 * Why: opening a file the safe way costs a thread-pool round trip per
 * directory on the way and three more (the O_PATH open, its fstat, the open
 * for reading), each a pair of context switches, which on a two-core machine
 * cost more than serving 110 KB from RAM. A stat of a path served moments
 * ago finds its inode in the kernel's cache, so it is done synchronously, in
 * microseconds. It starts from the root's descriptor (Jail.under).
 *
 * Safe because the identity names the inode: a path swapped for another
 * file, or for a symlink leading out of the root, stats as another identity,
 * and the read takes the full path (the jail's walk). The stat follows
 * symlinks, but its result is only compared with the remembered identity,
 * never reported, and a stat opens nothing.
 */
import { statSync } from 'node:fs'
import QuickLRU from 'quick-lru'
import { Jail } from './jail.js'
import { identityOf } from './open-file.js'

export interface KnownFile {
  /** Cache key of this version of the file (see identityOf). */
  key: string
  size: number
  mtimeMs: number
}

/** Paths remembered at most; ~200 bytes each. */
const MAX_KNOWN = 65_536

export class KnownFiles {
  /** Reads served by the shortcut: the file was not opened. */
  hits = 0
  #jail: Jail
  #known: QuickLRU<string, KnownFile>
  /** Paths requests are reading now, with how many. */
  #reading = new Map<string, number>()

  constructor(jail: Jail, max = MAX_KNOWN) {
    this.#jail = jail
    this.#known = new QuickLRU({ maxSize: max })
  }

  /** Remember that `path` (a client path) was opened and checked as `file`. */
  remember(path: string, file: KnownFile): void {
    this.#known.set(Jail.segments(path).join('/'), { key: file.key, size: file.size, mtimeMs: file.mtimeMs })
  }

  /** `path` was opened and checked lately (no stat: whether it is unchanged is for current() to say). */
  knows(path: string): boolean {
    try {
      return this.#known.has(Jail.segments(path).join('/'))
    } catch {
      return false // a path the jail refuses: the request says so
    }
  }

  /**
   * Mark `paths` as being read (opened, checked, loaded) until `done()`: a prefetch leaves them
   * to their reader. By the paths as the request spells them (no parse on a hot path): an
   * epoch's read-ahead names its files as its reads do.
   */
  reading(paths: readonly string[]): () => void {
    for (const p of paths) this.#reading.set(p, (this.#reading.get(p) ?? 0) + 1)
    let done = false
    return () => {
      if (done) return
      done = true
      for (const p of paths) {
        const n = this.#reading.get(p)! - 1
        if (n === 0) this.#reading.delete(p)
        else this.#reading.set(p, n)
      }
    }
  }

  /** A request is reading `path` now (see reading()), spelled so. */
  isBeingRead(path: string): boolean {
    return this.#reading.has(path)
  }

  /** The file remembered at `path`, unchecked (no stat): a hint, for what may be wrong at no cost, such as a prefetch. */
  remembered(path: string): KnownFile | null {
    try {
      return this.#known.peek(Jail.segments(path).join('/')) ?? null
    } catch {
      return null // a path the jail refuses
    }
  }

  forget(path: string): void {
    this.#known.delete(Jail.segments(path).join('/'))
  }

  /** The remembered file at `path`, if a stat shows it unchanged now; else null (and it is forgotten). */
  current(path: string): KnownFile | null {
    const { parts, dirOnly } = Jail.parse(path)
    if (dirOnly) return null // 'f.bin/' names a directory: the full path says ENOTDIR
    // One spelling per path: 'a//b/./c' is 'a/b/c'.
    const name = parts.join('/')
    const known = this.#known.get(name)
    if (!known) return null
    let st
    try {
      st = statSync(this.#jail.under(parts), { bigint: true, throwIfNoEntry: false })
    } catch {
      st = undefined // ENOTDIR, ELOOP, EACCES...: the full path reports it in the jail's words
    }
    if (st?.isFile() && identityOf(st) === known.key) return known
    this.#known.delete(name)
    return null
  }
}
