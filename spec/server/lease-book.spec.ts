/**
 * LeaseBook: a connection's block leases. A marked lease goes once the
 * socket has written past the end of its frame, not before; whatever is
 * left when the connection ends goes then; and `charged` says whether the
 * connection holds memory the cache no longer accounts for.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import { BlockLease } from '../../lib/cache/block-lease.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile, type OpenFile } from '../../lib/fs/open-file.js'
import { LeaseBook } from '../../lib/server/lease-book.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

const BLOCK = 4096

/** A real cache over a file of 8 blocks, with its budget; `lease(i)` leases block i. */
async function setup(t: TestContext) {
  const root = tempDir(t)
  writeFile(root, 'f.bin', 8 * BLOCK)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const file: OpenFile = await openFile(jail, 'f.bin')
  t.after(() => file.fh.close())
  const budget = new MemoryBudget(64 * BLOCK)
  const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK, memory: budget })
  const lease = async (i: number) => cache.lease(file, i, await cache.block(file, i))
  return { cache, budget, file, lease }
}

describe('LeaseBook', () => {
  test('a marked lease is released once the output is written up to its frame\'s end, in output order', async (t) => {
    const { lease } = await setup(t)
    const book = new LeaseBook()
    const leases = await Promise.all([0, 1, 2].map(lease))
    for (const l of leases) book.hold(l)
    book.mark(100, leases[0])
    book.mark(250, leases[1])
    book.mark(400, leases[2])
    assert.equal(book.size, 3)
    book.written(99)
    assert.deepEqual(leases.map((l) => l.released), [false, false, false], 'one byte short of the first frame')
    book.written(250)
    assert.deepEqual(leases.map((l) => l.released), [true, true, false])
    book.written(120) // a stale report does not take back what was written
    const late = await lease(3)
    book.hold(late)
    book.mark(250, late)
    assert.equal(late.released, true, 'its frame ends where the output was written up to: released at once')
    assert.equal(book.size, 1, 'released leases leave the book')
    book.written(400)
    assert.equal(book.size, 0)
  })

  test('over many frames each lease goes exactly when its end is written, never early, never twice', () => {
    const book = new LeaseBook()
    const released: number[] = []
    const ends = Array.from({ length: 300 }, (_, i) => (i + 1) * 10)
    for (const end of ends) {
      const l = new BlockLease(() => released.push(end), () => false)
      book.hold(l)
      book.mark(end, l)
    }
    // Steps of uneven size, so the book drops what it released in between.
    for (let pos = 0; pos <= 3000; pos += 37) {
      book.written(pos)
      assert.deepEqual(released, ends.filter((e) => e <= pos), `written up to ${pos}`)
      assert.equal(book.size, ends.filter((e) => e > pos).length)
    }
    book.written(3000)
    assert.deepEqual(released, ends)
  })

  test('charged while it holds a block the cache let go; releaseAll lets every lease go, held or only marked', async (t) => {
    const { cache, budget, file, lease } = await setup(t)
    const book = new LeaseBook()
    const held = await lease(0)
    const marked = await lease(1)
    const both = await lease(2)
    book.hold(held)
    book.hold(both)
    book.mark(500, both)
    book.mark(800, marked) // never held: a part dropped before a job showed it
    assert.equal(book.charged, false, 'the cache still holds every block')
    cache.evictFile(file)
    assert.equal(book.charged, true)
    assert.equal(budget.used, 3 * BLOCK)
    book.releaseAll()
    assert.ok(held.released && marked.released && both.released)
    assert.equal(book.size, 0)
    assert.equal(book.charged, false)
    assert.equal(budget.used, 0, 'every evicted block\'s memory is given back once')
    book.written(1000) // the socket's last report after the end: nothing left to release twice
    assert.equal(budget.used, 0)
  })

  test('a lease released elsewhere leaves the book; a released lease is not taken in', async (t) => {
    const { cache, lease } = await setup(t)
    const book = new LeaseBook()
    const a = await lease(0)
    book.hold(a)
    a.release() // the pager dropped its part
    assert.equal(book.size, 0)
    book.hold(a)
    assert.equal(book.size, 0)
    const copy = cache.leaseCopy(100)
    book.hold(copy)
    assert.equal(book.charged, true, 'copied bytes are memory of the connection\'s own')
    book.mark(10, copy)
    book.written(10)
    assert.equal(book.size, 0)
    assert.equal(book.charged, false)
  })
})
