/**
 * Every regular file under a path inside the root, depth first, sorted by
 * name. Directories come from `lister`: the metadata cache (meta-cache.ts),
 * or read afresh, each held (see Jail) while it is read, its entries looked
 * at with lstat through it: an entry swapped for a symlink shows as the
 * symlink, never as what it points to. Symlinks are resolved by the jail
 * (followed only while they stay inside the root); each directory is
 * visited once, so a symlink loop cannot make it endless.
 */
import { Jail } from './jail.js'
import { type Lister, plainLister } from './meta-cache.js'
import { KIND_DIR, KIND_FILE, KIND_LINK, keyOf, type Listing, sizeOf } from './listing.js'
import { type FileStat, identityOf } from './identity.js'
import { OpenAhead, type Opened } from './open-ahead.js'

export interface WalkedFile {
  /** Path relative to the root, '/'-separated, as the walk reached it (through symlinks). */
  readonly rel: string
  /** Where it really is: names under the root, no symlinks. */
  readonly names: string[]
  readonly size: number
  /** Cache key of the version seen (see identityOf). */
  readonly key: string
}

/** A file of a listing: its names and key are made only when asked for (a listing of a million files needs neither). */
class ListedFile implements WalkedFile {
  readonly size: number
  constructor(
    readonly rel: string,
    private readonly dir: readonly string[],
    private readonly listing: Listing,
    private readonly i: number,
  ) {
    this.size = sizeOf(listing, i)
  }
  get names(): string[] {
    return [...this.dir, this.listing.names[this.i]]
  }
  get key(): string {
    return keyOf(this.listing, this.i)
  }
}

function statFile(rel: string, names: string[], st: FileStat): WalkedFile {
  return { rel, names, size: Number(st.size), key: identityOf(st) }
}

/**
 * Where a walk goes on from: it yields only files after this path (as the
 * walk reaches them, '/'-separated), in the walk's own order, which is the
 * order of the paths' segment lists compared name by name. Directories
 * wholly before it are not read.
 */
export type WalkCursor = string

/** Segment lists in walk order: -1 when `a` comes before `b`. A path's directory comes before everything in it. */
export function compareSegments(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1
  }
  return a.length - b.length
}

/** `signal`: stop (with its reason) before the next directory is read. `after`: see WalkCursor. */
export async function* walk(jail: Jail, path: string, signal?: AbortSignal, after?: WalkCursor, lister: Lister = plainLister): AsyncGenerator<WalkedFile, void, void> {
  for await (const files of walkBatches(jail, path, signal, after, lister)) yield* files
}

/** The same files as `walk`, in the same order, a run of one directory's files at a time: a walk of a million cached files is not a million awaits. */
export async function* walkBatches(jail: Jail, path: string, signal?: AbortSignal, after?: WalkCursor, lister: Lister = plainLister): AsyncGenerator<WalkedFile[], void, void> {
  for await (const run of walkRuns(jail, path, signal, after, lister)) {
    if ('file' in run) yield [run.file]
    else {
      const files: WalkedFile[] = []
      for (let i = run.from; i < run.to; i++) files.push(new ListedFile(run.dir === '' ? run.listing.names[i] : `${run.dir}/${run.listing.names[i]}`, run.names, run.listing, i))
      yield files
    }
  }
}

/**
 * What a walk yields: entries `from` up to `to` of a listing, all files, in
 * a directory reached as `dir` (its real location `names`); or one file
 * reached through a symlink, or named by the walk's path itself.
 */
export type Run = { dir: string; names: string[]; listing: Listing; from: number; to: number } | { file: WalkedFile }

/** The same files as `walk`, in the same order, as runs of a listing's entries: nothing is made per file. */
export async function* walkRuns(jail: Jail, path: string, signal?: AbortSignal, after?: WalkCursor, lister: Lister = plainLister): AsyncGenerator<Run, void, void> {
  const seen = new Set<string>()
  /** Real directories not read because they lie before the cursor: counted as seen, with all under them. */
  const passed: string[] = []
  const cursor = after === undefined ? null : after.split('/')
  const start = Jail.segments(path).join('/')
  /** The entry at `rel` lies wholly before the cursor (a directory: the cursor is not inside it). */
  const before = (rel: string, dir: boolean): boolean => {
    if (!cursor) return false
    const segs = rel.split('/')
    const c = compareSegments(segs, cursor)
    if (c > 0) return false
    if (!dir) return true
    // A directory that is the cursor or holds it is read: what is in it comes after the cursor.
    return !(segs.length <= cursor.length && segs.every((s, i) => s === cursor[i]))
  }
  const seenReal = (real: string): boolean => seen.has(real) || passed.some((p) => real.startsWith(`${p}/`) || real === p)

  /** The directory at real `names`, reached as `rel`, listed as `listing`. */
  const visit = async function* (rel: string, names: string[], listing: Listing): AsyncGenerator<Run, void, void> {
    const real = names.join('/')
    if (seenReal(real)) return
    seen.add(real)
    /** Where the run of files met so far began (-1: none): they go before what a subdirectory holds. */
    let from = -1
    const flush = (to: number): Run => {
      const run = { dir: rel, names, listing, from, to }
      from = -1
      return run
    }
    const ahead = new OpenAhead(listing, (i) => open(rel === '' ? listing.names[i] : `${rel}/${listing.names[i]}`, [...names, listing.names[i]]), (i) => {
      const kind = listing.kinds[i]
      if (kind !== KIND_LINK && (kind !== KIND_DIR || lister.child(listing, i, false))) return false
      return !(cursor && before(rel === '' ? listing.names[i] : `${rel}/${listing.names[i]}`, true))
    })
    try {
      for (let i = 0; i < listing.names.length; i++) {
        const name = listing.names[i]
        const kind = listing.kinds[i]
        if (cursor && before(rel === '' ? name : `${rel}/${name}`, kind !== KIND_FILE)) {
          if (kind === KIND_DIR) passed.push(real === '' ? name : `${real}/${name}`)
          continue
        }
        if (kind === KIND_FILE) {
          if (from < 0) from = i
          continue
        }
        const childRel = rel === '' ? name : `${rel}/${name}`
        if (from >= 0) yield flush(i)
        if (kind !== KIND_DIR && kind !== KIND_LINK) continue
        const held = kind === KIND_DIR ? lister.child(listing, i) : null
        if (held) {
          ahead.skip(i)
          const childNames = [...names, name]
          if (!seenReal(childNames.join('/'))) signal?.throwIfAborted()
          yield* visit(childRel, childNames, held)
          continue
        }
        const opened = await ahead.take(i)
        if (opened?.file) yield { file: opened.file }
        else if (opened?.listing) yield* visit(childRel, opened.names, opened.listing)
      }
      if (from >= 0) yield flush(listing.names.length)
    } finally {
      ahead.stop()
    }
  }

  /**
   * Resolve names under the root through the jail: the file they name, or the
   * directory and its listing (null when gone, dangling, outside, neither, or
   * a directory already walked).
   */
  const open = async (rel: string, names: string[]): Promise<Opened | null> => {
    const found = await jail.lookupParts(names, rel).catch(() => null)
    if (!found) return null
    try {
      if (found.st.isFile()) return { names: found.names, file: statFile(rel, found.names, found.st) }
      if (!found.st.isDirectory() || seenReal(found.names.join('/'))) return null
      signal?.throwIfAborted()
      return { names: found.names, listing: await lister.list(found, true) }
    } finally {
      found.close()
    }
  }

  const top = await jail.lookup(path) // missing or outside: the caller hears of it
  let listing: Listing
  try {
    if (top.st.isFile()) return yield { file: statFile(start, top.names, top.st) }
    if (!top.st.isDirectory()) return
    signal?.throwIfAborted()
    listing = await lister.list(top, true)
  } finally {
    top.close()
  }
  yield* visit(start, top.names, listing)
}
