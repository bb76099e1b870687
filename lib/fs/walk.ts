/**
 * Every regular file under a path inside the root, depth first, sorted by
 * name. Plain entries of a checked directory cannot leave it, so only
 * symlinks are resolved (and followed only while they stay inside the root);
 * each directory is visited once, so a symlink loop cannot make it endless.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Jail } from './jail.js'

export interface WalkedFile {
  /** Path relative to the root, '/'-separated. */
  rel: string
  /** Absolute real path inside the root. */
  real: string
  size: number
}

/** Files stat'ed at once: the size of each is needed up front, one syscall each. */
const STAT_BATCH = 64

/** `signal`: stop (with its reason) before the next directory is read. */
export async function* walk(jail: Jail, path: string, signal?: AbortSignal): AsyncGenerator<WalkedFile, void, void> {
  const seen = new Set<string>()
  const start = Jail.segments(path).join('/')
  const real = await jail.resolve(start) // missing or outside: the caller hears of it

  const visit = async function* (rel: string, dir: string): AsyncGenerator<WalkedFile, void, void> {
    if (seen.has(dir)) return
    seen.add(dir)
    signal?.throwIfAborted()
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const pending: Promise<WalkedFile | null>[] = []
    const flush = async function* () {
      for (const f of await Promise.all(pending.splice(0))) if (f) yield f
    }
    for (const d of entries) {
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`
      if (d.isFile()) {
        const childReal = join(dir, d.name)
        pending.push(stat(childReal).then((st) => ({ rel: childRel, real: childReal, size: st.size }), () => null))
        if (pending.length >= STAT_BATCH) yield* flush()
        continue
      }
      yield* flush() // keep the order: files before this entry first
      if (d.isDirectory()) yield* visit(childRel, join(dir, d.name))
      else if (d.isSymbolicLink()) yield* follow(childRel)
    }
    yield* flush()
  }

  const follow = async function* (rel: string): AsyncGenerator<WalkedFile, void, void> {
    let target: string
    try {
      target = await jail.resolve(rel)
    } catch {
      return // dangling, or outside the root
    }
    const st = await stat(target).catch(() => null)
    if (st?.isFile()) yield { rel, real: target, size: st.size }
    else if (st?.isDirectory()) yield* visit(rel, target)
  }

  const st = await stat(real)
  if (st.isFile()) yield { rel: start, real, size: st.size }
  else if (st.isDirectory()) yield* visit(start, real)
}
