/**
 * A byte range of a file version as DATA parts, cut where the pager will cut
 * its pages: each part is whole pages viewing one block, a page that spans
 * two blocks (copied), or the last, shorter page. The pager then never holds
 * a partial page waiting for the next block, which would keep memory while
 * the next block's disk read waits for memory (see MemoryBudget).
 *
 * Each view leases its block and each copy leases its own memory; nothing
 * else keeps a block once the part is handed on.
 */
import type { BlockUse } from '../cache/block-cache.js'
import { error } from '../errors.js'
import type { Part } from '../stages/items.js'
import type { Releasable } from '../cache/block-lease.js'
import type { CommandContext, CommandIO } from './context.js'

/**
 * Where a part's blocks come from: the cache or the disk (may wait for
 * memory), or blocks leased already. `bytes`: how many of the block's bytes
 * this use serves (the cache's hit and miss counters).
 */
type DataPart = Extract<Part, { kind: 'data' }>

export type BlockGetter = (index: number, bytes: number) => Buffer | Promise<Buffer>

/**
 * Bytes `from`..`end` of `file` as DATA parts; `pageSize` is the request's
 * current page size, if it has one. With `flush`, the range's last page ends
 * with it, short or not (readv: a frame never joins two files' bytes).
 */
export async function* rangeParts(
  ctx: CommandContext,
  file: { key: string; size: number },
  from: number,
  end: number,
  get: BlockGetter,
  { pageSize, hold, signal, backedUp, flush = false }: Pick<CommandIO, 'pageSize' | 'hold' | 'signal' | 'backedUp'> & { flush?: boolean } = {},
): AsyncGenerator<Part, void, void> {
  const bs = ctx.cache.blockSize
  let pos = from
  while (pos < end) {
    const index = Math.floor(pos / bs)
    const base = index * bs
    const blockEnd = Math.min(end, base + bs)
    const page = pageSize?.()
    // Without a page size, a part per block.
    const whole = page === undefined ? blockEnd - pos : Math.floor((blockEnd - pos) / page) * page
    if (whole > 0 || blockEnd === end) {
      const to = whole > 0 ? pos + whole : end
      // No local keeps the block: the part (and its lease) is its only holder once yielded.
      const part = view(ctx, file, index, await get(index, to - pos), pos - base, to - base, hold)
      if (flush && to === end) part.flush = true
      yield part
      pos = to
      continue
    }
    const size = Math.min(page!, end - pos)
    const part = await straddle(ctx, file, pos, size, get, { hold, signal, later: backedUp, left: end - pos })
    if (flush && pos + size === end) part.flush = true
    yield part
    pos += size
  }
}

function view(ctx: CommandContext, file: { key: string }, index: number, block: Buffer, from: number, to: number, hold?: (lease: Releasable) => void): DataPart {
  if (block.length < to) throw shrank()
  const lease = ctx.cache.lease(file, index, block)
  hold?.(lease)
  return { kind: 'data', chunk: block.subarray(from, to), lease }
}

/**
 * A page across block boundaries, copied from each block in turn. Its memory
 * comes first, waited for like a block's (the pager holds no part of this
 * page meanwhile: parts end where pages do); then its blocks, which are not
 * leased, so none may be let go between their lookup and the copy.
 */
async function straddle(
  ctx: CommandContext,
  file: { size: number },
  pos: number,
  size: number,
  get: BlockGetter,
  { hold, ...wait }: { hold?: (lease: Releasable) => void } & Pick<BlockUse, 'signal' | 'later' | 'left'>,
): Promise<DataPart> {
  const bs = ctx.cache.blockSize
  const lease = await ctx.cache.reserveCopy(size, wait)
  hold?.(lease)
  try {
    const chunk = Buffer.allocUnsafeSlow(size)
    for (let at = 0; at < size; ) {
      const index = Math.floor((pos + at) / bs)
      const off = pos + at - index * bs
      const want = Math.min(size - at, Math.min(bs, file.size - index * bs) - off)
      const block = await get(index, want)
      const n = Math.min(want, block.length - off)
      if (n <= 0) throw shrank()
      at += block.copy(chunk, at, off, off + n)
    }
    return { kind: 'data', chunk, lease }
  } catch (err) {
    lease.release()
    throw err
  }
}

function shrank() {
  return error('ECHANGED', 'file shrank on disk while it was being read; read it again')
}

/** Block reads through the cache, counted, waiting for memory as `wait` says. */
export function diskBlocks(ctx: CommandContext, file: Parameters<CommandContext['cache']['block']>[0], tally: { fromDisk: number }, wait: Pick<BlockUse, 'signal' | 'later' | 'left'>): BlockGetter {
  return (index, bytes) => ctx.cache.block(file, index, { tally, bytes, ...wait })
}
