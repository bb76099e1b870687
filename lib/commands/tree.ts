/**
 * tree {path?, suffix?, after?, limit?}: every regular file under a directory
 * (or the file itself), depth first in name order, as RESULT {files: [{path,
 * size}], next}. At most `limit` files a page (default 10,000, at most
 * 100,000); `next` is the cursor of the next page (pass it as `after`), or
 * null after the last. Paths are relative to the root as the walk reached
 * them (through symlinks that stay inside the root); `suffix` keeps only
 * names ending with it.
 *
 * A page is read from the tree as it is when the page is asked for, so pages
 * asked for while the tree changes may show it at different moments; each
 * path is listed at most once, in order.
 */
import { error } from '../errors.js'
import { walk } from '../fs/walk.js'
import type { Part } from '../stages/items.js'
import { optionalCount, optionalString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

export const DEFAULT_TREE_PAGE = 10_000
export const MAX_TREE_PAGE = 100_000

export interface TreeFile {
  path: string
  size: number
}

export async function* tree(args: Record<string, unknown>, ctx: CommandContext, { signal }: CommandIO = {}): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const suffix = optionalString(args, 'suffix', '')
  const after = args.after === undefined || args.after === null ? undefined : optionalString(args, 'after', '')
  const limit = optionalCount(args, 'limit') ?? DEFAULT_TREE_PAGE
  if (limit < 1 || limit > MAX_TREE_PAGE) throw error('EBADREQ', `limit must be 1 to ${MAX_TREE_PAGE}, got ${limit}`)
  const files: TreeFile[] = []
  let next: string | null = null
  for await (const f of walk(ctx.jail, path, signal, after)) {
    if (suffix !== '' && !f.rel.endsWith(suffix)) continue
    if (files.length === limit) {
      // One more exists: the page ends at the last one listed.
      next = files[files.length - 1].path
      break
    }
    files.push({ path: f.rel, size: f.size })
  }
  ctx.listings?.page(path, after, next, files.reduce((n, f) => n + f.size, 0))
  yield { kind: 'result', body: { files, next } }
}
