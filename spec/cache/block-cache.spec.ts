import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, truncateSync, utimesSync, writeSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile, type OpenFile } from '../../lib/fs/open-file.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

const BLOCK = 4096

/** A temp file of `size` random bytes, opened; the handle closes when the test ends. */
async function fixture(t: TestContext, size: number): Promise<{ file: OpenFile; data: Buffer; path: string }> {
  const root = tempDir(t)
  const data = writeFile(root, 'f.bin', size)
  const path = join(root, 'f.bin')
  const file = await openFile(await Jail.open(root), 'f.bin')
  t.after(() => file.fh.close())
  return { file, data, path }
}

const blocksOf = (size: number) => Math.ceil(size / BLOCK)

async function readAll(cache: BlockCache, file: OpenFile): Promise<Buffer> {
  const parts: Buffer[] = []
  for (let i = 0; i < blocksOf(file.size); i++) parts.push(await cache.block(file, i))
  return Buffer.concat(parts)
}

describe('BlockCache', () => {
  test('reads from disk only on the first pass over a file that fits', async (t) => {
    const { file, data } = await fixture(t, 5 * BLOCK + 123)
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    assert.deepEqual(await readAll(cache, file), data)
    const first = cache.stats()
    assert.ok(first.diskReads >= 6, `one read per block at least, got ${first.diskReads}`)
    assert.equal(first.misses, 6)
    assert.equal(first.hits, 0)
    assert.equal(first.missBytes, data.length)

    assert.deepEqual(await readAll(cache, file), data)
    const second = cache.stats()
    assert.equal(second.diskReads, first.diskReads, 'no disk read on the second pass')
    assert.equal(second.misses, 6)
    assert.equal(second.hits, 6)
    assert.equal(second.hitBytes, data.length)
    assert.equal(second.cacheBytes, data.length)
    assert.equal(second.entries, 6)
  })

  test('serves the last, short block with only the bytes the file has', async (t) => {
    const { file, data } = await fixture(t, 2 * BLOCK + 10)
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    const last = await cache.block(file, 2)
    assert.equal(last.length, 10)
    assert.deepEqual(last, data.subarray(2 * BLOCK))
  })

  test('shares one disk read among concurrent requests for the same block', async (t) => {
    const { file, data } = await fixture(t, 3 * BLOCK)
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    const got = await Promise.all(Array.from({ length: 8 }, () => cache.block(file, 1)))
    const stats = cache.stats()
    assert.equal(stats.diskReads, 1)
    assert.equal(stats.misses, 1)
    assert.equal(stats.hits, 7)
    for (const b of got) {
      assert.equal(b, got[0], 'every caller gets the same buffer')
      assert.deepEqual(b, data.subarray(BLOCK, 2 * BLOCK))
    }
  })

  test('reads a file larger than the cache with correct bytes and never holds more than the limit', async (t) => {
    const size = 10 * BLOCK + 777
    const { file, data } = await fixture(t, size)
    const limit = 3 * BLOCK
    const cache = new BlockCache({ limit, blockSize: BLOCK })
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < blocksOf(size); i++) {
        const block = await cache.block(file, i)
        assert.deepEqual(block, data.subarray(i * BLOCK, (i + 1) * BLOCK), `pass ${pass} block ${i}`)
        assert.ok(cache.stats().cacheBytes <= limit, `pass ${pass} block ${i}: ${cache.stats().cacheBytes} > ${limit}`)
      }
    }
    const stats = cache.stats()
    assert.ok(stats.evictions > 0)
    assert.equal(stats.cacheLimit, limit)
    assert.ok(cache.cachedBytes(file) < size)
  })

  test('reports how many bytes of a file are cached', async (t) => {
    const size = 4 * BLOCK + 100
    const { file } = await fixture(t, size)
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    assert.equal(cache.cachedBytes(file), 0)
    await cache.block(file, 1)
    assert.equal(cache.cachedBytes(file), BLOCK)
    await cache.block(file, 4)
    assert.equal(cache.cachedBytes(file), BLOCK + 100)
    await readAll(cache, file)
    assert.equal(cache.cachedBytes(file), size)
    assert.equal(cache.cachedBytes({ key: 'another-version', size }), 0, 'another version of the file has nothing cached')
  })

  test('fails with ECHANGED for a block past the end of a file truncated after open', { timeout: 10_000 }, async (t) => {
    const { file, path } = await fixture(t, 4 * BLOCK)
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    truncateSync(path, BLOCK + 50)
    await assert.rejects(cache.block(file, 3), { code: 'ECHANGED' })
    await assert.rejects(cache.block(file, 1), { code: 'ECHANGED' }, 'a block cut short by the truncation')
    await assert.rejects(cache.block(file, 3), { code: 'ECHANGED' }, 'the failure is not cached as a block')
    assert.equal(cache.stats().cacheBytes, 0)
    await assert.rejects(cache.block(file, 0), { code: 'ECHANGED' }, 'blocks before the new end: another version now')
    assert.equal(cache.stats().cacheBytes, 0)
  })

  test('a file rewritten in place (same size) after open: its new bytes are never cached under the old version', async (t) => {
    const { file, path } = await fixture(t, 2 * BLOCK)
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    const fd = openSync(path, 'r+')
    writeSync(fd, randomBytes(BLOCK), 0, BLOCK, 0)
    closeSync(fd)
    utimesSync(path, new Date(), new Date(Date.now() + 5000)) // a distinct mtime, whatever the clock's grain
    await assert.rejects(cache.block(file, 0), { code: 'ECHANGED' })
    assert.equal(cache.cachedBytes(file), 0, 'a reader still holding the old version cannot get these bytes as a hit')
  })

  test('a disk read that pushes a leased block out of the cache holds no more memory than it reserved', async (t) => {
    const { file, data } = await fixture(t, 5 * BLOCK)
    // Two blocks: an admission window of one and a main region of one.
    const budget = new MemoryBudget(2 * BLOCK)
    const cache = new BlockCache({ limit: 2 * BLOCK, blockSize: BLOCK, memory: budget })
    let peak = 0
    const sample = () => {
      peak = Math.max(peak, cache.stats().cacheBytes + budget.used)
    }
    // Readers hold blocks 0 and 1 (each a client that has not taken its bytes yet).
    const held = [cache.lease(file, 0, await cache.block(file, 0)), cache.lease(file, 1, await cache.block(file, 1))]
    // Two reads fill the budget, a third waits for it. Each read that lands in the cache
    // pushes a leased block out (TinyLFU's window rejects it), which stays in memory.
    const reads = [2, 3, 4].map((i) =>
      cache.block(file, i).then((b) => {
        sample()
        held.push(cache.lease(file, i, b))
        assert.deepEqual(b, data.subarray(i * BLOCK, (i + 1) * BLOCK))
      }),
    )
    await Promise.all(reads.slice(0, 2))
    sample()
    for (const lease of held.splice(0, 2)) lease.release()
    await reads[2]
    sample()
    for (const lease of held) lease.release()
    assert.ok(peak <= 4 * BLOCK, `cache + outside peaked at ${peak / BLOCK} blocks; limits: 2 + 2`)
    assert.equal(budget.used, 0, 'everything outside the cache is given back')
  })

  test('an idle read (a prefetch) waits while a request\'s disk read runs, and the quiet time after it', async (t) => {
    const { file, data, path } = await fixture(t, 2 * BLOCK)
    const real = await open(path)
    t.after(() => real.close())
    // The same file, whose reads wait for `release`: a request's read on a slow disk.
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const slow: OpenFile = {
      ...file,
      fh: {
        read: async (buffer, offset, length, position) => {
          await gate
          return real.read(buffer, offset, length, position)
        },
        stat: (opts) => real.stat(opts),
        close: async () => {},
      },
    }
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    const request = cache.block(slow, 0)
    let prefetched = false
    const prefetch = cache.block(file, 1, { idle: true, uncounted: true }).then((b) => ((prefetched = true), b))
    await sleep(100)
    assert.equal(prefetched, false, 'held back while the request reads')
    assert.equal(cache.cachedBytes(file), 0)
    release()
    assert.deepEqual(await request, data.subarray(0, BLOCK))
    const ended = performance.now()
    assert.deepEqual(await prefetch, data.subarray(BLOCK))
    assert.ok(performance.now() - ended >= 5, 'and for a moment after')
    assert.equal(cache.cachedBytes(file), 2 * BLOCK)
    // With nothing running, a prefetch goes at once.
    const other = await fixture(t, BLOCK)
    assert.deepEqual(await cache.block(other.file, 0, { idle: true }), other.data)
  })

  test('a prefetch waiting for a read that never ends stops when its signal aborts', async (t) => {
    const { file, path } = await fixture(t, 2 * BLOCK)
    const real = await open(path)
    t.after(() => real.close())
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    t.after(() => release())
    const hung: OpenFile = { ...file, fh: { read: async (b, o, l, p) => (await gate, real.read(b, o, l, p)), stat: (opts) => real.stat(opts), close: async () => {} } }
    const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK })
    void cache.block(hung, 0).catch(() => {})
    const stop = new AbortController()
    const prefetch = cache.block(file, 1, { idle: true, uncounted: true, signal: stop.signal })
    await sleep(30)
    stop.abort()
    await assert.rejects(prefetch, { name: 'AbortError' })
    assert.equal(cache.cachedBytes(file), 0)
  })
})
