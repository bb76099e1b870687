/**
 * ls {path?, long?}: RESULT {entries: [{name, type, size?}]}, sorted by name,
 * type one of "file", "dir", "other". Names and types come from the directory
 * itself, with no call per entry; with `long`, files have their `size` too
 * (from each file's lstat, taken with the listing). Both come from the
 * metadata cache when it holds the directory. A symlink is listed as what it
 * points to, and not at all when it points outside the root.
 */
import { type Found, Jail } from '../fs/jail.js'
import { KIND_DIR, KIND_FILE, KIND_LINK, sizeOf } from '../fs/listing.js'
import { plainLister } from '../fs/meta-cache.js'
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
  const entries: Entry[] = []
  /** Symlinks resolved: appended after the rest, so the entries are sorted again. */
  let resolved = false
  try {
    if (!dir.st.isDirectory()) throw error('ENOTDIR', `${Jail.shown(path)} is not a directory`)
    const listing = await (ctx.meta ?? plainLister).list(dir, long)
    const links: string[] = []
    for (let i = 0; i < listing.names.length; i++) {
      const name = listing.names[i]
      const kind = listing.kinds[i]
      if (kind === KIND_LINK) links.push(name)
      else if (kind === KIND_FILE) entries.push(long ? { name, type: 'file', size: sizeOf(listing, i) } : { name, type: 'file' })
      else entries.push({ name, type: kind === KIND_DIR ? 'dir' : 'other' })
    }
    // Symlinks are resolved by the jail, a batch at a time.
    for (let i = 0; i < links.length; i += 64) {
      for (const e of await Promise.all(links.slice(i, i + 64).map((name) => linked(ctx.jail, dir, name, long)))) if (e) entries.push(e)
      resolved = true
    }
  } finally {
    dir.close()
  }
  if (resolved) entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  yield { kind: 'result', body: { entries } }
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
