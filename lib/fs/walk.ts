/**
 * Every regular file under a path inside the root, depth first, sorted by
 * name. Directories are held (see Jail) while they are listed, and their
 * entries are looked at with lstat through the held directory: an entry
 * swapped for a symlink shows as the symlink, never as what it points to.
 * Symlinks are resolved by the jail (followed only while they stay inside
 * the root); each directory is visited once, so a symlink loop cannot make
 * it endless.
 */
import type { BigIntStats } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { type Found, Jail } from './jail.js'
import { identityOf } from './open-file.js'
import { isUploadTemp } from './upload-temp.js'

export interface WalkedFile {
  /** Path relative to the root, '/'-separated, as the walk reached it (through symlinks). */
  rel: string
  /** Where it really is: names under the root, no symlinks. */
  names: string[]
  size: number
  /** Cache key of the version seen (see identityOf). */
  key: string
}

/** Entries lstat'ed at once: the size of each is needed up front, one syscall each. */
const STAT_BATCH = 64

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
export async function* walk(jail: Jail, path: string, signal?: AbortSignal, after?: WalkCursor): AsyncGenerator<WalkedFile, void, void> {
  const seen = new Set<string>()
  /** Real directories not read because they lie before the cursor: counted as seen, with all under them. */
  const passed: string[] = []
  const cursor = after === undefined ? null : after.split('/')
  const start = Jail.segments(path).join('/')
  const file = (rel: string, names: string[], st: BigIntStats): WalkedFile => ({ rel, names, size: Number(st.size), key: identityOf(st) })
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

  const visit = async function* (rel: string, dir: Found): AsyncGenerator<WalkedFile, void, void> {
    const real = dir.names.join('/')
    if (seenReal(real)) return
    seen.add(real)
    signal?.throwIfAborted()
    const entries = (await readdir(dir.path, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    /** A file's entry, or a symlink to resolve (an entry swapped for one since readdir). */
    type Pending = WalkedFile | { link: string; names: string[] } | null
    const pending: Promise<Pending>[] = []
    const flush = async function* () {
      for (const f of await Promise.all(pending.splice(0))) {
        if (f && 'link' in f) yield* follow(f.link, f.names)
        else if (f) yield f
      }
    }
    for (const d of entries) {
      if (isUploadTemp(d.name)) continue // an upload on its way: not part of the tree yet
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`
      const names = [...dir.names, d.name]
      if (before(childRel, !d.isFile())) {
        if (d.isDirectory()) passed.push(names.join('/'))
        continue
      }
      if (d.isFile()) {
        pending.push(
          lstat(`${dir.path}/${d.name}`, { bigint: true }).then(
            (st): Pending => (st.isFile() ? file(childRel, names, st) : st.isSymbolicLink() ? { link: childRel, names } : null),
            () => null,
          ),
        )
        if (pending.length >= STAT_BATCH) yield* flush()
        continue
      }
      yield* flush() // keep the order: files before this entry first
      if (d.isDirectory()) {
        const sub = await jail.subdir(dir, d.name, childRel).catch((err: { code?: string }) => {
          if (err.code === 'ENOTDIR') return 'link' as const // swapped since readdir: resolve whatever it is now
          if (err.code === 'ENOENT') return null // gone
          throw err
        })
        if (sub === 'link') yield* follow(childRel, names)
        else if (sub) {
          try {
            yield* visit(childRel, sub)
          } finally {
            sub.close()
          }
        }
      } else if (d.isSymbolicLink()) yield* follow(childRel, names)
    }
    yield* flush()
  }

  /** Resolve names under the root through the jail and walk what they name (nothing when dangling or outside). */
  const follow = async function* (rel: string, names: string[]): AsyncGenerator<WalkedFile, void, void> {
    const found = await jail.lookupParts(names, rel).catch(() => null)
    if (!found) return
    try {
      if (found.st.isFile()) yield file(rel, found.names, found.st)
      else if (found.st.isDirectory()) yield* visit(rel, found)
    } finally {
      found.close()
    }
  }

  const top = await jail.lookup(path) // missing or outside: the caller hears of it
  try {
    if (top.st.isFile()) yield file(start, top.names, top.st)
    else if (top.st.isDirectory()) yield* visit(start, top)
  } finally {
    top.close()
  }
}
