/**
 * stat {path}: RESULT {path, type, size, mtimeMs, mtime, cachedBytes, cached, pinned}.
 * A file from the metadata cache when it holds every directory on the way
 * (no call at all); a directory, or anything else, from the fstat of what the
 * jail resolved.
 */
import { identityOf } from '../fs/open-file.js'
import { Jail } from '../fs/jail.js'
import { KIND_DIR, KIND_FILE, KIND_LINK, keyOf, type Listing, mtimeMsOf, sizeOf } from '../fs/listing.js'
import type { Part } from '../stages/items.js'
import { requiredString } from './args.js'
import type { CommandContext } from './context.js'

interface Seen {
  type: 'file' | 'dir' | 'other'
  size: number
  mtimeMs: number
  key: string
}

export async function* stat(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = requiredString(args, 'path')
  const seen = held(ctx, path) ?? (await looked(ctx, path))
  const file = seen.type === 'file'
  const cachedBytes = file ? ctx.cache.cachedBytes({ key: seen.key, size: seen.size }) : 0
  yield {
    kind: 'result',
    body: {
      path,
      type: seen.type,
      size: seen.size,
      mtimeMs: seen.mtimeMs,
      mtime: new Date(seen.mtimeMs).toISOString(),
      cachedBytes,
      cached: file && cachedBytes === seen.size,
      pinned: file && ctx.pins.has(path),
    },
  }
}

/** What the metadata cache holds of `path`: not for a symlink (the jail resolves it) or a path that must name a directory. */
function held(ctx: CommandContext, path: string): Seen | null {
  const { parts, dirOnly } = Jail.parse(path)
  const found = dirOnly ? null : ctx.meta?.resolve(parts)
  if (!found) return null
  const { listing, i } = found
  const kind = listing.kinds[i]
  // A directory's own times change with what is made in it, which its parent's watch does not hear of.
  if (kind === KIND_LINK || kind === KIND_DIR) return null
  return { type: kind === KIND_FILE ? 'file' : 'other', size: sizeOf(listing, i), mtimeMs: mtimeMsOf(listing, i), key: keyOf(listing as Listing, i) }
}

async function looked(ctx: CommandContext, path: string): Promise<Seen> {
  // The fstat of what the jail resolved and holds, not of a name that may be swapped meanwhile;
  // nothing is opened (a FIFO or a device is only named).
  const found = await ctx.jail.lookup(path)
  const st = found.st
  found.close()
  return { type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other', size: Number(st.size), mtimeMs: Number(st.mtimeMs), key: identityOf(st) }
}
