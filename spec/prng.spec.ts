/** The seedable PRNG behind fuzz seeds and fault injection: a seed must replay the same run. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { prng } from '../lib/prng.js'

const take = (next: () => number, n: number) => Array.from({ length: n }, next)

describe('prng', () => {
  test('is mulberry32: the first values of seeds 0 and 1 are the reference ones', () => {
    // A change here changes every recorded FUZZ_SEED and --inject-faults seed.
    assert.deepEqual(take(prng(0), 3), [0.26642920868471265, 0.0003297457005828619, 0.2232720274478197])
    assert.deepEqual(take(prng(1), 3), [0.6270739405881613, 0.002735721180215478, 0.5274470399599522])
  })

  test('the same seed gives the same sequence; generators do not share state', () => {
    const a = prng(42)
    const b = prng(42)
    const first = take(a, 100)
    assert.deepEqual(take(b, 100), first)
    assert.notDeepEqual(take(a, 100), first, 'the sequence moves on')
    assert.notDeepEqual(take(prng(43), 100), first)
  })

  test('seeds are taken as unsigned 32-bit integers', () => {
    assert.deepEqual(take(prng(2 ** 32 + 1), 5), take(prng(1), 5))
    assert.deepEqual(take(prng(-1), 5), take(prng(0xffffffff), 5))
    assert.deepEqual(take(prng(7.9), 5), take(prng(7), 5))
  })

  test('values lie in [0, 1) and spread over it', () => {
    const values = take(prng(9), 100_000)
    assert.ok(values.every((v) => v >= 0 && v < 1))
    const buckets = new Array<number>(10).fill(0)
    for (const v of values) buckets[Math.floor(v * 10)]++
    // 10,000 expected per tenth; a real generator stays within a few percent.
    for (const n of buckets) assert.ok(n > 9_000 && n < 11_000, `bucket of ${n}`)
  })
})
