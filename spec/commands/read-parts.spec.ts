/**
 * rangeParts cuts a byte range of a file version into DATA parts where the
 * pager cuts its pages: whole pages viewing one block (each leasing it), a
 * page across two blocks copied under a lease of its own, or the last,
 * shorter page. diskBlocks reads the blocks through the cache, counted.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import type { BlockLease } from '../../lib/cache/block-lease.js'
import { type BlockGetter, diskBlocks, rangeParts } from '../../lib/commands/read-parts.js'
import { openFile } from '../../lib/fs/open-file.js'
import type { Part } from '../../lib/stages/items.js'
import { collect, commandContext, dataOf } from '../helpers/command-context.js'

const BLOCK = 4096
type Data = Extract<Part, { kind: 'data' }>

/** A context whose root holds f.bin of `size` bytes, and that file open (closed after the test). */
async function withFile(t: TestContext, size: number) {
  const c = await commandContext(t, { 'f.bin': size }, { blockSize: BLOCK })
  const file = await openFile(c.ctx.jail, 'f.bin')
  t.after(() => file.fh.close())
  const get = diskBlocks(c.ctx, file, { fromDisk: 0 }, {})
  return { ...c, file, get, bytes: c.data['f.bin'] }
}

const lengths = (parts: Part[]) => parts.map((p) => (p as Data).chunk.length)

/** Where each part ends, counted from the range's start. */
function ends(parts: Part[]): number[] {
  let at = 0
  return parts.map((p) => (at += (p as Data).chunk.length))
}

describe('rangeParts', () => {
  test('without a page size: a part per block, each a view of its block under a lease shown to hold()', async (t) => {
    const { ctx, file, get, bytes } = await withFile(t, 2 * BLOCK + 100)
    const held: BlockLease[] = []
    const parts = await collect(rangeParts(ctx, file, 10, file.size, get, { hold: (l) => held.push(l as BlockLease) }))
    assert.deepEqual(lengths(parts), [BLOCK - 10, BLOCK, 100])
    assert.ok(dataOf(parts).equals(bytes.subarray(10)))
    assert.deepEqual(held, parts.map((p) => (p as Data).lease), 'each part\'s lease, shown before the part is handed on')
    assert.ok(held.every((l) => l.released), 'released by whoever took the part')
  })

  test('pages that divide the block: whole pages per block, never a part ending inside a page but the last', async (t) => {
    const page = 1024
    const { ctx, file, get, bytes } = await withFile(t, 3 * BLOCK + 700)
    const parts = await collect(rangeParts(ctx, file, 0, file.size, get, { pageSize: () => page }))
    assert.deepEqual(lengths(parts), [BLOCK, BLOCK, BLOCK, 700])
    assert.ok(dataOf(parts).equals(bytes))
  })

  test('a range not on a page boundary of the block: the page across two blocks is copied, under its own lease', async (t) => {
    const page = 1024
    const { ctx, file, get, bytes, memory } = await withFile(t, 3 * BLOCK)
    const from = 100
    const parts: Data[] = []
    const charged: number[] = []
    for await (const part of rangeParts(ctx, file, from, file.size, get, { pageSize: () => page })) {
      charged.push(memory.used)
      parts.push(part as Data)
      if (part.kind === 'data') part.lease?.release()
    }
    assert.ok(dataOf(parts).equals(bytes.subarray(from)))
    // Every part but the last ends on a page boundary of the range: the pager never waits on a partial page.
    assert.ok(ends(parts).slice(0, -1).every((e) => e % page === 0), `ends ${ends(parts).join(' ')}`)
    const straddling = parts.filter((_, i) => {
      const start = from + (ends(parts)[i] - parts[i].chunk.length)
      return Math.floor(start / BLOCK) !== Math.floor((start + parts[i].chunk.length - 1) / BLOCK)
    })
    assert.equal(straddling.length, 2, 'a page across each of the two block boundaries')
    for (const p of straddling) assert.equal(p.chunk.length, page, 'one page each')
    assert.ok(Math.max(...charged) >= page, `a copy is charged to the memory budget while held (${charged.join(' ')})`)
    assert.equal(memory.used, 0, 'and given back once released')
  })

  test('the page size is asked for at each part: one shrunk meanwhile (a NACK) cuts the parts after it', async (t) => {
    const { ctx, file, get, bytes } = await withFile(t, 4 * BLOCK)
    let page = BLOCK
    const parts: Part[] = []
    for await (const part of rangeParts(ctx, file, 0, file.size, get, { pageSize: () => page })) {
      parts.push(part)
      if (part.kind === 'data') part.lease?.release()
      page = 1536
    }
    assert.deepEqual(lengths(parts).slice(0, 3), [BLOCK, 2 * 1536, 1536], 'a whole block, then pages of the new size')
    assert.ok(ends(parts).slice(1, -1).every((e) => (e - BLOCK) % 1536 === 0), `ends ${ends(parts).join(' ')}`)
    assert.ok(dataOf(parts).equals(bytes))
  })

  test('with flush, only the range\'s last part is flushed, view or copy; without it, none', async (t) => {
    const { ctx, file, get } = await withFile(t, 2 * BLOCK + 50)
    for (const [from, end] of [[0, file.size], [BLOCK - 10, BLOCK + 10]]) {
      const parts = (await collect(rangeParts(ctx, file, from, end, get, { pageSize: () => 1024, flush: true }))) as Data[]
      assert.deepEqual(parts.map((p) => p.flush === true), parts.map((_, i) => i === parts.length - 1), `${from}..${end}`)
      const plain = (await collect(rangeParts(ctx, file, from, end, get, { pageSize: () => 1024 }))) as Data[]
      assert.ok(plain.every((p) => !p.flush))
    }
  })

  test('an empty range yields nothing', async (t) => {
    const { ctx, file, get } = await withFile(t, BLOCK)
    assert.deepEqual(await collect(rangeParts(ctx, file, BLOCK, BLOCK, get, { pageSize: () => 1024 })), [])
  })

  test('a block shorter than the range needs (the file shrank) is ECHANGED; a copy gives its memory back', async (t) => {
    const { ctx, file, memory } = await withFile(t, 2 * BLOCK)
    const short: BlockGetter = () => Buffer.alloc(BLOCK / 2)
    await assert.rejects(collect(rangeParts(ctx, file, 0, file.size, short)), { code: 'ECHANGED', message: /shrank on disk/ })
    // From 3000 with pages of 2048: the first page runs across the block boundary, into a block that is not there.
    const none: BlockGetter = (index) => (index === 0 ? Buffer.alloc(BLOCK) : Buffer.alloc(0))
    await assert.rejects(collect(rangeParts(ctx, file, 3000, file.size, none, { pageSize: () => 2048 })), { code: 'ECHANGED' })
    assert.equal(memory.used, 0)
  })
})

describe('diskBlocks', () => {
  test('reads through the cache: blocks from disk are tallied, and only the bytes served count as hits or misses', async (t) => {
    const { ctx, cache, file } = await withFile(t, 2 * BLOCK)
    const tally = { fromDisk: 0 }
    const get = diskBlocks(ctx, file, tally, {})
    await collect(rangeParts(ctx, file, 100, BLOCK + 200, get))
    assert.equal(tally.fromDisk, 2)
    assert.deepEqual([cache.stats().misses, cache.stats().missBytes], [2, BLOCK + 100])
    await collect(rangeParts(ctx, file, 0, 50, get))
    assert.equal(tally.fromDisk, 2, 'a cached block is not read again')
    assert.deepEqual([cache.stats().hits, cache.stats().hitBytes], [1, 50])
  })
})
