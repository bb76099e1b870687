/**
 * pin {path}: keep a file, or every file under a directory, in the cache
 * whatever the eviction policy does, loading what is not cached; RESULT
 * {files, bytes, pinnedFiles, pinnedBytes}. More than the cache can pin is
 * ENOSPC, and pins nothing. unpin {path}: the pinned files at or under the
 * path become ordinary cache entries again; same RESULT. See server/pins.ts.
 */
import type { Part } from '../stages/items.js'
import { optionalString, requiredString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

export async function* pin(args: Record<string, unknown>, ctx: CommandContext, { signal }: CommandIO = {}): AsyncGenerator<Part, void, void> {
  yield { kind: 'result', body: await ctx.pins.pin(requiredString(args, 'path'), signal) }
}

export async function* unpin(args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  yield { kind: 'result', body: await ctx.pins.unpin(optionalString(args, 'path', '')) }
}
