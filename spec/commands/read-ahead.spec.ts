/**
 * ReadAhead, readv's look ahead: while entry i is sent, the first blocks
 * (four at most) of the four files after it are loaded, no more than four
 * loads at once and none after stop(). A load that fails is skipped and
 * gives its place to the next; loads are not counted as the readers' hits
 * or misses.
 */
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import type { Wanted } from '../../lib/commands/args.js'
import type { CommandContext } from '../../lib/commands/context.js'
import { ReadAhead } from '../../lib/commands/read-ahead.js'
import { Jail } from '../../lib/fs/jail.js'
import { KnownFiles } from '../../lib/fs/known-files.js'
import { openFile } from '../../lib/fs/open-file.js'
import { Settle } from '../../lib/fs/settle.js'
import { Pins } from '../../lib/server/pins.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { poll } from '../helpers/wait.js'

const BLOCK = 4096

/** A server's command context over a root holding `sizes` (path → bytes); `blocks(path)` says which of its blocks are cached. */
async function context(t: TestContext, sizes: Record<string, number>) {
  const root = tempDir(t)
  for (const [rel, size] of Object.entries(sizes)) writeFile(root, rel, size)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  // LRU: every block is admitted, so what is cached is what was loaded.
  const cache = new BlockCache({ limit: 1024 * BLOCK, blockSize: BLOCK, policy: 'lru' })
  const settle = new Settle(0)
  const ctx: CommandContext = { jail, cache, files: new KnownFiles(jail), pins: new Pins(jail, cache, settle), settle, checksum: 'crc32', writable: false, stats: () => ({}) }
  const blocks = async (path: string): Promise<number[]> => {
    const file = await openFile(jail, path)
    try {
      return Array.from({ length: Math.ceil(file.size / BLOCK) }, (_, i) => i).filter((i) => cache.cachedBlocks(file, i, i) !== null)
    } finally {
      await file.fh.close()
    }
  }
  return { root, ctx, cache, blocks, known: (...paths: string[]) => paths.every((p) => ctx.files.knows(p)) }
}

/** Holds every block load of `cache` until the test lets it go; counts the most held at once. */
function gate(cache: BlockCache) {
  const waiting: { name: string; go: () => void }[] = []
  let running = 0
  let most = 0
  const block = cache.block.bind(cache)
  cache.block = async (...args: Parameters<typeof block>) => {
    most = Math.max(most, ++running)
    try {
      await new Promise<void>((go) => waiting.push({ name: args[0].name, go }))
      return await block(...args)
    } finally {
      running--
    }
  }
  const release = () => waiting.splice(0).forEach((w) => w.go())
  return { waiting, release, names: () => waiting.map((w) => w.name).sort(), most: () => most }
}

const paths = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `f${String(from + i).padStart(2, '0')}`)

describe('ReadAhead', () => {
  test('loads the first blocks of the four files after the one being sent, and nothing else', async (t) => {
    const { ctx, cache, blocks, known } = await context(t, { a: 2 * BLOCK, big: 10 * BLOCK, big2: 10 * BLOCK, c: BLOCK + 1, d: BLOCK, e: BLOCK })
    const wants: Wanted[] = [{ path: 'a' }, { path: 'big' }, { path: 'big2', offset: 5 * BLOCK + 1, length: 2 * BLOCK }, { path: 'c' }, { path: 'd' }, { path: 'e' }]
    new ReadAhead(ctx, wants).at(0)
    assert.ok(await poll(() => known('big', 'big2', 'c', 'd')), 'the four files after entry 0 were loaded')
    await tick()
    const { hits, misses } = cache.stats()
    assert.deepEqual({ hits, misses }, { hits: 0, misses: 0 }, 'loading ahead is no reader\'s hit or miss')
    assert.deepEqual(await blocks('a'), [], 'the entry being sent is read by the request itself')
    assert.deepEqual(await blocks('big'), [0, 1, 2, 3], 'four blocks of a big file: the rest is read at its turn')
    assert.deepEqual(await blocks('big2'), [5, 6, 7], 'a range: its own blocks, up to its end')
    assert.deepEqual(await blocks('c'), [0, 1])
    assert.deepEqual(await blocks('d'), [0])
    assert.deepEqual(await blocks('e'), [], 'five ahead: not yet')
    assert.equal(known('e'), false)
  })

  test('never more than four loads at once; after stop() those under way finish and none start', async (t) => {
    const sizes = Object.fromEntries(paths(0, 12).map((p) => [p, BLOCK]))
    sizes.f05 = 3 * BLOCK
    const { ctx, blocks, known } = await context(t, sizes)
    const loads = gate(ctx.cache)
    const ahead = new ReadAhead(ctx, paths(0, 12).map((path) => ({ path })))
    ahead.at(0)
    assert.ok(await poll(() => loads.waiting.length === 4))
    assert.deepEqual(loads.names(), paths(1, 5))
    ahead.at(3) // the request moved on while all four still load
    assert.equal(await poll(() => loads.waiting.length > 4, 100), false, 'no fifth load while four are under way')
    loads.release()
    assert.ok(await poll(() => known(...paths(1, 5))))
    ahead.at(3)
    assert.ok(await poll(() => loads.names().join() === paths(5, 8).join()), 'up to four ahead of entry 3')
    ahead.stop()
    loads.release()
    assert.ok(await poll(() => known(...paths(5, 8))), 'loads under way finish')
    ahead.at(8)
    assert.equal(await poll(() => loads.waiting.length > 0, 100), false, 'nothing starts after stop')
    assert.equal(known(...paths(9, 12)), false)
    assert.deepEqual(await blocks('f06'), [0], 'what was loaded stays cached')
    assert.deepEqual(await blocks('f05'), [0], 'a file stopped in the middle: no block after the one under way')
    assert.equal(loads.most(), 4)
  })

  test('a load that ends refills the window around the entry sent now, not around the one it started for', async (t) => {
    const { ctx } = await context(t, Object.fromEntries(paths(0, 12).map((p) => [p, BLOCK])))
    const loads = gate(ctx.cache)
    const ahead = new ReadAhead(ctx, paths(0, 12).map((path) => ({ path })))
    ahead.at(0)
    assert.ok(await poll(() => loads.waiting.length === 4))
    ahead.at(1) // f05 is in reach now, but four loads run
    const f01 = loads.waiting.findIndex((w) => w.name === 'f01')
    loads.waiting.splice(f01, 1)[0]!.go()
    assert.ok(await poll(() => loads.names().includes('f05')), `f05 starts when f01's place frees: ${loads.names().join(' ')}`)
    ahead.stop()
    loads.release()
  })

  test('a path that cannot be read is skipped and gives its place to the next; a path read lately is not opened again', async (t) => {
    const { root, ctx, blocks, known } = await context(t, { a: BLOCK, e: BLOCK, f: BLOCK, g: BLOCK })
    mkdirSync(join(root, 'sub'))
    const unhandled: unknown[] = []
    const note = (err: unknown) => unhandled.push(err)
    process.on('unhandledRejection', note)
    t.after(() => process.off('unhandledRejection', note))
    // Lately read: its blocks are likely cached, and a stat would cost as much as a hot read.
    const g = await openFile(ctx.jail, 'g')
    ctx.files.remember('g', g)
    await g.fh.close()
    const wants = ['a', 'missing', 'sub', '../outside', 'e', 'g', 'f'].map((path) => ({ path }))
    const ahead = new ReadAhead(ctx, wants)
    ahead.at(0)
    assert.ok(await poll(() => known('e')))
    // Entries 5 and 6 are in reach of entry 2 once the three failures have left their places;
    // when those have ended cannot be seen from here, so each poll says at(2) again (a no-op once done).
    assert.ok(await poll(() => (ahead.at(2), known('f'))))
    await tick()
    assert.deepEqual(unhandled, [], 'the request meets those failures itself, at their turn')
    assert.deepEqual(await blocks('e'), [0])
    assert.deepEqual(await blocks('f'), [0])
    assert.deepEqual(await blocks('g'), [], 'known: not loaded again')
    assert.equal(known('missing') || known('sub'), false)
    ahead.at(wants.length + 5) // past the end: nothing to do
    ahead.stop()
  })
})
