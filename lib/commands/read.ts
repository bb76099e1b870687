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
import { currentIdentity, type OpenFile, openFile } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { optionalCount, requiredString } from './args.js'
import type { CommandContext, CommandIO, Resume } from './context.js'

/** Blocks a read served straight from the cache may pin at once (they stay referenced until sent). */
const MAX_PINNED_BLOCKS = 16

export async function* read(args: Record<string, unknown>, ctx: CommandContext, { resume }: CommandIO): AsyncGenerator<Part, void, void> {
  const path = requiredString(args, 'path')
  const offset = optionalCount(args, 'offset') ?? 0
  const length = optionalCount(args, 'length')
  const known = ctx.files.current(path)
  if (known) {
    const parts = fromCache(known, path, offset, length, ctx, resume)
    if (parts) {
      ctx.files.hits++
      return yield* parts
    }
  }
  const file = await openFile(ctx.jail, path, ctx.settle)
  try {
    const end = span(file, path, offset, length, resume)
    if (!resume || resume.seq === 0) yield start(file, offset, end)
    const tally = { fromDisk: 0 }
    yield* blocks(file, offset + (resume?.offset ?? 0), end, ctx, path, tally)
    // Blocks read from disk during the transfer must all come from this version of the file.
    // (Cached blocks are keyed by the version: when every block was cached, they all match.)
    if (tally.fromDisk > 0 && (await currentIdentity(file)) !== file.key) {
      ctx.files.forget(path)
      throw changed(path)
    }
    ctx.files.remember(path, file)
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

/** The whole response from cached blocks, or null when one of them is not cached (or too many would be pinned). */
function fromCache(file: KnownFile, path: string, offset: number, length: number | undefined, ctx: CommandContext, resume?: Resume): Part[] | null {
  const end = span(file, path, offset, length, resume)
  const from = offset + (resume?.offset ?? 0)
  if (from > end) return null // let the full path report it
  const bs = ctx.cache.blockSize
  const first = Math.floor(from / bs)
  const last = Math.ceil(end / bs) - 1
  if (last - first + 1 > MAX_PINNED_BLOCKS) return null
  const cached = last >= first ? ctx.cache.cachedBlocks(file, first, last, from, end) : []
  if (!cached) return null
  const parts: Part[] = []
  if (!resume || resume.seq === 0) parts.push(start(file, offset, end))
  cached.forEach((block, i) => {
    const base = (first + i) * bs
    const chunk = block.subarray(Math.max(from - base, 0), Math.min(end - base, block.length))
    if (chunk.length > 0) parts.push({ kind: 'data', chunk })
  })
  parts.push({ kind: 'end', body: { length: end - offset } })
  return parts
}

/**
 * Bytes offset..end of the file as DATA parts, one block at a time. No block
 * is read ahead of the connection's demand: the connection pulls the next
 * part as soon as it has handed this one on, so the disk works while the
 * pages of this block go out, and a client that stops reading holds one
 * block per read, not two.
 */
async function* blocks(file: OpenFile, offset: number, end: number, ctx: CommandContext, path: string, tally: { fromDisk: number }): AsyncGenerator<Part, void, void> {
  if (offset > end) throw error('EBADREQ', `cannot resume ${path} at byte ${offset}: the read ends at byte ${end}`)
  const bs = ctx.cache.blockSize
  const last = Math.ceil(end / bs) - 1
  for (let index = Math.floor(offset / bs); index <= last; index++) {
    const base = index * bs
    const from = Math.max(offset - base, 0)
    const block = await ctx.cache.block(file, index, { tally, bytes: Math.max(0, Math.min(end - base, bs) - from) })
    const to = Math.min(end - base, block.length)
    if (to > from) yield { kind: 'data', chunk: block.subarray(from, to) }
  }
}

function changed(path: string) {
  return error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
}
