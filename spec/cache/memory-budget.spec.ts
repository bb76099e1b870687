import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MemoryBudget, OVERDRAFT_MS } from '../../lib/cache/memory-budget.js'

/** Whether `p` has settled by the next macrotask. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false
  p.then(
    () => (done = true),
    () => (done = true),
  )
  await new Promise((r) => setImmediate(r))
  return done
}

describe('MemoryBudget', () => {
  test('a reservation that fits is granted at once; one that does not waits until bytes are freed', async () => {
    const budget = new MemoryBudget(100)
    assert.equal(await settled(budget.reserve(60)), true)
    const second = budget.reserve(60)
    assert.equal(await settled(second), false)
    assert.equal(budget.waiting, 1)
    budget.free(60)
    assert.equal(await settled(second), true)
    assert.equal(budget.used, 60)
    assert.equal(budget.waiting, 0)
  })

  test('a reservation larger than the whole pool goes ahead once the pool is empty', async () => {
    const budget = new MemoryBudget(100)
    await budget.reserve(10)
    const big = budget.reserve(500)
    assert.equal(await settled(big), false)
    budget.free(10)
    assert.equal(await settled(big), true)
    assert.equal(budget.used, 500)
  })

  test('readers whose clients stopped reading go after the others, and may fill only three quarters of a pool', async () => {
    const budget = new MemoryBudget(100)
    // A stalled reader alone: 3/4 of the pool, not more.
    assert.equal(await settled(budget.reserve(70, { later: () => true })), true)
    const stalled = budget.reserve(10, { later: () => true })
    assert.equal(await settled(stalled), false)
    const reading = budget.reserve(20)
    // The reading client's reservation fits in the whole pool: it is not held behind the stalled one.
    assert.equal(await settled(reading), true)
    assert.equal(await settled(stalled), false)
    budget.free(70)
    assert.equal(await settled(stalled), true)
    assert.equal(budget.used, 30)
  })

  test('copies come from a pool of their own, a quarter of the limit', async () => {
    const budget = new MemoryBudget(100)
    await budget.reserve(100)
    assert.equal(await settled(budget.reserve(25, { pool: 'copy' })), true, 'a full block pool does not hold up copies')
    const more = budget.reserve(1, { pool: 'copy' })
    assert.equal(await settled(more), false)
    budget.free(25, 'copy')
    assert.equal(await settled(more), true)
    assert.equal(budget.used, 101)
  })

  test('an aborted wait is rejected with its reason and leaves the queue', async () => {
    const budget = new MemoryBudget(10)
    await budget.reserve(10)
    const ac = new AbortController()
    const waiting = budget.reserve(5, { signal: ac.signal })
    const after = budget.reserve(5)
    ac.abort(new Error('gone'))
    await assert.rejects(waiting, /gone/)
    assert.equal(budget.waiting, 1)
    budget.free(10)
    assert.equal(await settled(after), true)
    assert.equal(budget.used, 5)
  })

  test('charges over the limit are taken at once and ask for relief', async () => {
    let asked = 0
    const budget = new MemoryBudget(10, () => {
      asked++
      return 0
    })
    await budget.reserve(10)
    budget.charge(8)
    assert.equal(budget.used, 18)
    await new Promise((r) => setTimeout(r, 10))
    assert.ok(asked > 0, 'relief asked for')
    budget.free(18)
  })

  test('over the limit through charges, a reading reservation takes the place of bytes freed since it began to wait', async () => {
    const budget = new MemoryBudget(100)
    budget.charge(100)
    const reading = budget.reserve(40)
    const stalled = budget.reserve(10, { later: () => true })
    budget.free(30)
    assert.equal(await settled(reading), false, 'not before 40 bytes have gone')
    budget.charge(30) // another leased block evicted meanwhile
    budget.free(30)
    assert.equal(await settled(reading), true)
    assert.equal(budget.used, 110)
    assert.equal(await settled(stalled), false, 'a client that does not read waits for the limit')
    // Never past a quarter over the limit this way.
    budget.charge(30)
    const more = budget.reserve(10)
    budget.free(5)
    assert.equal(await settled(more), false, `${budget.used} held`)
    budget.free(115)
    assert.equal(await settled(more), true)
    assert.equal(await settled(stalled), true)
  })

  test('while reservations wait, relief is asked for; with nothing relieved the first goes ahead after a bounded time', async () => {
    let asked = 0
    const budget = new MemoryBudget(10, () => {
      asked++
      return 0
    })
    await budget.reserve(10)
    const start = Date.now()
    // The budget's own timer does not keep a process alive.
    const alive = setTimeout(() => {}, OVERDRAFT_MS * 3)
    await budget.reserve(4)
    clearTimeout(alive)
    const waited = Date.now() - start
    assert.ok(asked >= 2, `relief asked ${asked} times`)
    assert.ok(waited >= OVERDRAFT_MS - 50, `went ahead after ${waited} ms`)
    assert.equal(budget.overdrafts, 1)
    assert.equal(budget.used, 14)
    budget.free(14)
  })
})
