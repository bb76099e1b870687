/**
 * Files pinned in the cache, by path: their blocks stay in RAM whatever the
 * eviction policy does (BlockCache.pinBlock), within the cache's budget.
 *
 * A pin is by path, so a pinned file that changes on disk stays pinned: the
 * next read that opens the new version (or `pin` again) loads and pins it,
 * and the old version's blocks are dropped then; until then they are never
 * served (blocks are keyed by version). Pinning more than fits fails with
 * ENOSPC and pins nothing; so does a pin that fails half-way (a file that
 * changes while it is loaded, say).
 */
import type { BlockCache } from '../cache/block-cache.js'
import createDebug from '../debug.js'
import { error } from '../errors.js'
import { Jail } from '../fs/jail.js'
import { openFileAt } from '../fs/open-file.js'
import type { Settle } from '../fs/settle.js'
import { walk, type WalkedFile } from '../fs/walk.js'

const debug = createDebug('cacheserv:pins')

interface Pinned {
  key: string
  size: number
}

export interface PinResult {
  /** Files (and their bytes) pinned or unpinned by this call. */
  files: number
  bytes: number
  /** All pinned now. */
  pinnedFiles: number
  pinnedBytes: number
}

export class Pins {
  #jail: Jail
  #cache: BlockCache
  #settle: Settle
  /** Client path ('a/b.bin') → the version pinned. */
  #files = new Map<string, Pinned>()
  /** One pin or unpin at a time: each checks the budget against the others. */
  #queue: Promise<unknown> = Promise.resolve()

  constructor(jail: Jail, cache: BlockCache, settle: Settle) {
    this.#jail = jail
    this.#cache = cache
    this.#settle = settle
  }

  get files(): number {
    return this.#files.size
  }

  /** Whether the file at this client path is pinned. */
  has(path: string): boolean {
    return this.#files.has(normal(path))
  }

  /** Pin a file or every file under a directory (loading what is not cached). */
  pin(path: string, signal?: AbortSignal): Promise<PinResult> {
    return this.#serial(() => this.#pin(path, signal))
  }

  /** Unpin a file or every pinned file under a directory (`''`: all): their blocks become ordinary cache entries. */
  unpin(path: string): Promise<PinResult> {
    return this.#serial(async () => {
      const p = normal(path)
      let files = 0
      let bytes = 0
      for (const [rel, v] of [...this.#files]) {
        if (p !== '' && rel !== p && !rel.startsWith(`${p}/`)) continue
        this.#cache.unpin(v)
        this.#files.delete(rel)
        files++
        bytes += v.size
      }
      return this.#result(files, bytes)
    })
  }

  /** A read opened `path` as version `key`: a pinned path now at another version is pinned again, in the background. */
  refresh(path: string, key: string): void {
    const was = this.#files.get(normal(path))
    if (!was || was.key === key) return
    this.pin(path).catch((err: Error) => debug('re-pinning %s after a change failed: %s', path, err.message))
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return run
  }

  async #pin(path: string, signal?: AbortSignal): Promise<PinResult> {
    const found: WalkedFile[] = []
    for await (const f of walk(this.#jail, path, signal)) found.push(f)
    // What pinning them would add: files not pinned at this version, less the old versions they replace.
    let adds = 0
    for (const f of found) {
      const was = this.#files.get(f.rel)
      if (was?.key !== f.key) adds += f.size - (was?.size ?? 0)
    }
    const limit = this.#cache.pinLimit
    if (this.#cache.pinnedBytes + adds > limit) {
      throw error('ENOSPC', `pinning ${Jail.shown(path)} would pin ${this.#cache.pinnedBytes + adds} bytes; the cache can pin at most ${limit} (--cache-size less two blocks)`)
    }
    const done: { rel: string; pinned: Pinned; was?: Pinned }[] = []
    let bytes = 0
    try {
      for (const f of found) {
        const was = this.#files.get(f.rel)
        if (was?.key === f.key) continue
        const file = await openFileAt(this.#jail, f.names, f.rel, this.#settle)
        try {
          const blocks = Math.ceil(file.size / this.#cache.blockSize)
          const pinned = { key: file.key, size: file.size }
          done.push({ rel: f.rel, pinned, was })
          for (let i = 0; i < blocks; i++) {
            signal?.throwIfAborted()
            this.#cache.pinBlock(file, i, await this.#cache.block(file, i, { uncounted: true, signal }))
          }
        } finally {
          await file.fh.close()
        }
        bytes += f.size
      }
    } catch (err) {
      // Nothing of this call stays pinned.
      for (const d of done) this.#cache.unpin(d.pinned)
      throw err
    }
    for (const d of done) {
      if (d.was) this.#cache.unpin(d.was, false) // the old version can never be served again
      this.#files.set(d.rel, d.pinned)
    }
    return this.#result(done.length, bytes)
  }

  #result(files: number, bytes: number): PinResult {
    return { files, bytes, pinnedFiles: this.#files.size, pinnedBytes: this.#cache.pinnedBytes }
  }
}

function normal(path: string): string {
  return Jail.segments(path).join('/')
}
