/**
 * LeasedBlocks against a real MemoryBudget: a leased block costs the budget
 * only while the cache does not hold it, once however many leases it has;
 * a block nothing holds is dropped (its store slot freed) exactly once; a
 * copy is charged to the copy pool until its lease ends.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { LeasedBlocks } from '../../lib/cache/leased-blocks.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'

const BLOCK = 4096

/** LeasedBlocks over a budget of 64 blocks, and the blocks it dropped, in order. */
function setup(): { leased: LeasedBlocks; budget: MemoryBudget; dropped: Buffer[] } {
  const budget = new MemoryBudget(64 * BLOCK)
  const dropped: Buffer[] = []
  return { leased: new LeasedBlocks(budget, (b) => dropped.push(b)), budget, dropped }
}

describe('LeasedBlocks', () => {
  test('a block the cache holds costs nothing while leased, and is not dropped when its lease ends', () => {
    const { leased, budget, dropped } = setup()
    const block = Buffer.alloc(BLOCK)
    const lease = leased.lease(block, () => true)
    assert.equal(lease.charged, false)
    assert.equal(leased.has(block), true)
    assert.equal(budget.used, 0)
    lease.release()
    assert.equal(leased.has(block), false)
    assert.deepEqual(dropped, [], 'the cache still holds it')
  })

  test('a block let go while leased is charged from then until its last lease ends, then dropped', () => {
    const { leased, budget, dropped } = setup()
    const block = Buffer.alloc(BLOCK)
    const a = leased.lease(block, () => true)
    const b = leased.lease(block, () => true)
    leased.letGo(block)
    assert.ok(a.charged && b.charged)
    assert.equal(budget.used, BLOCK)
    assert.equal(leased.outside, BLOCK)
    assert.deepEqual(dropped, [], 'still leased: not dropped')
    leased.letGo(block)
    assert.equal(budget.used, BLOCK, 'let go twice, charged once')
    a.release()
    a.release()
    assert.equal(budget.used, BLOCK, 'the other lease still holds it')
    b.release()
    assert.equal(budget.used, 0)
    assert.equal(leased.outside, 0)
    assert.deepEqual(dropped, [block])
  })

  test('a block the cache does not hold is charged at its first lease, once for all', () => {
    const { leased, budget, dropped } = setup()
    const block = Buffer.alloc(BLOCK)
    let asked = 0
    const cached = () => {
      asked++
      return false
    }
    const a = leased.lease(block, cached)
    const b = leased.lease(block, cached)
    assert.equal(asked, 1, 'asked at the first lease only')
    assert.ok(a.charged && b.charged)
    assert.equal(budget.used, BLOCK)
    b.release()
    a.release()
    assert.equal(budget.used, 0)
    assert.deepEqual(dropped, [block])
    // Leased again after its last lease ended: a new holding, asked again.
    leased.lease(block, cached).release()
    assert.equal(asked, 2)
  })

  test('a block let go with no lease is dropped at once, costing nothing', () => {
    const { leased, budget, dropped } = setup()
    const block = Buffer.alloc(BLOCK)
    leased.letGo(block)
    assert.equal(budget.used, 0)
    assert.deepEqual(dropped, [block])
  })

  test('letGoAllBut charges every leased block but those kept', () => {
    const { leased, budget } = setup()
    const kept = Buffer.alloc(BLOCK)
    const gone = Buffer.alloc(2 * BLOCK)
    const k = leased.lease(kept, () => true)
    const g = leased.lease(gone, () => true)
    leased.letGoAllBut((b) => b === kept)
    assert.equal(k.charged, false)
    assert.equal(g.charged, true)
    assert.equal(budget.used, 2 * BLOCK)
    assert.equal(leased.outside, 2 * BLOCK)
  })

  test('without a budget, leases still tell what the cache no longer holds and drop it at the end', () => {
    const dropped: Buffer[] = []
    const leased = new LeasedBlocks(null, (b) => dropped.push(b))
    const block = Buffer.alloc(BLOCK)
    const lease = leased.lease(block, () => false)
    assert.equal(lease.charged, true)
    assert.equal(leased.outside, BLOCK)
    lease.release()
    assert.deepEqual(dropped, [block])
    assert.ok(leased.chargeCopy(100).charged)
  })
})

describe('copy leases', () => {
  test('a charged copy holds the copy pool until released, once', () => {
    const { leased, budget } = setup()
    const a = leased.chargeCopy(1000)
    const b = leased.chargeCopy(500)
    assert.ok(a.charged && b.charged)
    assert.equal(budget.used, 1500)
    a.release()
    a.release()
    assert.equal(budget.used, 500)
    b.release()
    assert.equal(budget.used, 0)
  })

  test('a reserved copy waits for room in the copy pool, in turn, and gives up when its signal aborts', async () => {
    const { leased, budget } = setup()
    // The copy pool is a quarter of the budget: 16 blocks.
    const first = await leased.reserveCopy(16 * BLOCK)
    const stop = new AbortController()
    const waiting = leased.reserveCopy(BLOCK, { signal: stop.signal })
    let secondIn = false
    const second = leased.reserveCopy(BLOCK).then((l) => {
      secondIn = true
      return l
    })
    await new Promise((r) => setImmediate(r))
    assert.equal(secondIn, false, 'the pool is full')
    stop.abort(new Error('request cancelled'))
    await assert.rejects(waiting, /request cancelled/)
    first.release()
    const lease = await second
    assert.equal(budget.used, BLOCK, 'the aborted reservation took nothing')
    lease.release()
    assert.equal(budget.used, 0)
  })

  test('a reserved copy of a request with less left to send goes first', async () => {
    const { leased } = setup()
    const full = await leased.reserveCopy(16 * BLOCK)
    const order: string[] = []
    const long = leased.reserveCopy(16 * BLOCK, { left: 1e9 }).then((l) => (order.push('long'), l))
    const short = leased.reserveCopy(16 * BLOCK, { left: 10 }).then((l) => (order.push('short'), l))
    full.release()
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(order, ['short'], 'the long one waits its turn')
    ;(await short).release()
    ;(await long).release()
    assert.deepEqual(order, ['short', 'long'])
  })
})
