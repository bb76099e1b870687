/**
 * ls {path?, long?}: RESULT {entries: [{name, type, size?}]}, sorted by name,
 * type one of "file", "dir", "other". Names and types come from the directory
 * itself, with no call per entry; with `long`, files have their `size` too
 * (one lstat each). A symlink is listed as what it points to, and not at all
 * when it points outside the root.
 */
import { lstat, readdir } from 'node:fs/promises'
import { type Found, Jail } from '../fs/jail.js'
import { isUploadTemp } from '../fs/upload-temp.js'
import type { Part } from '../stages/items.js'
import { optionalFlag, optionalString } from './args.js'
import type { CommandContext } from './context.js'
import { error } from '../errors.js'

export interface Entry {
  name: string
  type: 'file' | 'dir' | 'other'
  /** Files only, and only when asked for (`long`). */
  size?: number
}

export async function* ls(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const long = optionalFlag(args, 'long')
  const dir = await ctx.jail.lookup(path)
  let entries: Entry[] = []
  try {
    if (!dir.st.isDirectory()) throw error('ENOTDIR', `${Jail.shown(path)} is not a directory`)
    // Listed through the held directory; each entry is looked at with lstat through it, so an
    // entry swapped for a symlink shows as the symlink (resolved by the jail), never as its target.
    const links: string[] = []
    for (const d of await readdir(dir.path, { withFileTypes: true })) {
      if (isUploadTemp(d.name)) continue // an upload on its way (or a dead server's leftover)
      if (d.isSymbolicLink()) links.push(d.name)
      else entries.push({ name: d.name, type: d.isFile() ? 'file' : d.isDirectory() ? 'dir' : 'other' })
    }
    // Sizes of files when asked for, a batch of lstats at a time.
    const files = long ? entries.filter((e) => e.type === 'file') : []
    const swapped = new Set<Entry>()
    await batches(files, async (e) => {
      const st = await lstat(`${dir.path}/${e.name}`).catch(() => null)
      if (st?.isFile()) e.size = st.size
      else if (st?.isSymbolicLink()) swapped.add(e) // a symlink since readdir: resolved below
      else if (st) e.type = st.isDirectory() ? 'dir' : 'other'
    })
    if (swapped.size > 0) {
      entries = entries.filter((e) => !swapped.has(e))
      for (const e of swapped) links.push(e.name)
    }
    await batches(links, async (name) => {
      const e = await linked(ctx.jail, dir, name, long)
      if (e) entries.push(e)
    })
  } finally {
    dir.close()
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  yield { kind: 'result', body: { entries } }
}

async function batches<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 64) await Promise.all(items.slice(i, i + 64).map(fn))
}

/** A symlink entry as what it points to (resolved by the jail), or null when it dangles or leads out of the root. */
async function linked(jail: Jail, dir: Found, name: string, long: boolean): Promise<Entry | null> {
  const found = await jail.lookupParts([...dir.names, name], name).catch(() => null)
  if (!found) return null
  const st = found.st
  found.close()
  if (st.isFile()) return long ? { name, type: 'file', size: Number(st.size) } : { name, type: 'file' }
  return { name, type: st.isDirectory() ? 'dir' : 'other' }
}
