import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { TinyLfu } from '../../lib/cache/tiny-lfu.js'
import { ByteLru } from '../../lib/cache/byte-lru.js'
import { createPolicy, POLICIES } from '../../lib/cache/policy.js'
import { epochWorkload, mulberry32, simulate, zipfWorkload } from '../helpers/cache-simulation.js'

const buf = (n: number, fill = n) => Buffer.alloc(n, fill)
const KIB = 1024

/** An access as the block cache makes it: get, and set on a miss. */
function access(cache: TinyLfu, key: string, size: number, times = 1): void {
  for (let i = 0; i < times; i++) if (!cache.get(key)) cache.set(key, buf(size))
}

/** Record `times` misses of a key without storing it (frequency without recency). */
function askFor(cache: TinyLfu, key: string, times: number): void {
  for (let i = 0; i < times; i++) assert.equal(cache.get(key), undefined)
}

describe('TinyLfu', () => {
  test('never exceeds its byte budget and counts bytes exactly over a seeded random workload', () => {
    for (const [windowFraction, maxEntries] of [[0.01, 4_000_000], [0.2, 4_000_000], [0.2, 5]] as const) {
      const rnd = mulberry32(42)
      let evictions = 0
      const cache = new TinyLfu({ limit: 1000, windowFraction, maxEntries, onEvict: (k) => {
        evictions++
        assert.equal(cache.has(k), false, `${k} reported evicted but still held`)
      } })
      const sizes = new Map<string, number>()
      for (let step = 0; step < 4000; step++) {
        const key = `k${Math.floor(rnd() * (rnd() < 0.5 ? 8 : 60))}`
        const r = rnd()
        if (r < 0.5) {
          const n = 1 + Math.floor(rnd() * (rnd() < 0.05 ? 1100 : 250))
          sizes.set(key, n)
          cache.set(key, buf(n))
        }
        else if (r < 0.95) cache.get(key)
        else cache.delete(key)
        assert.ok(cache.bytes <= cache.limit, `step ${step}: ${cache.bytes} > ${cache.limit}`)
        const held = [...cache.keys()]
        assert.equal(cache.bytes, held.reduce((t, k) => t + sizes.get(k)!, 0), `step ${step}`)
        assert.equal(cache.size, held.length)
        assert.ok(cache.size <= maxEntries, `step ${step}: ${cache.size} entries > ${maxEntries}`)
      }
      assert.ok(evictions > 0, 'the workload did evict')
    }
  })

  test('a hit refreshes recency: the victim is the least recently used, not the least recently inserted', () => {
    // Window 100 bytes (one entry), main 300 (three).
    const evicted: string[] = []
    const cache = new TinyLfu({ limit: 400, windowFraction: 0.25, onEvict: (k) => evicted.push(k) })
    for (const k of ['a', 'b', 'c', 'd']) cache.set(k, buf(100)) // main a, b, c; window d
    assert.ok(cache.get('a'))
    askFor(cache, 'x', 3)
    cache.set('x', buf(100)) // d leaves the window and is refused
    cache.set('y', buf(100)) // x (3 accesses) displaces the LRU victim
    assert.deepEqual(evicted, ['d', 'b'])
    assert.equal(cache.has('a'), true)
    assert.equal(cache.has('x'), true)
  })

  test('admission drops a one-hit wonder in favour of frequent entries, and admits a more frequent newcomer', () => {
    const evicted: string[] = []
    const cache = new TinyLfu({ limit: 400, windowFraction: 0.25, onEvict: (k) => evicted.push(k) })
    for (const k of ['f1', 'f2', 'f3']) {
      askFor(cache, k, 3)
      cache.set(k, buf(100))
    }
    access(cache, 'w', 100) // f3 moves to main, which is now full
    access(cache, 'x', 100) // w leaves the window: 1 access against f1's 3
    assert.deepEqual(evicted, ['w'])
    assert.ok(['f1', 'f2', 'f3', 'x'].every((k) => cache.has(k)))
    askFor(cache, 'hot', 6)
    cache.set('hot', buf(100)) // x refused
    access(cache, 'y', 100) // hot (6) against f1 (3): admitted
    assert.deepEqual(evicted, ['w', 'x', 'f1'])
    assert.equal(cache.has('hot'), true)
    assert.ok(['f2', 'f3'].every((k) => cache.has(k)))
  })

  test('ties keep the incumbent: equal frequencies never displace a main entry', () => {
    const cache = new TinyLfu({ limit: 400, windowFraction: 0.25 })
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) access(cache, k, 100, 2)
    assert.ok(['a', 'b', 'c'].every((k) => cache.has(k)), 'the first three stay in main')
    assert.deepEqual([...cache.keys()].sort(), ['a', 'b', 'c', 'f'])
  })

  for (const [title, v2Freq, admitted] of [
    ['a larger candidate that beats one victim but not the next is dropped, and no victim goes', 5, false],
    ['a larger candidate that beats every victim it needs displaces them all', 0, true],
  ] as const) {
    test(title, () => {
      const evicted: string[] = []
      // Window 100 bytes, main 300: six entries of 50.
      const cache = new TinyLfu({ limit: 400, windowFraction: 0.25, onEvict: (k) => evicted.push(k) })
      for (let i = 1; i <= 8; i++) {
        if (i === 2) askFor(cache, 'v2', v2Freq)
        cache.set(`v${i}`, buf(50))
      }
      askFor(cache, 'c', 3)
      cache.set('c', buf(100)) // v7, v8 leave the window and are refused (0 against v1's 0)
      cache.set('z', buf(100)) // c (100 bytes) needs v1 and v2 to go
      if (admitted) {
        assert.deepEqual(evicted, ['v7', 'v8', 'v1', 'v2'])
        assert.equal(cache.has('c'), true)
      }
      else {
        assert.deepEqual(evicted, ['v7', 'v8', 'c'])
        assert.ok(cache.has('v1') && cache.has('v2'), 'the beaten victim stays too')
      }
      assert.equal(cache.bytes, 400)
    })
  }

  test('a value larger than the window goes straight to admission; one larger than the main region is not stored', () => {
    let calls = 0
    const cache = new TinyLfu({ limit: 1000, onEvict: () => void calls++ }) // window 10, main 990
    cache.set('big', buf(500))
    assert.equal(cache.has('big'), true)
    cache.set('huge', buf(995))
    assert.equal(cache.has('huge'), false)
    assert.equal(cache.bytes, 500)
    assert.equal(calls, 0)
  })

  test('caps the main region at maxEntries even when bytes are left', () => {
    const cache = new TinyLfu({ limit: 1000, windowFraction: 0, maxEntries: 2 })
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, buf(10))
    assert.equal(cache.size, 2)
    askFor(cache, 'hot', 3)
    cache.set('hot', buf(10))
    assert.equal(cache.size, 2)
    assert.equal(cache.has('hot'), true)
  })

  test('has and peek do not count as accesses; delete, clear and replace keep bytes right without onEvict', () => {
    let calls = 0
    const cache = new TinyLfu({ limit: 400, windowFraction: 0.25, onEvict: () => void calls++ })
    for (const k of ['a', 'b', 'c', 'd']) cache.set(k, buf(100))
    for (let i = 0; i < 5; i++) assert.ok(cache.has('d') && cache.peek('d'))
    cache.set('e', buf(100))
    assert.equal(cache.has('d'), false, 'd was refused: peeks gave it no frequency')
    assert.equal(calls, 1)
    cache.set('e', buf(30))
    assert.equal(cache.bytes, 330)
    assert.equal(cache.delete('a'), true)
    assert.equal(cache.delete('a'), false)
    assert.equal(cache.bytes, 230)
    cache.clear()
    assert.equal(cache.bytes, 0)
    assert.equal(cache.size, 0)
    assert.equal(calls, 1)
  })

  test('createPolicy builds each listed policy, and refuses unknown names', () => {
    assert.deepEqual([...POLICIES], ['lru', 'tinylfu'])
    assert.ok(createPolicy('lru', { limit: 10 }) instanceof ByteLru)
    assert.ok(createPolicy('tinylfu', { limit: 10 }) instanceof TinyLfu)
    assert.throws(() => createPolicy('fifo' as 'lru', { limit: 10 }), /unknown cache policy "fifo"/)
  })
})

describe('TinyLfu on training workloads (hit ratio over epochs 2-6)', () => {
  const epochs = (shuffled: boolean, size: (i: number, rnd: () => number) => number) =>
    epochWorkload({ name: '', files: 400, size, cacheShare: 0.5, epochs: 6, shuffled, seed: 7 })

  test('same-order epochs over twice the cache: tinylfu keeps about half, lru almost nothing', () => {
    const w = epochs(false, () => 64 * KIB)
    assert.equal(w.limit, 200 * 64 * KIB)
    const lfu = simulate('tinylfu', w).warm
    const lru = simulate('lru', w).warm
    assert.ok(lfu >= 0.4, `tinylfu ${lfu}`)
    assert.ok(lru < 0.1, `lru ${lru}`)
  })

  test('shuffled epochs over twice the cache: tinylfu hit ratio at least 0.4', () => {
    const lfu = simulate('tinylfu', epochs(true, () => 64 * KIB)).warm
    assert.ok(lfu >= 0.4, `tinylfu ${lfu}`)
  })

  test('shuffled epochs of 20-200 KB entries over twice the cache: tinylfu hit ratio at least 0.35', () => {
    const w = epochs(true, (_i, rnd) => 20_000 + Math.floor(rnd() * 180_001))
    const sizes = [...w.sizes.values()]
    assert.ok(Math.min(...sizes) >= 20_000 && Math.max(...sizes) <= 200_000 && Math.max(...sizes) > 150_000)
    const lfu = simulate('tinylfu', w).warm
    assert.ok(lfu >= 0.35, `tinylfu ${lfu}`)
  })

  test('Zipf(0.9) over 5000 keys with room for 500: tinylfu within 0.02 of lru or better', () => {
    const w = zipfWorkload({ name: '', keys: 5000, s: 0.9, size: 4 * KIB, cacheEntries: 500, rounds: 6, perRound: 20_000, seed: 7 })
    const lfu = simulate('tinylfu', w).warm
    const lru = simulate('lru', w).warm
    assert.ok(lru > 0.3, `the workload is skewed enough for lru to hit (${lru})`)
    assert.ok(lfu >= lru - 0.02, `tinylfu ${lfu} < lru ${lru} - 0.02`)
  })
})
