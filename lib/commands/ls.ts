/**
 * ls {path?}: RESULT {entries: [{name, type}]}, sorted by name, type one of
 * "file", "dir", "other". A symlink is listed as what it points to, and not
 * at all when it points outside the root.
 */
import type { Dirent } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { dirPath, openDirInside } from '../fs/safe-open.js'
import { Jail } from '../fs/jail.js'
import type { Part } from '../stages/items.js'
import { optionalString } from './args.js'
import type { CommandContext } from './context.js'
import { error } from '../errors.js'

export interface Entry {
  name: string
  type: 'file' | 'dir' | 'other'
}

export async function* ls(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const dir = await ctx.jail.resolve(path)
  if (!(await stat(dir)).isDirectory()) throw error('ENOTDIR', `${Jail.shown(path)} is not a directory`)
  // List through the opened, checked descriptor: the name may be swapped for a symlink meanwhile.
  const fh = await openDirInside(ctx.jail, dir, Jail.shown(path))
  let listing: Dirent[]
  try {
    listing = await readdir(dirPath(fh, dir), { withFileTypes: true })
  } finally {
    await fh.close()
  }
  const entries: Entry[] = []
  for (const d of listing) {
    if (d.isSymbolicLink()) {
      const type = await linkType(ctx.jail, [...Jail.segments(path), d.name].join('/'))
      if (type) entries.push({ name: d.name, type })
    } else {
      entries.push({ name: d.name, type: d.isFile() ? 'file' : d.isDirectory() ? 'dir' : 'other' })
    }
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
