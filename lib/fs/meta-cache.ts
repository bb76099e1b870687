/**
 * Directory listings kept in RAM, with the lstat of every entry, so that `ls`,
 * `tree` and the walks of `warm` answer from memory: a restarted training
 * script lists its dataset (millions of files, for some) before it reads a
 * byte of it.
 *
 * Coherence: every directory held is watched with inotify (dir-watch.ts),
 * and the queue of events is read before the cache answers. Any change to a
 * directory or to one of its entries (created, deleted, renamed, written,
 * truncated, its attributes set) drops what is held of that directory. So a
 * listing is never served after a change to it has finished: the same
 * promise file blocks keep by their identity key. What inotify cannot see is
 * never kept:
 * - a directory on a filesystem where changes can come from elsewhere (NFS,
 *   SMB, FUSE, Ceph...): only local filesystems are trusted (LOCAL);
 * - a listing with a file of more than one name (a hard link): a write
 *   through a name in another directory is reported there only;
 * - a listing read while its directory changed.
 * A full event queue drops everything, and so does a filesystem mounted or
 * unmounted anywhere (which makes no inotify event).
 *
 * Directories are keyed by device and inode, not by path: a renamed
 * directory keeps what is held of it, and its old parent's listing (which a
 * rename changes) is dropped. The bytes held are counted and bounded
 * (`limit`); the least recently used directories go first.
 */
import createDebug from '../debug.js'
import { DirWatch, IN_DELETE_SELF, IN_IGNORED, IN_Q_OVERFLOW } from './dir-watch.js'
import type { Found } from './jail.js'
import { dirKeyOf, KIND_DIR, type Listing, linkedElsewhere, listingBytes, readListing } from './listing.js'

const debug = createDebug('cacheserv:meta')

/** statfs f_type of the filesystems whose every change inotify sees (no other host or daemon changes them behind it). */
const LOCAL = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0x794c7630, // overlayfs
  0x2fc12fc1, // zfs
  0xf2f52010, // f2fs
  0xca451a4e, // bcachefs
  0x3153464a, // jfs
  0x52654973, // reiserfs
])

/** How often the event queue is read while nobody asks (so it does not overflow while the server is idle). */
const DRAIN_MS = 1000

/** Where a walk or `ls` gets its listings: from the cache, or read each time. */
export interface Lister {
  /** The listing of a held directory; `withStats`: with every entry's lstat. */
  list(dir: Found, withStats: boolean): Promise<Listing>
  /** The listing held of entry `i` of `l` (a directory listed with stats), or null: then look it up and `list` it. `use` false: only asking, not a use (no hit counted). */
  child(l: Listing, i: number, use?: boolean): Listing | null

  /**
   * The entry `parts` names (at least one name), found through held listings
   * alone, from the root down: the listing that holds it and its index. Null
   * when a directory on the way is not held, or is a symlink (the jail
   * resolves those).
   */
  resolve(parts: readonly string[]): { listing: Listing; i: number } | null
  /**
   * What `make` gives for `key` of this listing, kept with the listing while
   * the cache holds it (its `size` counted with the listing's bytes): the
   * lines a streamed tree makes of a directory, made once.
   */
  memo<T>(l: Listing, key: string, make: () => T, size: (v: T) => number): T
}

/** No cache: every listing read afresh. */
export const plainLister: Lister = {
  list: (dir, withStats) => readListing(dir, withStats),
  child: () => null,
  resolve: () => null,
  memo: (_l, _key, make) => make(),
}

interface Held {
  wd: number
  /** Null once a change dropped it (the watch stays). */
  listing: Listing | null
  bytes: number
  /** Bumped by every change: a listing read across one is not kept. */
  gen: number
  /** What was made of the listing (Lister.memo); dropped with it. */
  memos: Map<string, unknown> | null
}

export interface MetaStats {
  metaHits: number
  metaMisses: number
  metaBytes: number
  metaDirs: number
}

export class MetaCache implements Lister {
  readonly limit: number
  #watch: DirWatch | null
  /** By "dev:ino", least recently used first. */
  #held = new Map<string, Held>()
  #byWd = new Map<number, string>()
  #bytes = 0
  #hits = 0
  #misses = 0
  #timer: NodeJS.Timeout | null = null
  /** Key of the root directory, once it has been listed: where resolve starts. */
  #root: string | null = null
  /** Asks the server to list the root again (resolve found it not held); when it last did. */
  #listRoot: () => void
  #rootAsked = 0
  /** The root is on a filesystem whose listings are not kept: resolve never asks for it again. */
  #rootElsewhere = false
  /** Bytes it may hold besides `limit` allowing it: what pinned blocks leave of the cache. */
  #room: () => number
  /** Called with the bytes held whenever they change (the block cache leaves that much room). */
  #onBytes: (bytes: number) => void

  constructor(
    limit: number,
    {
      watch = DirWatch.open(),
      onBytes = () => {},
      listRoot = () => {},
      room = () => Infinity,
    }: { watch?: DirWatch | null; onBytes?: (bytes: number) => void; listRoot?: () => void; room?: () => number } = {},
  ) {
    this.limit = limit
    this.#room = room
    this.#watch = watch
    this.#onBytes = onBytes
    this.#listRoot = listRoot
    if (!watch) debug('no inotify: listings are read each time')
  }

  async list(dir: Found, withStats: boolean): Promise<Listing> {
    this.#drain()
    const key = `${dir.st.dev}:${dir.st.ino}`
    if (dir.names.length === 0) this.#root = key
    const held = this.#held.get(key)
    if (held?.listing && (held.listing.stats || !withStats)) {
      this.#hits++
      this.#touch(key, held)
      return held.listing
    }
    this.#misses++
    // The watch goes on before the directory is read: a change while it is read then bumps `gen`.
    const watched = held ?? this.#watchDir(key, dir)
    if (!watched) return readListing(dir, withStats)
    const gen = watched.gen
    const listing = await readListing(dir, withStats)
    this.#drain()
    if (this.#held.get(key) !== watched || watched.gen !== gen) return listing
    if (!LOCAL.has(listing.fsType)) {
      debug('a directory on a filesystem of type %s is not kept: changes there may come from elsewhere', listing.fsType.toString(16))
      this.#forget(key, true)
      if (dir.names.length === 0) this.#rootElsewhere = true
      return listing
    }
    if (listing.stats && listing.names.some((_, i) => linkedElsewhere(listing, i))) return listing
    this.#keep(key, watched, listing)
    return listing
  }

  child(l: Listing, i: number, use = true): Listing | null {
    if (l.kinds[i] !== KIND_DIR || !l.stats) return null
    const key = dirKeyOf(l, i)
    const held = this.#held.get(key)
    if (!held?.listing?.stats) return null
    if (use) {
      this.#hits++
      this.#touch(key, held)
    }
    return held.listing
  }

  resolve(parts: readonly string[]): { listing: Listing; i: number } | null {
    this.#drain()
    if (parts.length === 0 || this.#root === null) return null
    let listing = this.#held.get(this.#root)?.listing
    if (!listing?.stats) return this.#missRoot()
    for (let depth = 0; ; depth++) {
      const i = indexOf(listing, parts[depth])
      if (i < 0) return null
      if (depth === parts.length - 1) {
        this.#hits++
        return { listing, i }
      }
      const next = this.child(listing, i, false)
      if (!next) return null
      listing = next
    }
  }

  memo<T>(l: Listing, key: string, make: () => T, size: (v: T) => number): T {
    const held = this.#held.get(`${l.dev}:${l.ino}`)
    if (!held || held.listing !== l) return make()
    const known = held.memos?.get(key)
    if (known !== undefined) return known as T
    const made = make()
    const bytes = size(made)
    // Only into room there is: what is made for one answer does not push listings out.
    if (this.#bytes + bytes <= this.#cap()) {
      ;(held.memos ??= new Map()).set(key, made)
      held.bytes += bytes
      this.#setBytes(this.#bytes + bytes)
    }
    return made
  }

  /** Read the event queue now: called before every answer, so nothing changed since is answered from memory. */
  sync(): void {
    this.#drain()
  }

  stats(): MetaStats {
    return { metaHits: this.#hits, metaMisses: this.#misses, metaBytes: this.#bytes, metaDirs: this.#held.size }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.#watch?.close()
    this.#watch = null
    this.#held.clear()
    this.#byWd.clear()
    this.#setBytes(0)
  }

  #watchDir(key: string, dir: Found): Held | null {
    if (!this.#watch || !dir.held) return null
    let wd = this.#watch.add(dir.path)
    if (wd === null && this.#held.size > 0) {
      // Out of watches (fs.inotify.max_user_watches): the least recently used quarter gives theirs up.
      let n = Math.ceil(this.#held.size / 4)
      for (const [k] of this.#held) if (n-- > 0) this.#forget(k, true)
      wd = this.#watch.add(dir.path)
    }
    if (wd === null) return null
    // inotify gives the same watch for a directory already watched: it is this one (keyed by inode) or a dropped one's.
    const before = this.#byWd.get(wd)
    if (before !== undefined && before !== key) this.#forget(before, false)
    const held: Held = { wd, listing: null, bytes: 0, gen: 0, memos: null }
    this.#held.set(key, held)
    this.#byWd.set(wd, key)
    this.#timer ??= setInterval(() => this.#drain(), DRAIN_MS).unref()
    return held
  }

  /** The root is not held (changed, or let go): have it listed again, at most once a second; this answer goes without. */
  #missRoot(): null {
    const now = Date.now()
    if (this.#watch && !this.#rootElsewhere && now - this.#rootAsked >= 1000) {
      this.#rootAsked = now
      this.#listRoot()
    }
    return null
  }

  #keep(key: string, held: Held, listing: Listing): void {
    const bytes = listingBytes(listing)
    if (bytes > this.#cap()) return
    held.listing = listing
    this.#setBytes(this.#bytes - held.bytes + bytes)
    held.bytes = bytes
    this.#touch(key, held)
    this.#shrink(key)
  }

  /** Let the least recently used directories go, but `keep`, until the bytes held fit. */
  #shrink(keep: string | null): void {
    const cap = this.#cap()
    for (const [k] of this.#held) {
      if (this.#bytes <= cap) break
      if (k !== keep) this.#forget(k, true)
    }
  }

  #cap(): number {
    return Math.max(0, Math.min(this.limit, this.#room()))
  }

  #touch(key: string, held: Held): void {
    this.#held.delete(key)
    this.#held.set(key, held)
  }

  /** Let a directory go; `unwatch` unless the kernel already ended its watch. */
  #forget(key: string, unwatch: boolean): void {
    const held = this.#held.get(key)
    if (!held) return
    this.#held.delete(key)
    if (this.#byWd.get(held.wd) === key) this.#byWd.delete(held.wd)
    if (unwatch) this.#watch?.remove(held.wd)
    this.#setBytes(this.#bytes - held.bytes)
  }

  #drop(held: Held): void {
    held.gen++
    if (!held.listing) return
    held.listing = null
    held.memos = null
    this.#setBytes(this.#bytes - held.bytes)
    held.bytes = 0
  }

  #drain(): void {
    // Blocks pinned since take the room listings had: the least recently used give it back.
    if (this.#bytes > this.#cap()) this.#shrink(null)
    if (this.#watch?.mountsChanged()) {
      debug('a filesystem was mounted or unmounted: every listing dropped')
      for (const held of this.#held.values()) this.#drop(held)
    }
    this.#watch?.drain((wd, mask) => {
      if (mask & IN_Q_OVERFLOW) {
        debug('inotify queue overflowed: every listing dropped')
        for (const held of this.#held.values()) this.#drop(held)
        return
      }
      const key = this.#byWd.get(wd)
      if (key === undefined) return
      if (mask & (IN_IGNORED | IN_DELETE_SELF)) this.#forget(key, false)
      else this.#drop(this.#held.get(key)!)
    })
  }

  #setBytes(bytes: number): void {
    if (bytes === this.#bytes) return
    this.#bytes = bytes
    this.#onBytes(bytes)
  }
}

/** Index of `name` in a listing (sorted by UTF-16 code units), or -1. */
function indexOf(l: Listing, name: string): number {
  let lo = 0
  let hi = l.names.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const m = l.names[mid]
    if (m === name) return mid
    if (m < name) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}
