/** stat {path}: RESULT {path, type, size, mtimeMs, mtime, cachedBytes, cached, pinned}. */
import { identityOf } from '../fs/open-file.js'
import type { Part } from '../stages/items.js'
import { requiredString } from './args.js'
import type { CommandContext } from './context.js'

export async function* stat(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  const path = requiredString(args, 'path')
  // The fstat of what the jail resolved and holds, not of a name that may be swapped meanwhile;
  // nothing is opened (a FIFO or a device is only named).
  const found = await ctx.jail.lookup(path)
  const st = found.st
  found.close()
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other'
  const size = Number(st.size)
  const cachedBytes = type === 'file' ? ctx.cache.cachedBytes({ key: identityOf(st), size }) : 0
  const mtimeMs = Number(st.mtimeMs)
  yield {
    kind: 'result',
    body: { path, type, size, mtimeMs, mtime: new Date(mtimeMs).toISOString(), cachedBytes, cached: type === 'file' && cachedBytes === size, pinned: type === 'file' && ctx.pins.has(path) },
  }
}
