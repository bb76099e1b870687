/** stat {path}: RESULT {path, type, size, mtimeMs, mtime, cachedBytes, cached}. */
import { type BigIntStats, constants } from 'node:fs'
import { Jail } from '../fs/jail.js'
import { openInside } from '../fs/safe-open.js'
import { identityOf } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { requiredString } from './args.js'
import type { CommandContext } from './context.js'

export async function* stat(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = requiredString(args, 'path')
  // fstat of the opened, checked descriptor, not of a name that may have been swapped meanwhile.
  const fh = await openInside(ctx.jail, await ctx.jail.resolve(path), constants.O_RDONLY | constants.O_NONBLOCK, Jail.shown(path))
  let st: BigIntStats
  try {
    st = await fh.stat({ bigint: true })
  } finally {
    await fh.close()
  }
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other'
  const size = Number(st.size)
  const cachedBytes = type === 'file' ? ctx.cache.cachedBytes({ key: identityOf(st), size }) : 0
  const mtimeMs = Number(st.mtimeMs)
  yield {
    kind: 'result',
    body: { path, type, size, mtimeMs, mtime: new Date(mtimeMs).toISOString(), cachedBytes, cached: type === 'file' && cachedBytes === size },
  }
}
