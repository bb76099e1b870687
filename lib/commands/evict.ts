/**
 * evict {path?}: drop the cached blocks of a file, or of every file under a
 * directory; without a path, everything. RESULT {files, blocks, bytes}.
 */
import { walk } from '../fs/walk.js'
import type { Part } from '../stages/items.js'
import { optionalString } from './args.js'
import type { CommandContext } from './context.js'

export async function* evict(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  if (args.path === undefined || args.path === null) {
    const { blocks, bytes } = ctx.cache.clear()
    yield { kind: 'result', body: { files: null, blocks, bytes } }
    return
  }
  const path = optionalString(args, 'path', '')
  let files = 0
  let blocks = 0
  let bytes = 0
  for await (const f of walk(ctx.jail, path, undefined, undefined, ctx.meta)) {
    // The identity the walk saw through the held directory: no second look by name.
    const dropped = ctx.cache.evictFile({ key: f.key, size: f.size })
    files++
    blocks += dropped.blocks
    bytes += dropped.bytes
  }
  yield { kind: 'result', body: { files, blocks, bytes } }
}
