/**
 * BlockLease: a claim on a block's memory while its bytes are on their way
 * out. Releasing is idempotent (a byte budget freed twice would drift), a
 * released lease holds nothing, and through a real BlockCache a lease costs
 * the memory budget only while its block is outside the cache.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import { BlockLease, releaseHeld } from '../../lib/cache/block-lease.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile, type OpenFile } from '../../lib/fs/open-file.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

const BLOCK = 4096

/** A cache with a memory budget, and an open file of `blocks` whole blocks. */
async function setup(t: TestContext, blocks = 4): Promise<{ cache: BlockCache; budget: MemoryBudget; file: OpenFile }> {
  const root = tempDir(t)
  writeFile(root, 'f.bin', blocks * BLOCK)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const file = await openFile(jail, 'f.bin')
  t.after(() => file.fh.close())
  const budget = new MemoryBudget(64 * BLOCK)
  return { cache: new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK, memory: budget }), budget, file }
}

describe('BlockLease', () => {
  test('release runs its callback and onRelease once, however often it is called', () => {
    let released = 0
    let told = 0
    const lease = new BlockLease(() => released++, () => true)
    lease.onRelease = () => told++
    assert.equal(lease.released, false)
    assert.equal(lease.charged, true)
    lease.release()
    lease.release()
    assert.deepEqual({ released, told }, { released: 1, told: 1 })
    assert.equal(lease.released, true)
    // Whatever the block's state, a released lease no longer holds its memory.
    assert.equal(lease.charged, false)
    assert.equal(lease.onRelease, null)
  })

  test('releaseHeld releases the lease a part carries, and passes over a part without one', () => {
    let released = 0
    const part = { lease: new BlockLease(() => released++, () => false) }
    releaseHeld(part)
    releaseHeld(part)
    releaseHeld({})
    assert.equal(released, 1)
  })
})

describe('leases from a BlockCache', () => {
  test('a lease on a cached block costs nothing until the block is evicted; then it is charged until released', async (t) => {
    const { cache, budget, file } = await setup(t)
    const block = await cache.block(file, 0)
    const lease = cache.lease(file, 0, block)
    assert.equal(lease.charged, false)
    assert.equal(budget.used, 0)
    assert.equal(cache.evictFile(file).blocks, 1)
    assert.equal(lease.charged, true, 'evicted while leased: the block is still in memory')
    assert.equal(budget.used, BLOCK)
    assert.equal(cache.leasedOutside, BLOCK)
    // A lease on a block still cached gives back nothing: it took nothing.
    const other = cache.lease(file, 1, await cache.block(file, 1))
    assert.equal(other.charged, false)
    other.release()
    assert.equal(budget.used, BLOCK)
    lease.release()
    lease.release()
    assert.equal(budget.used, 0)
    assert.equal(cache.leasedOutside, 0)
  })

  test('a block leased outside the cache is charged once for all its leases, and freed with the last', async (t) => {
    const { cache, budget, file } = await setup(t)
    const block = await cache.block(file, 1)
    cache.evictFile(file)
    const a = cache.lease(file, 1, block)
    const b = cache.lease(file, 1, block)
    assert.ok(a.charged && b.charged)
    assert.equal(budget.used, BLOCK, 'one block in memory, not two')
    a.release()
    a.release() // a second release of one lease must not count as the other's
    assert.equal(budget.used, BLOCK, 'still held by the other lease')
    assert.equal(b.charged, true)
    b.release()
    assert.equal(budget.used, 0)
  })

  test('copy leases charge the copy pool until released, each once', async (t) => {
    const { cache, budget } = await setup(t)
    const reserved = await cache.reserveCopy(1000)
    const charged = cache.leaseCopy(500)
    assert.ok(reserved.charged && charged.charged, 'a copy is never the cache\'s')
    assert.equal(budget.used, 1500)
    reserved.release()
    reserved.release()
    assert.equal(budget.used, 500, 'a double release would free the other copy\'s bytes too')
    charged.release()
    assert.equal(budget.used, 0)
  })
})
