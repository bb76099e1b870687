/**
 * locate {paths, release?}: RESULT {lease, ttl, dir, slabs, files}. A path may
 * be a range, {path, offset, length}: its blocks only. For a client on the
 * server's host: where each file's blocks are in the shared-memory store, so
 * the client reads them itself (a short-circuit read). The blocks are loaded
 * if they are not cached, and held under one grant until the client releases
 * it (`release`, or `release` in its next `locate`), its connection ends, or
 * `ttl` ms pass; until then no slot of them is reused. A file whose blocks
 * are not all in the store, or that would take the grant past the
 * connection's bound, has `blocks: null`: read it over the socket.
 *
 * release {lease}: RESULT {released}. Lets a grant go early.
 */
import type { Releasable } from '../cache/block-lease.js'
import { error, toCacheservError } from '../errors.js'
import type { KnownFile } from '../fs/known-files.js'
import { openFile } from '../fs/open-file.js'
import { MAX_LOCATE_PATHS } from '../protocol/constants.js'
import type { Part } from '../stages/items.js'
import { optionalCount, pathItems, type Wanted } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

/** [slab (an index into the answer's `slabs`), offset in it, length, crc32]. */
type LocatedBlock = [number, number, number, number]

type Entry =
  | { path: string; size: number; mtimeMs: number; blocks: LocatedBlock[] | null; offset?: number; length?: number; skip?: number }
  | { path: string; code: string; message: string }

/** Files of one request located at once: their disk reads overlap, as a DataLoader batch's misses should. */
const LOCATE_CONCURRENCY = 8

/** Bytes of blocks the request's grant may still hold, taken as each file is placed. */
interface Budget {
  take(bytes: number): boolean
  give(bytes: number): void
}

/** Slab files named in one answer, each once. */
class Slabs {
  readonly names: string[] = []
  #index = new Map<string, number>()

  of(path: string): number {
    let i = this.#index.get(path)
    if (i === undefined) {
      i = this.names.push(path.slice(path.lastIndexOf('/') + 1)) - 1
      this.#index.set(path, i)
    }
    return i
  }
}

export async function* locate(args: Record<string, unknown>, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const grants = io.grants
  if (!grants) throw error('EACCES', 'locate is for clients on the server\'s host, of a server whose cache is in shared memory (HELLO "shm")')
  const wants = pathItems(args, MAX_LOCATE_PATHS)
  const release = args.release ?? []
  if (!Array.isArray(release) || !release.every((id) => Number.isSafeInteger(id))) throw error('EBADREQ', '"release" must be a list of lease numbers')
  for (const id of release) grants.release(id as number)
  // Named up front, so that an epoch's read-ahead (a warm list) passes over the files of this batch.
  const done = ctx.files.reading(wants.map((w) => w.path))
  try {
    yield* locateAll(wants, ctx, io, grants)
  } finally {
    done()
  }
}

async function* locateAll(wants: Wanted[], ctx: CommandContext, io: CommandIO, grants: NonNullable<CommandIO['grants']>): AsyncGenerator<Part, void, void> {
  // The files are located a few at a time, so that the disk reads of a batch's misses overlap;
  // the answer keeps the order asked for.
  const results: { entry: Entry; leases: Releasable[]; located: Buffer[]; size: number }[] = new Array(wants.length)
  const slabs = new Slabs()
  let reserved = 0
  const budget: Budget = {
    take: (n) => (reserved + n <= grants.room ? ((reserved += n), true) : false),
    give: (n) => void (reserved -= n),
  }
  let next = 0
  let failure: unknown = null
  const worker = async () => {
    while (next < wants.length && failure === null) {
      const i = next++
      const want = wants[i]
      try {
        io.signal?.throwIfAborted()
        results[i] = await locateFile(want, ctx, io, budget, slabs)
      } catch (err) {
        if (io.signal?.aborted) failure ??= err
        else {
          const e = toCacheservError(err)
          results[i] = { entry: { path: want.path, code: e.code, message: e.message }, leases: [], located: [], size: 0 }
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(LOCATE_CONCURRENCY, wants.length) }, worker))
  const held = results.flatMap((r) => r?.leases ?? [])
  if (failure !== null) {
    for (const lease of held) lease.release()
    throw failure
  }
  const blocks = results.flatMap((r) => r.located)
  const bytes = results.reduce((sum, r) => sum + r.size, 0)
  const files = results.map((r) => r.entry)
  const lease = held.length > 0 ? grants.grant(held, bytes, () => ctx.cache.exposed(blocks)) : null
  yield { kind: 'result', body: { lease, ttl: grants.ttl, dir: ctx.cache.storeDir, slabs: slabs.names, files } }
}

export async function* releaseGrant(args: Record<string, unknown>, _ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const id = optionalCount(args, 'lease')
  if (id === undefined) throw error('EBADREQ', 'missing "lease" argument')
  yield { kind: 'result', body: { released: io.grants?.release(id) ?? false } }
}

/**
 * The blocks of one file (or of the range asked for), leased; `blocks: null`
 * (nothing leased) when they cannot all be read from the store within the
 * `budget`. A range's entry says where its bytes start in its first block (`skip`).
 */
async function locateFile(
  want: Wanted,
  ctx: CommandContext,
  io: CommandIO,
  budget: Budget,
  slabs: Slabs,
): Promise<{ entry: Entry; leases: Releasable[]; located: Buffer[]; size: number }> {
  const { path } = want
  const ranged = want.offset !== undefined || want.length !== undefined
  const bs = ctx.cache.blockSize
  const leases: Releasable[] = []
  const lease = (file: KnownFile, index: number, block: Buffer) => {
    const l = ctx.cache.lease(file, index, block)
    io.hold?.(l)
    leases.push(l)
    return block
  }
  /** The span asked for in `file`, and its blocks: first..last (none for an empty span). */
  const span = (file: KnownFile) => {
    const from = want.offset ?? 0
    if (from > file.size) throw error('ERANGE', `offset ${from} is beyond the end of ${path} (${file.size} bytes)`)
    const end = want.length === undefined ? file.size : Math.min(file.size, from + want.length)
    const first = Math.floor(from / bs)
    const last = end > from ? Math.ceil(end / bs) - 1 : first - 1
    return { from, end, first, last, bytes: last >= first ? Math.min(file.size, (last + 1) * bs) - first * bs : 0 }
  }
  const entryOf = (file: KnownFile, blocks: LocatedBlock[] | null) => {
    const { from, end, first } = span(file)
    return ranged
      ? { path, size: file.size, mtimeMs: file.mtimeMs, offset: from, length: end - from, skip: from - first * bs, blocks }
      : { path, size: file.size, mtimeMs: file.mtimeMs, blocks }
  }
  /** Bytes of the budget this file holds: its span's, once it is known to fit. */
  let taken = 0
  const fits = (bytes: number): boolean => {
    budget.give(taken)
    taken = budget.take(bytes) ? bytes : 0
    return taken === bytes
  }
  const viaSocket = (file: KnownFile) => {
    for (const l of leases) l.release()
    budget.give(taken)
    return { entry: entryOf(file, null), leases: [], located: [], size: 0 }
  }
  // A file read moments ago whose blocks are all cached: no open (see KnownFiles).
  let file: KnownFile | null = ctx.files.current(path)
  let blocks: Buffer[] | null = null
  if (file) {
    const { from, end, first, last, bytes } = span(file)
    if (!fits(bytes)) return viaSocket(file)
    blocks = last < first ? [] : ctx.cache.cachedBlocks(file, first, last, from, end)
    if (blocks) blocks.forEach((b, i) => lease(file!, first + i, b))
  }
  if (!blocks) {
    const opened = await openFile(ctx.jail, path, ctx.settle)
    try {
      file = opened
      const { from, end, first, last, bytes } = span(opened)
      if (!fits(bytes)) return viaSocket(opened)
      blocks = []
      for (let i = first; i <= last; i++) {
        // Counted (missBytes) as the part of the block the range takes, as a read counts it.
        const part = Math.min(end, (i + 1) * bs) - Math.max(from, i * bs)
        // Leased as soon as it is there: it cannot be recycled while the next one loads.
        blocks.push(lease(opened, i, await ctx.cache.block(opened, i, { signal: io.signal, later: io.backedUp, bytes: part })))
      }
      ctx.files.remember(path, opened)
      ctx.pins.refresh(path, opened.key)
    } catch (err) {
      for (const l of leases) l.release()
      budget.give(taken)
      throw err
    } finally {
      await opened.fh.close()
    }
  }
  const located: LocatedBlock[] = []
  let bytes = 0
  for (const block of blocks) {
    const at = ctx.cache.location(block)
    if (!at) return viaSocket(file!)
    located.push([slabs.of(at.file), at.offset, block.length, at.crc])
    bytes += block.length
  }
  const { from, end } = span(file!)
  ctx.located?.(end - from)
  return { entry: entryOf(file!, located), leases, located: blocks, size: bytes }
}
