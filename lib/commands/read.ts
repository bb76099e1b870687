/**
 * read {path, offset?, length?}: START {size, offset, length, mtimeMs}, the
 * bytes as DATA, then END {length}. A range past the end of the file is
 * clipped to it (START says how many bytes follow); an offset past the end is
 * ERANGE. A resend (after a NACK) starts at the receiver's verified offset and
 * skips START unless that was lost too.
 *
 * serveRange does the work for read and readv: a recently read file whose
 * identity is unchanged and whose requested blocks are all cached is served
 * without opening it (see KnownFiles); any other read opens and checks the
 * file.
 */
import { error } from '../errors.js'
import type { KnownFile } from '../fs/known-files.js'
import { openFile } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { optionalCount, requiredString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'
import { diskBlocks, rangeParts } from './read-parts.js'

/** Blocks a read served straight from the cache may pin at once (they stay referenced until sent). */
const MAX_PINNED_BLOCKS = 16

export async function* read(args: Record<string, unknown>, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const { resume } = io
  const path = requiredString(args, 'path')
  const offset = optionalCount(args, 'offset') ?? 0
  const length = optionalCount(args, 'length')
  const { end } = yield* serveRange(ctx, io, { path, offset, length, skip: resume?.offset ?? 0, identity: resume?.identity }, (file, end) =>
    !resume || resume.seq === 0 ? [start(file, offset, end)] : [],
  )
  yield { kind: 'end', body: { length: end - offset } }
}

/** A range of a file to serve: `skip` bytes of it are left out (the receiver has them), and it must be version `identity` if given. */
export interface RangeWanted {
  path: string
  offset: number
  length: number | undefined
  skip: number
  identity?: string
  /** The range's last page ends with it (see rangeParts). */
  flush?: boolean
}

/**
 * The parts `head` makes of the file's version (once it is known, before any
 * byte), then the range's bytes as DATA. Returns where the range ends.
 */
export async function* serveRange(ctx: CommandContext, io: CommandIO, want: RangeWanted, head: (file: KnownFile, end: number) => Part[]): AsyncGenerator<Part, { end: number }, void> {
  const { signal, backedUp } = io
  const { path, offset, length, skip, identity } = want
  const known = ctx.files.current(path)
  if (known) {
    const parts = fromCache(known, want, ctx, io, head)
    if (parts) {
      ctx.files.hits++
      return yield* parts
    }
  }
  const file = await openFile(ctx.jail, path, ctx.settle)
  try {
    const end = span(file, path, offset, length, identity)
    const from = offset + skip
    if (from > end) throw error('EBADREQ', `cannot resume ${path} at byte ${from}: the read ends at byte ${end}`)
    yield* head(file, end)
    // No block is read ahead of the connection's demand: the connection pulls the next part as
    // soon as it has handed this one on, so the disk works while this one's pages go out, and a
    // client that stops reading holds one block per read, not two.
    const tally = { fromDisk: 0 }
    // Every block comes from this version of the file: a cached one is keyed by it, and one read
    // from disk is checked against it right after its bytes (BlockCache), so nothing is left to
    // check at the end.
    yield* rangeParts(ctx, file, from, end, diskBlocks(ctx, file, tally, { signal, later: backedUp, left: end - from }), { ...io, flush: want.flush })
    ctx.files.remember(path, file)
    ctx.pins.refresh(path, file.key)
    return { end }
  } finally {
    await file.fh.close()
  }
}

/** Where the read ends; throws for a resend of another version, or an offset past the end. */
function span(file: KnownFile, path: string, offset: number, length: number | undefined, identity?: string): number {
  // A resend must serve the very bytes the first attempt started to serve.
  if (identity && identity !== file.key) throw changed(path)
  if (offset > file.size) throw error('ERANGE', `offset ${offset} is beyond the end of ${path} (${file.size} bytes)`)
  return length === undefined ? file.size : Math.min(file.size, offset + length)
}

function start(file: KnownFile, offset: number, end: number): Part {
  return { kind: 'start', body: { size: file.size, offset, length: end - offset, mtimeMs: file.mtimeMs }, identity: file.key }
}

/**
 * The whole range from cached blocks, or null when one of them is not
 * cached (or too many would be pinned). The blocks are leased at once, so
 * one the cache evicts before its bytes are sent still counts (BlockLease),
 * until the response is over.
 */
function fromCache(
  file: KnownFile,
  want: RangeWanted,
  ctx: CommandContext,
  io: CommandIO,
  head: (file: KnownFile, end: number) => Part[],
): AsyncGenerator<Part, { end: number }, void> | null {
  const end = span(file, want.path, want.offset, want.length, want.identity)
  const from = want.offset + want.skip
  if (from > end) return null // let the full path report it
  const bs = ctx.cache.blockSize
  const first = Math.floor(from / bs)
  const last = Math.ceil(end / bs) - 1
  if (last - first + 1 > MAX_PINNED_BLOCKS) return null
  const cached = last >= first ? ctx.cache.cachedBlocks(file, first, last, from, end) : []
  if (!cached) return null
  const held = cached.map((block, i) => ctx.cache.lease(file, first + i, block))
  for (const lease of held) io.hold?.(lease)
  return (async function* () {
    try {
      yield* head(file, end)
      yield* rangeParts(ctx, file, from, end, (index) => cached[index - first], { ...io, flush: want.flush })
      return { end }
    } finally {
      for (const lease of held) lease.release()
    }
  })()
}

function changed(path: string) {
  return error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
}
