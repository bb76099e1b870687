import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { corrupt, prng, type CorruptOptions, type CorruptStats } from '../../lib/stages/corrupt.js'

/** Deterministic, non-trivial input of n bytes, as chunks of `chunk` bytes. */
function input(n: number, chunk = 16 * 1024): Buffer[] {
  const rnd = prng(99)
  const all = Buffer.alloc(n)
  for (let i = 0; i < n; i++) all[i] = Math.floor(rnd() * 256)
  const chunks: Buffer[] = []
  for (let at = 0; at < n; at += chunk) chunks.push(all.subarray(at, at + chunk))
  return chunks
}

async function run(opts: CorruptOptions, chunks: Buffer[]): Promise<{ out: Buffer; stats: CorruptStats }> {
  const c = corrupt(opts)
  const collected = c.toArray()
  for (const chunk of chunks) c.write(chunk)
  c.end()
  const out = Buffer.concat((await collected) as Buffer[])
  return { out, stats: { ...c.stats } }
}

const LONG = input(1 << 20) // 1 MiB: about 1000 faults at rate 1e-3
const whole = (chunks: Buffer[]) => Buffer.concat(chunks)

describe('corrupt', () => {
  test('passes bytes through unchanged at rate 0', async () => {
    const { out, stats } = await run({ rate: 0, mode: 'mixed' }, LONG)
    assert.deepEqual(out, whole(LONG))
    assert.deepEqual(stats, { faults: 0, flipped: 0, dropped: 0, duplicated: 0, inserted: 0 })
  })

  test('gives byte-identical output for the same seed and input, and different output for another seed', async () => {
    const a = await run({ rate: 1e-3, seed: 7, mode: 'mixed' }, LONG)
    const b = await run({ rate: 1e-3, seed: 7, mode: 'mixed' }, LONG)
    const c = await run({ rate: 1e-3, seed: 8, mode: 'mixed' }, LONG)
    assert.deepEqual(a.out, b.out)
    assert.deepEqual(a.stats, b.stats)
    assert.notDeepEqual(a.out, c.out)
  })

  test('flip: same length, and exactly stats.flipped bytes differ, each by one bit', async () => {
    const { out, stats } = await run({ rate: 1e-3, seed: 3, mode: 'flip' }, LONG)
    const src = whole(LONG)
    assert.equal(out.length, src.length)
    let differ = 0
    for (let i = 0; i < src.length; i++) {
      const x = out[i] ^ src[i]
      if (x === 0) continue
      differ++
      assert.equal(x & (x - 1), 0, `byte ${i} differs in more than one bit`)
    }
    assert.ok(stats.flipped > 0)
    assert.equal(differ, stats.flipped)
    assert.equal(stats.faults, stats.flipped)
    assert.deepEqual([stats.dropped, stats.duplicated, stats.inserted], [0, 0, 0])
  })

  test('drop: output is shorter by stats.dropped', async () => {
    const { out, stats } = await run({ rate: 1e-3, seed: 3, mode: 'drop' }, LONG)
    assert.ok(stats.dropped > 0 && stats.faults > 0)
    assert.equal(out.length, whole(LONG).length - stats.dropped)
    assert.ok(stats.dropped <= stats.faults * 64, 'runs are at most maxRun long')
  })

  test('duplicate: output is longer by stats.duplicated', async () => {
    const { out, stats } = await run({ rate: 1e-3, seed: 3, mode: 'duplicate' }, LONG)
    assert.ok(stats.duplicated > 0)
    assert.equal(out.length, whole(LONG).length + stats.duplicated)
  })

  test('garbage: output is longer by stats.inserted, and holds every input byte in order', async () => {
    const { out, stats } = await run({ rate: 1e-3, seed: 3, mode: 'garbage', maxRun: 8 }, LONG)
    const src = whole(LONG)
    assert.ok(stats.inserted > 0)
    assert.ok(stats.inserted <= stats.faults * 8, 'runs are at most maxRun long')
    assert.equal(out.length, src.length + stats.inserted)
    let k = 0
    for (let i = 0; i < out.length && k < src.length; i++) if (out[i] === src[k]) k++
    assert.equal(k, src.length, 'the input is a subsequence of the output')
  })

  test('mixed: several kinds of fault occur, and the length adds up', async () => {
    const { out, stats } = await run({ rate: 1e-3, seed: 5, mode: 'mixed' }, LONG)
    const kinds = [stats.flipped, stats.dropped, stats.duplicated, stats.inserted].filter((n) => n > 0)
    assert.equal(kinds.length, 4, JSON.stringify(stats))
    assert.equal(out.length, whole(LONG).length - stats.dropped + stats.duplicated + stats.inserted)
  })

  test('never modifies its input buffers, in any mode', async () => {
    for (const mode of ['flip', 'drop', 'duplicate', 'garbage', 'mixed'] as const) {
      const chunks = input(256 * 1024, 4096)
      const copy = chunks.map((c) => Buffer.from(c))
      const { stats } = await run({ rate: 1e-2, seed: 11, mode }, chunks)
      assert.ok(stats.faults > 0, mode)
      chunks.forEach((c, i) => assert.deepEqual(c, copy[i], `${mode}: chunk ${i}`))
    }
  })

  test('leaves the first `skip` bytes intact, even across chunks and at rate 1', async () => {
    const chunks = input(1000, 30)
    const src = whole(chunks)
    const { out, stats } = await run({ rate: 1, mode: 'flip', skip: 100 }, chunks)
    assert.deepEqual(out.subarray(0, 100), src.subarray(0, 100))
    assert.equal(stats.flipped, 900, 'at rate 1 every byte after the skipped ones is flipped')
    for (let i = 100; i < src.length; i++) assert.notEqual(out[i], src[i], `byte ${i}`)
  })

  test('leaves the first `skip` bytes intact in mixed mode at a high rate', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const chunks = input(20_000, 777)
      const { out, stats } = await run({ rate: 0.05, seed, mode: 'mixed', skip: 5000 }, chunks)
      assert.ok(stats.faults > 100)
      assert.deepEqual(out.subarray(0, 5000), whole(chunks).subarray(0, 5000), `seed ${seed}`)
    }
  })

  test('injects about rate × bytes faults: 50–200 over 10 MB at 1e-5 (expected 100)', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x5a)
    const chunks = Array.from({ length: 160 }, () => chunk) // 10 MiB
    for (const seed of [1, 2, 3]) {
      const { stats } = await run({ rate: 1e-5, seed, mode: 'flip' }, chunks)
      assert.ok(stats.faults >= 50 && stats.faults <= 200, `seed ${seed}: ${stats.faults} faults`)
    }
  })

  test('throws RangeError for a rate outside 0…1', () => {
    for (const rate of [-0.1, 1.5, NaN, Infinity, -Infinity]) {
      assert.throws(() => corrupt({ rate }), RangeError, `rate ${rate}`)
    }
    assert.doesNotThrow(() => corrupt({ rate: 1 }))
  })
})

describe('prng', () => {
  test('gives the same sequence for the same seed and another for a different seed', () => {
    const take = (seed: number) => {
      const r = prng(seed)
      return Array.from({ length: 100 }, () => r())
    }
    assert.deepEqual(take(42), take(42))
    assert.notDeepEqual(take(42), take(43))
  })

  test('returns floats in [0, 1) that spread over the range', () => {
    const r = prng(1)
    let sum = 0
    let low = 0
    for (let i = 0; i < 10_000; i++) {
      const x = r()
      assert.ok(x >= 0 && x < 1, `${x}`)
      sum += x
      if (x < 0.1) low++
    }
    assert.ok(Math.abs(sum / 10_000 - 0.5) < 0.02, `mean ${sum / 10_000}`)
    assert.ok(low > 800 && low < 1200, `${low} values below 0.1`)
  })
})
