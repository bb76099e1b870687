import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { ByteLru } from '../../lib/cache/byte-lru.js'
import { prng as mulberry32 } from '../../lib/prng.js'


const buf = (n: number, fill = n) => Buffer.alloc(n, fill)

/** Sum of the sizes (as last stored) of the keys the cache says it holds. */
function heldBytes(lru: ByteLru, sizes: Map<string, number>): number {
  return [...lru.keys()].reduce((total, key) => total + sizes.get(key)!, 0)
}

describe('ByteLru', () => {
  test('evicts from the least recently used end when the byte budget is exceeded', () => {
    const evicted: string[] = []
    const lru = new ByteLru({ limit: 10, onEvict: (k) => evicted.push(k) })
    lru.set('a', buf(4))
    lru.set('b', buf(4))
    assert.equal(lru.bytes, 8)
    lru.set('c', buf(4))
    assert.deepEqual(evicted, ['a'])
    assert.equal(lru.has('a'), false)
    assert.ok(lru.has('b') && lru.has('c'))
    assert.equal(lru.bytes, 8)
    lru.set('d', buf(9))
    assert.deepEqual(evicted, ['a', 'b', 'c'])
    assert.equal(lru.bytes, 9)
    assert.equal(lru.size, 1)
  })

  test('keeps a key read with get() while a newer unread key is evicted', () => {
    const lru = new ByteLru({ limit: 12 })
    lru.set('old', buf(4))
    lru.set('newer', buf(4))
    lru.set('newest', buf(4))
    assert.deepEqual(lru.get('old'), buf(4))
    lru.set('extra', buf(4))
    assert.equal(lru.has('old'), true, 'read key survives')
    assert.equal(lru.has('newer'), false, 'unread key is evicted')
    assert.ok(lru.has('newest') && lru.has('extra'))
  })

  test('reports what onEvict received: the key and its value', () => {
    const seen: [string, Buffer][] = []
    const lru = new ByteLru({ limit: 5, onEvict: (k, v) => seen.push([k, v]) })
    const a = buf(3, 0xaa)
    lru.set('a', a)
    lru.set('b', buf(3))
    assert.equal(seen.length, 1)
    assert.equal(seen[0][0], 'a')
    assert.equal(seen[0][1], a)
  })

  test('does not call onEvict for explicit delete or clear', () => {
    let calls = 0
    const lru = new ByteLru({ limit: 10, onEvict: () => void calls++ })
    lru.set('a', buf(3))
    lru.set('b', buf(3))
    lru.delete('a')
    lru.clear()
    assert.equal(calls, 0)
  })

  test('does not store a value larger than the limit, nor evict anything for it', () => {
    let calls = 0
    const lru = new ByteLru({ limit: 10, onEvict: () => void calls++ })
    lru.set('small', buf(6))
    lru.set('huge', buf(11))
    assert.equal(lru.has('huge'), false)
    assert.equal(lru.get('huge'), undefined)
    assert.equal(lru.has('small'), true)
    assert.equal(lru.bytes, 6)
    assert.equal(calls, 0)
    lru.set('exact', buf(10))
    assert.equal(lru.has('exact'), true, 'a value of exactly the limit fits')
    assert.equal(lru.bytes, 10)
  })

  test('replacing a key counts only its new size', () => {
    const lru = new ByteLru({ limit: 100 })
    lru.set('k', buf(30))
    lru.set('k', buf(5))
    assert.equal(lru.bytes, 5)
    assert.equal(lru.size, 1)
    assert.deepEqual(lru.get('k'), buf(5))
  })

  test('a too-large value for an existing key does not leave the old value behind', () => {
    const lru = new ByteLru({ limit: 10 })
    lru.set('k', buf(4, 1))
    lru.set('k', buf(20, 2))
    assert.equal(lru.get('k'), undefined)
    assert.equal(lru.bytes, 0)
  })

  test('delete and clear keep the byte count right', () => {
    const lru = new ByteLru({ limit: 100 })
    lru.set('a', buf(10))
    lru.set('b', buf(20))
    assert.equal(lru.delete('a'), true)
    assert.equal(lru.delete('a'), false)
    assert.equal(lru.delete('never'), false)
    assert.equal(lru.bytes, 20)
    assert.equal(lru.size, 1)
    lru.clear()
    assert.equal(lru.bytes, 0)
    assert.equal(lru.size, 0)
    lru.set('c', buf(7))
    assert.equal(lru.bytes, 7)
  })

  test('never exceeds its byte budget and counts bytes exactly over a seeded random workload', () => {
    for (const maxEntries of [4_000_000, 5]) {
      const rnd = mulberry32(99 + maxEntries)
      let evictions = 0
      const lru = new ByteLru({ limit: 1000, maxEntries, onEvict: () => void evictions++ })
      const sizes = new Map<string, number>()
      for (let step = 0; step < 3000; step++) {
        const key = `k${Math.floor(rnd() * 40)}`
        const r = rnd()
        if (r < 0.55) {
          const n = 1 + Math.floor(rnd() * 300)
          sizes.set(key, n)
          lru.set(key, buf(n))
        }
        else if (r < 0.9) lru.get(key)
        else lru.delete(key)
        assert.ok(lru.bytes <= lru.limit, `step ${step}: ${lru.bytes} > ${lru.limit}`)
        assert.ok(lru.bytes >= 0, `step ${step}: negative byte count`)
        if (step % 50 === 0) assert.equal(lru.bytes, heldBytes(lru, sizes), `step ${step} (maxEntries ${maxEntries})`)
      }
      assert.ok(evictions > 0, 'the workload did evict')
    }
  })
})
