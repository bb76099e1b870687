/**
 * read {path, offset?, length?}: START {size, offset, length, mtimeMs}, the
 * bytes as DATA, then END {length}. A range past the end of the file is
 * clipped to it (START says how many bytes follow); an offset past the end is
 * ERANGE. A resend (after a NACK) starts at the receiver's verified offset and
 * skips START unless that was lost too.
 *
 * A recently read file whose identity is unchanged and whose requested blocks
 * are all cached is served without opening it (see KnownFiles); any other
 * read opens and checks the file.
 */
import { error } from '../errors.js'
import type { KnownFile } from '../fs/known-files.js'
import { openFile } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { optionalCount, requiredString } from './args.js'
import type { CommandContext, CommandIO, Resume } from './context.js'
import { diskBlocks, rangeParts } from './read-parts.js'

/** Blocks a read served straight from the cache may pin at once (they stay referenced until sent). */
const MAX_PINNED_BLOCKS = 16

export async function* read(args: Record<string, unknown>, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const { resume, signal, backedUp } = io
  const path = requiredString(args, 'path')
  const offset = optionalCount(args, 'offset') ?? 0
  const length = optionalCount(args, 'length')
  const known = ctx.files.current(path)
  if (known) {
    const parts = fromCache(known, path, offset, length, ctx, io)
    if (parts) {
      ctx.files.hits++
      return yield* parts
    }
  }
  const file = await openFile(ctx.jail, path, ctx.settle)
  try {
    const end = span(file, path, offset, length, resume)
    const from = offset + (resume?.offset ?? 0)
    if (from > end) throw error('EBADREQ', `cannot resume ${path} at byte ${from}: the read ends at byte ${end}`)
    if (!resume || resume.seq === 0) yield start(file, offset, end)
    // No block is read ahead of the connection's demand: the connection pulls the next part as
    // soon as it has handed this one on, so the disk works while this one's pages go out, and a
    // client that stops reading holds one block per read, not two.
    const tally = { fromDisk: 0 }
    // Every block comes from this version of the file: a cached one is keyed by it, and one read
    // from disk is checked against it right after its bytes (BlockCache), so nothing is left to
    // check at the end.
    yield* rangeParts(ctx, file, from, end, diskBlocks(ctx, file, tally, { signal, later: backedUp, left: end - from }), io)
    ctx.files.remember(path, file)
    ctx.pins.refresh(path, file.key)
    yield { kind: 'end', body: { length: end - offset } }
  } finally {
    await file.fh.close()
  }
}

/** Where the read ends; throws for a resend of another version, or an offset past the end. */
function span(file: KnownFile, path: string, offset: number, length: number | undefined, resume?: Resume): number {
  // A resend must serve the very bytes the first attempt started to serve.
  if (resume?.identity && resume.identity !== file.key) throw changed(path)
  if (offset > file.size) throw error('ERANGE', `offset ${offset} is beyond the end of ${path} (${file.size} bytes)`)
  return length === undefined ? file.size : Math.min(file.size, offset + length)
}

function start(file: KnownFile, offset: number, end: number): Part {
  return { kind: 'start', body: { size: file.size, offset, length: end - offset, mtimeMs: file.mtimeMs }, identity: file.key }
}

/**
 * The whole response from cached blocks, or null when one of them is not
 * cached (or too many would be pinned). The blocks are leased at once, so
 * one the cache evicts before its bytes are sent still counts (BlockLease),
 * until the response is over.
 */
function fromCache(file: KnownFile, path: string, offset: number, length: number | undefined, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> | null {
  const { resume } = io
  const end = span(file, path, offset, length, resume)
  const from = offset + (resume?.offset ?? 0)
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
      if (!resume || resume.seq === 0) yield start(file, offset, end)
      yield* rangeParts(ctx, file, from, end, (index) => cached[index - first], io)
      yield { kind: 'end', body: { length: end - offset } }
    } finally {
      for (const lease of held) lease.release()
    }
  })()
}

function changed(path: string) {
  return error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
}
