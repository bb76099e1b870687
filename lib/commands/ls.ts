/**
 * ls {path?}: RESULT {entries: [{name, type, size?}]}, sorted by name, type one of
 * "file", "dir", "other". A symlink is listed as what it points to, and not
 * at all when it points outside the root.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { dirPath, openDirInside } from '../fs/safe-open.js'
import { Jail } from '../fs/jail.js'
import type { Part } from '../stages/items.js'
import { optionalString } from './args.js'
import type { CommandContext } from './context.js'
import { error } from '../errors.js'

export interface Entry {
  name: string
  type: 'file' | 'dir' | 'other'
  /** Files only. */
  size?: number
}

export async function* ls(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const dir = await ctx.jail.resolve(path)
  if (!(await stat(dir)).isDirectory()) throw error('ENOTDIR', `${Jail.shown(path)} is not a directory`)
  // List through the opened, checked descriptor: the name may be swapped for a symlink meanwhile.
  const fh = await openDirInside(ctx.jail, dir, Jail.shown(path))
  const entries: Entry[] = []
  try {
    const here = dirPath(fh, dir)
    for (const d of await readdir(here, { withFileTypes: true })) {
      if (d.isSymbolicLink()) {
        const type = await linkType(ctx.jail, [...Jail.segments(path), d.name].join('/'))
        if (type) entries.push({ name: d.name, type })
      } else {
        entries.push({ name: d.name, type: d.isFile() ? 'file' : d.isDirectory() ? 'dir' : 'other' })
      }
    }
    // Sizes of files, a batch of stats at a time (a tar stream, say, needs them before the bytes).
    const files = entries.filter((e) => e.type === 'file')
    for (let i = 0; i < files.length; i += 64) {
      await Promise.all(
        files.slice(i, i + 64).map(async (e) => {
          const st = await stat(join(here, e.name)).catch(() => null)
          if (st) e.size = st.size
        }),
      )
    }
  } finally {
    await fh.close()
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  yield { kind: 'result', body: { entries } }
}

async function linkType(jail: Jail, rel: string): Promise<Entry['type'] | null> {
  try {
    const st = await stat(await jail.resolve(rel))
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other'
  } catch {
    return null // dangling, or pointing outside the root
  }
}
