/**
 * Every regular file under a path inside the root, depth first, sorted by
 * name. Symlinks are followed only while they stay inside the root, and each
 * directory is visited once, so a symlink loop cannot make the walk endless.
 */
import { readdir, stat } from 'node:fs/promises'
import { Jail } from './jail.js'

export interface WalkedFile {
  /** Path relative to the root, '/'-separated. */
  rel: string
  /** Absolute real path inside the root. */
  real: string
  size: number
}

export async function* walk(jail: Jail, path: string): AsyncGenerator<WalkedFile, void, void> {
  const seen = new Set<string>()
  const start = Jail.segments(path).join('/')
  const visit = async function* (rel: string): AsyncGenerator<WalkedFile, void, void> {
    let real: string
    try {
      real = await jail.resolve(rel)
    } catch {
      return // dangling, or outside the root
    }
    const st = await stat(real)
    if (st.isFile()) {
      yield { rel, real, size: st.size }
      return
    }
    if (!st.isDirectory() || seen.has(real)) return
    seen.add(real)
    const names = (await readdir(real)).sort()
    for (const name of names) yield* visit(rel === '' ? name : `${rel}/${name}`)
  }
  // The starting path itself must exist and be inside the root: let those errors through.
  await jail.resolve(start)
  yield* visit(start)
}
