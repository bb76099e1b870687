import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { FrequencySketch, fnv1a } from '../../lib/cache/frequency-sketch.js'
import { mulberry32 } from '../helpers/cache-simulation.js'

const key = (i: number) => `2049:${1_000_000 + i}:65536:1712345678901234567#0`

describe('FrequencySketch', () => {
  test('hashes with 32-bit FNV-1a (reference vectors)', () => {
    assert.equal(fnv1a(''), 0x811c9dc5)
    assert.equal(fnv1a('a'), 0xe40c292c)
    assert.equal(fnv1a('foobar'), 0xbf9cf968)
  })

  test('never under-counts, and counts exactly almost every key while the keys fit its capacity', () => {
    const rnd = mulberry32(5)
    const sketch = new FrequencySketch(512) // sample size 5120: no aging below
    const truth = new Map<string, number>()
    for (let i = 0; i < 400; i++) truth.set(key(i), 1 + Math.floor(rnd() * 12))
    let recorded = 0
    for (const [k, n] of truth) for (let j = 0; j < n; j++, recorded++) sketch.increment(k)
    assert.ok(recorded < sketch.sampleSize, 'no aging happened in this test')
    let exact = 0
    for (const [k, n] of truth) {
      const est = sketch.frequency(k)
      assert.ok(est >= n, `${k}: estimate ${est} < true ${n}`)
      if (est === n) exact++
    }
    assert.ok(exact >= 0.95 * truth.size, `only ${exact}/${truth.size} exact`)
    assert.equal(sketch.frequency('never seen'), 0)
  })

  test('saturates a counter at 15', () => {
    const sketch = new FrequencySketch(64)
    for (let i = 0; i < 40; i++) sketch.increment('hot')
    assert.equal(sketch.frequency('hot'), 15)
  })

  test('halves every count once sampleSize increments have been recorded (aging)', () => {
    const sketch = new FrequencySketch(16)
    assert.equal(sketch.sampleSize, 160)
    // Few keys, many increments each: 153 recorded by 12 keys, well within capacity.
    for (let i = 0; i < 10; i++) sketch.increment('hot')
    for (let i = 0; i < 3; i++) sketch.increment('warm')
    for (let k = 0; k < 10; k++) for (let i = 0; i < 14; i++) sketch.increment(key(k))
    for (let i = 0; i < 6; i++) sketch.increment('six')
    assert.equal(sketch.frequency('hot'), 10, 'not aged one increment before the sample size')
    assert.equal(sketch.frequency('warm'), 3)
    assert.equal(sketch.frequency('six'), 6)
    sketch.increment('once')
    assert.equal(sketch.frequency('hot'), 5)
    assert.equal(sketch.frequency('warm'), 1, 'halving rounds down')
    assert.equal(sketch.frequency(key(0)), 7)
    assert.equal(sketch.frequency('once'), 0, 'a single access is forgotten')
  })

  test('gives the same estimates for the same keys, whatever the instance', () => {
    const a = new FrequencySketch(32)
    const b = new FrequencySketch(32)
    const rnd = mulberry32(11)
    for (let i = 0; i < 200; i++) {
      const k = key(Math.floor(rnd() * 100))
      a.increment(k)
      b.increment(k)
    }
    const estimates = (s: FrequencySketch) => Array.from({ length: 100 }, (_, i) => s.frequency(key(i)))
    assert.deepEqual(estimates(a), estimates(b))
    assert.ok(estimates(a).some((n) => n > 1), 'the workload did repeat keys')
  })

  test('growing keeps the counts of the carried keys and forgets the others', () => {
    const sketch = new FrequencySketch(16)
    for (let i = 0; i < 5; i++) sketch.increment('held')
    for (let i = 0; i < 3; i++) sketch.increment('gone')
    sketch.ensureCapacity(10, ['held'])
    assert.equal(sketch.capacity, 16, 'no growth when it already fits')
    assert.equal(sketch.frequency('gone'), 3)
    sketch.ensureCapacity(100, ['held'])
    assert.equal(sketch.capacity, 128)
    assert.equal(sketch.sampleSize, 1280)
    assert.equal(sketch.frequency('held'), 5)
    assert.equal(sketch.frequency('gone'), 0)
  })

  test('clear forgets every count', () => {
    const sketch = new FrequencySketch(16)
    sketch.increment('a')
    sketch.increment('a')
    sketch.clear()
    assert.equal(sketch.frequency('a'), 0)
  })
})
