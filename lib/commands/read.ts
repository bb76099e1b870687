/**
 * read {path, offset?, length?}: START {size, offset, length, mtimeMs}, the
 * bytes as DATA, then END {length}. A range past the end of the file is
 * clipped to it (START says how many bytes follow); an offset past the end is
 * ERANGE.
 */
import { error } from '../errors.js'
import { Jail } from '../fs/jail.js'
import { currentIdentity, openFile } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { optionalCount, requiredString } from './args.js'
import type { CommandContext } from './context.js'

export async function* read(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = requiredString(args, 'path')
  const offset = optionalCount(args, 'offset') ?? 0
  const length = optionalCount(args, 'length')
  const file = await openFile(await ctx.jail.resolve(path), Jail.shown(path))
  try {
    if (offset > file.size) throw error('ERANGE', `offset ${offset} is beyond the end of ${path} (${file.size} bytes)`)
    const end = length === undefined ? file.size : Math.min(file.size, offset + length)
    yield { kind: 'start', body: { size: file.size, offset, length: end - offset, mtimeMs: file.mtimeMs } }

    const bs = ctx.cache.blockSize
    let index = Math.floor(offset / bs)
    const last = Math.ceil(end / bs) - 1
    // Read one block ahead so the disk works while the socket sends.
    let next: Promise<Buffer> | null = index <= last ? ctx.cache.block(file, index) : null
    try {
      while (next) {
        const block = await next
        const base = index * bs
        index++
        next = index <= last ? ctx.cache.block(file, index) : null
        next?.catch(() => {}) // awaited on the next turn; do not let an early return leave it unhandled
        const from = Math.max(offset - base, 0)
        const to = Math.min(end - base, block.length)
        if (to > from) yield { kind: 'data', chunk: block.subarray(from, to) }
      }
    } finally {
      // Never close the fd under a read still using it.
      await next?.catch(() => {})
    }
    // Blocks read from disk during the transfer must all come from this version of the file.
    if ((await currentIdentity(file)) !== file.key) {
      throw error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
    }
    yield { kind: 'end', body: { length: end - offset } }
  } finally {
    await file.fh.close()
  }
}
