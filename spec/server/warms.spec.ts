/**
 * Warms run by the server itself, over a real command context (jail, block
 * cache, known files, pins, settle) on a temp root, as the server builds it.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import type { CommandContext } from '../../lib/commands/context.js'
import type { WarmProgress } from '../../lib/commands/warm.js'
import { Jail } from '../../lib/fs/jail.js'
import { KnownFiles } from '../../lib/fs/known-files.js'
import { Settle } from '../../lib/fs/settle.js'
import { Pins } from '../../lib/server/pins.js'
import { Warms } from '../../lib/server/warms.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { within } from '../helpers/wait.js'

const BLOCK = 64 * 1024

/** A command context over a temp root holding `sizes` (path → random bytes). */
async function context(t: TestContext, sizes: Record<string, number>) {
  const root = tempDir(t)
  for (const [rel, size] of Object.entries(sizes)) writeFile(root, rel, size)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const cache = new BlockCache({ limit: 256 * BLOCK, blockSize: BLOCK, policy: 'lru', memory: new MemoryBudget(64 * BLOCK) })
  const settle = new Settle(0)
  const ctx: CommandContext = { jail, cache, files: new KnownFiles(jail), pins: new Pins(jail, cache, settle), settle, checksum: 'crc32', writable: false, stats: () => ({}) }
  return { ctx, cache }
}

const TREE = { 'tree/a.bin': 3 * BLOCK + 5, 'tree/sub/b.bin': 1000, 'tree/empty.bin': 0, 'other.bin': 2 * BLOCK }

describe('Warms', () => {
  test('run loads a tree into the cache and resolves with what it loaded', async (t) => {
    const { ctx, cache } = await context(t, TREE)
    const warms = new Warms(ctx)
    const bytes = 3 * BLOCK + 5 + 1000
    const progress: WarmProgress[] = []
    const result = await warms.run('tree', (p) => progress.push(p))
    assert.deepEqual(result, { files: 3, bytes, totalFiles: 3, totalBytes: bytes, full: false })
    assert.equal(cache.stats().cacheBytes, bytes, 'other.bin, outside the tree, stays cold')
    for (const p of progress) assert.ok(p.files <= 3 && p.totalFiles <= 3, JSON.stringify(p))
  })

  test('run of a missing path fails as the warm command does', async (t) => {
    const { ctx } = await context(t, TREE)
    await assert.rejects(new Warms(ctx).run('nothing-here'), { code: 'ENOENT' })
  })

  test('stop ends every warm running with ESHUTDOWN, loads nothing more and leaves no file open', async (t) => {
    const files: Record<string, number> = {}
    for (let i = 0; i < 64; i++) files[`many/${i}.bin`] = BLOCK
    const { ctx, cache } = await context(t, files)
    const before = fdCount()
    const warms = new Warms(ctx)
    const first = warms.run('many')
    const second = warms.run('')
    const stopped = warms.stop()
    await Promise.all([assert.rejects(first, { code: 'ESHUTDOWN', message: 'the server closed before warm finished' }), assert.rejects(second, { code: 'ESHUTDOWN' })])
    assert.ok(await within(stopped, 5000), 'stop() did not resolve')
    assert.equal(cache.stats().cacheBytes, 0, 'a stopped warm went on loading')
    assert.equal(fdCount(), before, 'a stopped warm left a file open')
  })

  test('stop with no warm running resolves, and a warm finished before it is not touched', async (t) => {
    const { ctx } = await context(t, TREE)
    const warms = new Warms(ctx)
    assert.ok(await within(warms.stop(), 1000))
    const done = await warms.run('tree')
    assert.ok(await within(warms.stop(), 1000))
    assert.equal(done.files, 3)
    assert.equal((await warms.run('other.bin')).files, 1, 'a warm started after stop() runs')
  })
})
