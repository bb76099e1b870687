import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { MIN_PAGE_SIZE } from '../../lib/protocol/constants.js'
import { DEFAULT_RETRIES, PageSize } from '../../lib/stages/page-size.js'

/** The page sizes seen after each of `n` NACKs at `offset`. */
function shrink(ps: PageSize, n: number, offset = 0): number[] {
  const sizes: number[] = []
  for (let i = 0; i < n; i++) {
    ps.nack(offset)
    sizes.push(ps.size)
  }
  return sizes
}

describe('PageSize: shrinking on NACKs', () => {
  test('starts at max', () => {
    assert.equal(new PageSize({ max: 65536 }).size, 65536)
  })

  test('halves on each NACK down to the floor and never goes below it', () => {
    const ps = new PageSize({ max: 65536, floor: 4096, retries: 100 })
    assert.deepEqual(shrink(ps, 7), [32768, 16384, 8192, 4096, 4096, 4096, 4096])
  })

  test('uses MIN_PAGE_SIZE as the default floor', () => {
    const ps = new PageSize({ max: 8 * MIN_PAGE_SIZE, retries: 100 })
    assert.deepEqual(shrink(ps, 5), [4, 2, 1, 1, 1].map((k) => k * MIN_PAGE_SIZE))
  })

  test('rounds an odd size down when halving, but not below the floor', () => {
    const ps = new PageSize({ max: 5001, floor: 1000, retries: 100 })
    assert.deepEqual(shrink(ps, 4), [2500, 1250, 1000, 1000])
  })

  test('a floor above max is lowered to max, so the size never changes', () => {
    const ps = new PageSize({ max: 512, floor: 1024, retries: 100 })
    assert.equal(ps.floor, 512)
    assert.deepEqual(shrink(ps, 3), [512, 512, 512])
  })
})

describe('PageSize: giving up', () => {
  test('nack() returns false only at the retries-th NACK in a row at the floor without progress', () => {
    const ps = new PageSize({ max: 4096, floor: 1024, retries: 3 })
    assert.equal(ps.nack(0), true, '4096 → 2048')
    assert.equal(ps.nack(0), true, '2048 → 1024: reaching the floor is not yet a failure there')
    assert.equal(ps.size, 1024)
    assert.equal(ps.nack(0), true, 'first failure at the floor')
    assert.equal(ps.nack(0), true, 'second failure at the floor')
    assert.equal(ps.nack(0), false, 'third failure at the floor: give up')
  })

  test('gives up after DEFAULT_RETRIES failures at the floor by default', () => {
    const ps = new PageSize({ max: 1024, floor: 1024 })
    assert.equal(ps.nack(0), true, 'the first NACK is progress (nothing was verified before)')
    const answers = Array.from({ length: DEFAULT_RETRIES }, () => ps.nack(0))
    assert.deepEqual(answers, [...Array(DEFAULT_RETRIES - 1).fill(true), false])
  })

  test('a NACK at a larger offset (progress) resets the count of failures at the floor', () => {
    const ps = new PageSize({ max: 1024, floor: 1024, retries: 3 })
    assert.equal(ps.nack(100), true, 'first NACK: progress from nothing')
    assert.equal(ps.nack(100), true, 'failure 1')
    assert.equal(ps.nack(100), true, 'failure 2')
    assert.equal(ps.nack(200), true, 'progress: count back to 0')
    assert.equal(ps.nack(200), true, 'failure 1')
    assert.equal(ps.nack(200), true, 'failure 2')
    assert.equal(ps.nack(200), false, 'failure 3')
  })

  test('a NACK at a smaller offset than before is no progress', () => {
    const ps = new PageSize({ max: 1024, floor: 1024, retries: 2 })
    assert.equal(ps.nack(500), true)
    assert.equal(ps.nack(300), true, 'failure 1')
    assert.equal(ps.nack(400), false, 'failure 2: still below the 500 reached before')
  })

  test('NACKs above the floor never give up, even at the same offset', () => {
    const ps = new PageSize({ max: 1 << 20, floor: 1024, retries: 1 })
    const answers = Array.from({ length: 10 }, () => ps.nack(0))
    assert.deepEqual(answers, Array(10).fill(true))
    assert.equal(ps.size, 1024)
    assert.equal(ps.nack(0), false, 'the first NACK at the floor without progress, with retries 1')
  })
})

describe('PageSize: growing back', () => {
  test('does not grow while the bytes sent since the NACK are below window + growAfter × size', () => {
    const ps = new PageSize({ max: 16384, floor: 1024, growAfter: 4 })
    ps.nack(0, 5000)
    assert.equal(ps.size, 8192)
    const threshold = 5000 + 4 * 8192
    for (let i = 0; i < 37; i++) ps.sent(1000) // in page-sized pieces, 37000 < 37768
    ps.sent(threshold - 1 - 37000)
    assert.equal(ps.size, 8192, 'one byte short of the threshold')
  })

  test('a larger window (more bytes in flight at the NACK) delays growth accordingly', () => {
    const ps = new PageSize({ max: 16384, floor: 1024, growAfter: 1 })
    ps.nack(0, 100_000)
    ps.sent(8192)
    assert.equal(ps.size, 8192, 'one clean page is not enough while 100000 bytes were in flight')
    ps.sent(100_000 - 1)
    assert.equal(ps.size, 8192)
    ps.sent(1)
    assert.equal(ps.size, 9216)
  })

  test('grows by one step exactly when window + growAfter × size bytes have been sent', () => {
    const ps = new PageSize({ max: 16384, floor: 1024, growAfter: 4 })
    ps.nack(0, 5000)
    ps.sent(5000 + 4 * 8192 - 1)
    assert.equal(ps.size, 8192)
    ps.sent(1)
    assert.equal(ps.size, 8192 + 1024, 'step is max/16 = 1024')
  })

  test('counts bytes from zero again after growing, with the new size', () => {
    const ps = new PageSize({ max: 16384, floor: 1024, growAfter: 2 })
    ps.nack(0, 100)
    ps.sent(100 + 2 * 8192)
    assert.equal(ps.size, 9216)
    ps.sent(100 + 2 * 9216 - 1)
    assert.equal(ps.size, 9216, 'the threshold now uses 9216')
    ps.sent(1)
    assert.equal(ps.size, 10240)
  })

  test('a NACK restarts the count of clean bytes', () => {
    const ps = new PageSize({ max: 1 << 20, floor: 1024, growAfter: 1, retries: 100 })
    ps.nack(0, 0)
    ps.nack(0, 0) // 262144
    ps.sent(262144 - 1)
    ps.nack(0, 0) // 131072, count back to 0
    ps.sent(131072 - 1)
    assert.equal(ps.size, 131072, 'bytes from before the NACK do not count')
    ps.sent(1)
    assert.equal(ps.size, 131072 + 65536)
  })

  test('the step is max/16', () => {
    const ps = new PageSize({ max: 65536, floor: 1024, growAfter: 1 })
    ps.nack(0)
    ps.sent(32768)
    assert.equal(ps.size, 32768 + 4096)
  })

  test('the step is at least the floor when max/16 is smaller', () => {
    const ps = new PageSize({ max: 8192, floor: 1024, growAfter: 1 })
    ps.nack(0)
    assert.equal(ps.size, 4096)
    ps.sent(4096)
    assert.equal(ps.size, 4096 + 1024, 'not 4096 + 512')
  })

  test('grows back up to max in steps and never above it', () => {
    const ps = new PageSize({ max: 10000, floor: 1024, growAfter: 1 })
    ps.nack(0)
    const sizes = [ps.size]
    for (let i = 0; i < 8; i++) {
      ps.sent(ps.size)
      sizes.push(ps.size)
    }
    assert.deepEqual(sizes, [5000, 6024, 7048, 8072, 9096, 10000, 10000, 10000, 10000])
    ps.sent(1e9)
    assert.equal(ps.size, 10000)
  })

  test('grows at most one step per call to sent(), however many bytes it reports', () => {
    const ps = new PageSize({ max: 65536, floor: 1024, growAfter: 1 })
    ps.nack(0)
    ps.sent(1e9)
    assert.equal(ps.size, 32768 + 4096)
  })

  test('stays at max when there were no NACKs', () => {
    const ps = new PageSize({ max: 65536, floor: 1024, growAfter: 1 })
    for (let i = 0; i < 100; i++) ps.sent(65536)
    assert.equal(ps.size, 65536)
  })
})
