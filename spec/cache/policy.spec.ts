/**
 * The contract the block cache relies on, held by every policy createPolicy
 * makes: the byte budget is never exceeded, shrinking it evicts until it
 * fits, and onEvict reports exactly what the policy pushed out once it held
 * it (not what was deleted or cleared). An unknown name is refused.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createPolicy, POLICIES, type PolicyName } from '../../lib/cache/policy.js'

const block = (n: number, fill = 1) => Buffer.alloc(n, fill)

for (const name of POLICIES) {
  describe(`createPolicy('${name}')`, () => {
    test('never holds more bytes than its budget, and reports each entry it pushes out once', () => {
      const evicted: string[] = []
      const policy = createPolicy(name, { limit: 10_000, onEvict: (key) => evicted.push(key) })
      const sizes = new Map<string, number>()
      for (let i = 0; i < 200; i++) {
        const key = `k${i}`
        const size = 100 + ((i * 7919) % 900)
        sizes.set(key, size)
        if (policy.get(key) === undefined) policy.set(key, block(size))
        if (i % 3 === 0) policy.get(`k${i >> 1}`) // some entries are used again
        assert.ok(policy.bytes <= policy.limit, `${policy.bytes} bytes held, budget ${policy.limit}`)
      }
      const held = [...policy.keys()]
      assert.equal(policy.size, held.length)
      assert.equal(policy.bytes, held.reduce((n, k) => n + sizes.get(k)!, 0), 'bytes is the sum of what it holds')
      assert.equal(new Set(evicted).size, evicted.length, 'no entry reported twice')
      for (const k of evicted) assert.equal(policy.has(k), false, `${k} was reported evicted and is gone`)
      // LRU admits every fill, so each entry is held or was pushed out; TinyLFU may also decline a fill
      // outright (never held, so nothing to report).
      if (name === 'lru') assert.equal(evicted.length + held.length, 200, 'every entry is either held or was reported')
      else assert.ok(evicted.length + held.length <= 200)
    })

    test('shrinking the budget evicts until the bytes fit, and reports them', () => {
      const evicted: string[] = []
      const policy = createPolicy(name, { limit: 8000, onEvict: (key) => evicted.push(key) })
      for (let i = 0; i < 8; i++) policy.set(`k${i}`, block(1000))
      const before = policy.bytes
      policy.resize(3000)
      assert.equal(policy.limit, 3000)
      assert.ok(policy.bytes <= 3000, `${policy.bytes} bytes after shrinking to 3000`)
      assert.equal(before - policy.bytes, evicted.length * 1000, 'what left was reported')
      policy.resize(8000)
      assert.equal(policy.limit, 8000)
    })

    test('delete and clear remove without reporting an eviction; peek and has look without changing what is held', () => {
      const evicted: string[] = []
      const policy = createPolicy(name, { limit: 10_000, onEvict: (key) => evicted.push(key) })
      const a = block(500, 7)
      policy.set('a', a)
      policy.set('b', block(500))
      assert.equal(policy.peek('a'), a)
      assert.equal(policy.has('b'), true)
      assert.equal(policy.peek('nope'), undefined)
      assert.equal(policy.delete('a'), true)
      assert.equal(policy.delete('a'), false)
      assert.equal(policy.has('a'), false)
      assert.equal(policy.bytes, 500)
      policy.clear()
      assert.equal(policy.size, 0)
      assert.equal(policy.bytes, 0)
      assert.deepEqual(evicted, [])
    })
  })
}

test('an unknown policy name is refused, naming the known ones', () => {
  assert.throws(() => createPolicy('lfu' as PolicyName, { limit: 1000 }), { name: 'TypeError', message: /unknown cache policy "lfu"; known: lru, tinylfu/ })
})
