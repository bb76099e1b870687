/**
 * read {path, offset?, length?}: START {size, offset, length, mtimeMs}, the
 * bytes as DATA, then END {length}. A range past the end of the file is
 * clipped to it (START says how many bytes follow); an offset past the end is
 * ERANGE. A resend (after a NACK) starts at the receiver's verified offset and
 * skips START unless that was lost too.
 */
import { error } from '../errors.js'
import { Jail } from '../fs/jail.js'
import { currentIdentity, type OpenFile, openFile } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { optionalCount, requiredString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

export async function* read(args: Record<string, unknown>, ctx: CommandContext, { resume }: CommandIO): AsyncGenerator<Part, void, void> {
  const path = requiredString(args, 'path')
  const offset = optionalCount(args, 'offset') ?? 0
  const length = optionalCount(args, 'length')
  const file = await openFile(ctx.jail, await ctx.jail.resolve(path), Jail.shown(path))
  try {
    // A resend must serve the very bytes the first attempt started to serve.
    if (resume?.identity && resume.identity !== file.key) throw changed(path)
    if (offset > file.size) throw error('ERANGE', `offset ${offset} is beyond the end of ${path} (${file.size} bytes)`)
    const end = length === undefined ? file.size : Math.min(file.size, offset + length)
    if (!resume || resume.seq === 0) {
      yield { kind: 'start', body: { size: file.size, offset, length: end - offset, mtimeMs: file.mtimeMs }, identity: file.key }
    }
    const tally = { fromDisk: 0 }
    yield* blocks(file, offset + (resume?.offset ?? 0), end, ctx, path, tally)
    // Blocks read from disk during the transfer must all come from this version of the file.
    // (Cached blocks are keyed by the version: when every block was cached, they all match.)
    if (tally.fromDisk > 0 && (await currentIdentity(file)) !== file.key) throw changed(path)
    yield { kind: 'end', body: { length: end - offset } }
  } finally {
    await file.fh.close()
  }
}

/** Bytes offset..end of the file as DATA parts, reading one block ahead so the disk works while the socket sends. */
async function* blocks(file: OpenFile, offset: number, end: number, ctx: CommandContext, path: string, tally: { fromDisk: number }): AsyncGenerator<Part, void, void> {
  if (offset > end) throw error('EBADREQ', `cannot resume ${path} at byte ${offset}: the read ends at byte ${end}`)
  const bs = ctx.cache.blockSize
  let index = Math.floor(offset / bs)
  const last = Math.ceil(end / bs) - 1
  let next: Promise<Buffer> | null = index <= last ? ctx.cache.block(file, index, tally) : null
  try {
    while (next) {
      const block = await next
      const base = index * bs
      index++
      next = index <= last ? ctx.cache.block(file, index, tally) : null
      next?.catch(() => {}) // awaited on the next turn; an early return must not leave it unhandled
      const from = Math.max(offset - base, 0)
      const to = Math.min(end - base, block.length)
      if (to > from) yield { kind: 'data', chunk: block.subarray(from, to) }
    }
  } finally {
    // Never close the fd under a read still using it.
    await next?.catch(() => {})
  }
}

function changed(path: string) {
  return error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
}
