/**
 * BlockReads against a real MemoryBudget: readers of a block under way share
 * its one read; the read starts once the budget has room, waiting as its most
 * urgent reader would; its room is held until the block is kept; a read that
 * fails or gives up is forgotten, so the next reader starts anew.
 */
import assert from 'node:assert/strict'
import { setImmediate as turn } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { BlockReads, GaveUp, type ReadSteps } from '../../lib/cache/block-reads.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'

const BLOCK = 4096

/** Steps whose read waits until `finish` (or `fail`), recording what happened in `log`. */
function steps(bytes = BLOCK) {
  const log: string[] = []
  let finish!: (b: Buffer) => void
  let fail!: (err: Error) => void
  let reads = 0
  const block = Buffer.alloc(bytes, 7)
  const s: ReadSteps = {
    read: () => {
      reads++
      log.push('read')
      return new Promise<Buffer>((resolve, reject) => {
        finish = resolve
        fail = reject
      })
    },
    keep: () => log.push('keep'),
    done: () => log.push('done'),
  }
  return { steps: s, log, block, reads: () => reads, finish: () => finish(block), fail: (err: Error) => fail(err) }
}

describe('BlockReads', () => {
  test('readers of a block under way join its one read; once it is over, nothing is under way', async () => {
    const reads = new BlockReads(null)
    const r = steps()
    assert.equal(reads.join('f#0', {}), undefined)
    const first = reads.start('f#0', BLOCK, {}, r.steps)
    const joined = reads.join('f#0', {})
    assert.equal(joined, first, 'the same read')
    assert.equal(reads.join('f#1', {}), undefined, 'another block is not joined')
    r.finish()
    joined!.then(() => r.log.push('joined'))
    assert.equal(await first, r.block)
    await turn()
    assert.equal(r.reads(), 1)
    assert.deepEqual(r.log, ['read', 'keep', 'done', 'joined'], 'kept, then done, before a joined reader sees it')
    assert.equal(reads.join('f#0', {}), undefined)
  })

  test('the read starts once the budget has room, holds it until the block is kept, then gives it back', async () => {
    const budget = new MemoryBudget(2 * BLOCK)
    const reads = new BlockReads(budget)
    budget.charge(2 * BLOCK)
    const r = steps()
    let usedAtKeep = -1
    const p = reads.start('f#0', BLOCK, {}, { ...r.steps, keep: () => (usedAtKeep = budget.used) })
    await turn()
    assert.equal(r.reads(), 0, 'no room yet')
    budget.free(2 * BLOCK)
    await turn()
    assert.equal(r.reads(), 1)
    assert.equal(budget.used, BLOCK)
    r.finish()
    await p
    assert.equal(usedAtKeep, BLOCK, 'its room is still held when the block is kept')
    assert.equal(budget.used, 0)
  })

  test('a read waits behind reading clients only while every reader\'s client has stopped reading', async () => {
    const budget = new MemoryBudget(4 * BLOCK)
    const reads = new BlockReads(budget)
    // Three quarters held: a reader whose client stopped reading may not take more.
    budget.charge(3 * BLOCK)
    const r = steps()
    const p = reads.start('f#0', BLOCK, { later: () => true }, r.steps)
    await turn()
    assert.equal(r.reads(), 0)
    reads.join('f#0', { later: () => true })
    budget.free(0)
    await turn()
    assert.equal(r.reads(), 0, 'every reader stopped')
    reads.join('f#0', { later: () => false })
    budget.free(0)
    await turn()
    assert.equal(r.reads(), 1, 'one reader reads: the read goes ahead')
    r.finish()
    await p
    budget.free(3 * BLOCK)
  })

  test('a read goes as soon as the shortest request waiting on it', async () => {
    const budget = new MemoryBudget(BLOCK)
    const reads = new BlockReads(budget)
    budget.charge(BLOCK)
    const a = steps()
    const b = steps()
    const pa = reads.start('f#0', BLOCK, { left: 1000 }, a.steps)
    const pb = reads.start('f#1', BLOCK, { left: 500 }, b.steps)
    reads.join('f#0', { left: 10 })
    budget.free(BLOCK)
    await turn()
    assert.deepEqual([a.reads(), b.reads()], [1, 0], 'f#0 has a reader with 10 bytes left')
    a.finish()
    await pa
    await turn()
    assert.equal(b.reads(), 1)
    b.finish()
    await pb
    assert.equal(budget.used, 0)
  })

  test('a read whose wait for memory is aborted rejects with GaveUp; the next reader starts anew', async () => {
    const budget = new MemoryBudget(BLOCK)
    const reads = new BlockReads(budget)
    budget.charge(BLOCK)
    const stop = new AbortController()
    const r = steps()
    const p = reads.start('f#0', BLOCK, { signal: stop.signal }, r.steps)
    const reason = new Error('request cancelled')
    stop.abort(reason)
    const err = await p.then(() => null, (e: unknown) => e)
    assert.ok(err instanceof GaveUp)
    assert.equal(err.message, 'stopped while waiting for memory')
    assert.equal(err.cause, reason)
    assert.equal(r.reads(), 0)
    assert.equal(reads.join('f#0', {}), undefined, 'forgotten')
    budget.free(BLOCK)
    const again = steps()
    const q = reads.start('f#0', BLOCK, {}, again.steps)
    await turn()
    again.finish()
    assert.equal(await q, again.block)
    assert.equal(budget.used, 0)
  })

  test('a failed read gives its room back, rejects every reader with its error, and is forgotten', async () => {
    const budget = new MemoryBudget(4 * BLOCK)
    const reads = new BlockReads(budget)
    const r = steps()
    const p = reads.start('f#0', BLOCK, {}, r.steps)
    const joined = reads.join('f#0', {})!
    await turn()
    r.fail(Object.assign(new Error('file changed'), { code: 'ECHANGED' }))
    await assert.rejects(p, { code: 'ECHANGED' })
    await assert.rejects(joined, { code: 'ECHANGED' })
    assert.deepEqual(r.log, ['read'], 'neither kept nor done')
    assert.equal(budget.used, 0)
    assert.equal(reads.join('f#0', {}), undefined)
  })
})
