/**
 * ls {path?, long?}: RESULT {entries: [{name, type, size?}]}, sorted by name,
 * type one of "file", "dir", "other". Names and types come from the directory
 * itself, with no call per entry; with `long`, files have their `size` too
 * (from each file's lstat, taken with the listing). Both come from the
 * metadata cache when it holds the directory. A symlink is listed as what it
 * points to, and not at all when it points outside the root.
 */
import { Jail } from '../fs/jail.js'
import { KIND_DIR, KIND_FILE, KIND_LINK, type Listing, sizeOf } from '../fs/listing.js'
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
  const { parts } = Jail.parse(path)
  // A directory the metadata cache holds, every one on the way too, is listed with no call at all.
  const heldDir = heldListing(ctx, parts)
  if (heldDir) return yield { kind: 'result', body: { entries: await entriesOf(ctx.jail, parts, heldDir, long) } }
  const dir = await ctx.jail.lookup(path)
  try {
    if (!dir.st.isDirectory()) throw error('ENOTDIR', `${Jail.shown(path)} is not a directory`)
    const listing = await (ctx.meta ?? plainLister).list(dir, long)
    yield { kind: 'result', body: { entries: await entriesOf(ctx.jail, dir.names, listing, long) } }
  } finally {
    dir.close()
  }
}

function heldListing(ctx: CommandContext, parts: string[]): Listing | null {
  if (!ctx.meta) return null
  if (parts.length === 0) return null
  const found = ctx.meta.resolve(parts)
  return found ? ctx.meta.child(found.listing, found.i) : null
}

/** The entries of the directory at real `names`, listed as `listing`. */
async function entriesOf(jail: Jail, names: readonly string[], listing: Listing, long: boolean): Promise<Entry[]> {
  const entries: Entry[] = []
  const links: string[] = []
  for (let i = 0; i < listing.names.length; i++) {
    const name = listing.names[i]
    const kind = listing.kinds[i]
    if (kind === KIND_LINK) links.push(name)
    else if (kind === KIND_FILE) entries.push(long ? { name, type: 'file', size: sizeOf(listing, i) } : { name, type: 'file' })
    else entries.push({ name, type: kind === KIND_DIR ? 'dir' : 'other' })
  }
  if (links.length === 0) return entries
  // Symlinks are resolved by the jail, a batch at a time, then put in their places.
  for (let i = 0; i < links.length; i += 64) {
    for (const e of await Promise.all(links.slice(i, i + 64).map((name) => linked(jail, names, name, long)))) if (e) entries.push(e)
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** A symlink entry as what it points to (resolved by the jail), or null when it dangles or leads out of the root. */
async function linked(jail: Jail, names: readonly string[], name: string, long: boolean): Promise<Entry | null> {
  const found = await jail.lookupParts([...names, name], name).catch(() => null)
  if (!found) return null
  const st = found.st
  found.close()
  if (st.isFile()) return long ? { name, type: 'file', size: Number(st.size) } : { name, type: 'file' }
  return { name, type: st.isDirectory() ? 'dir' : 'other' }
}
