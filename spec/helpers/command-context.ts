/**
 * A server's command context over a temp root, built as CacheServer builds
 * it (jail, block cache, known files, pins, settle), for specs that run a
 * command's generator themselves; and a runner that collects its parts.
 */
import type { TestContext } from 'node:test'
import { BlockCache, type BlockCacheOptions } from '../../lib/cache/block-cache.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import type { CommandContext } from '../../lib/commands/context.js'
import { Jail } from '../../lib/fs/jail.js'
import { KnownFiles } from '../../lib/fs/known-files.js'
import { Settle } from '../../lib/fs/settle.js'
import { Pins } from '../../lib/server/pins.js'
import type { Part } from '../../lib/stages/items.js'
import { tempDir, writeFile } from './fixtures.js'

export interface ContextOptions extends Partial<BlockCacheOptions> {
  /** Bytes of the memory budget for blocks outside the cache. Default: 64 blocks. */
  budget?: number
}

/** A context over a fresh root holding `files` (path → random bytes of that size, or the given bytes). */
export async function commandContext(t: Pick<TestContext, 'after'>, files: Record<string, number | Buffer | string> = {}, opts: ContextOptions = {}) {
  const root = tempDir(t)
  const data: Record<string, Buffer> = {}
  for (const [rel, content] of Object.entries(files)) data[rel] = writeFile(root, rel, content)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const blockSize = opts.blockSize ?? 4096
  const memory = opts.memory ?? new MemoryBudget(opts.budget ?? 64 * blockSize)
  // LRU: every block read is kept, so what is cached is what was read.
  const cache = new BlockCache({ limit: 1024 * blockSize, policy: 'lru', ...opts, blockSize, memory })
  // Files written just before they are read: no settle wait (as spec/helpers/server.ts).
  const settle = new Settle(0)
  const ctx: CommandContext = { jail, cache, files: new KnownFiles(jail), pins: new Pins(jail, cache, settle), settle, checksum: 'crc32', writable: false, stats: () => ({}) }
  return { root, data, ctx, cache, memory }
}

/** Every part a command yields, each DATA part's lease released as the framer would once its bytes are written. */
export async function collect(gen: AsyncGenerator<Part, unknown, void>): Promise<Part[]> {
  const parts: Part[] = []
  for await (const part of gen) {
    if (part.kind === 'data') part.lease?.release()
    parts.push(part)
  }
  return parts
}

/** The DATA parts' bytes, joined. */
export function dataOf(parts: Part[]): Buffer {
  return Buffer.concat(parts.flatMap((p) => (p.kind === 'data' ? [p.chunk] : [])))
}
