/**
 * The `warm` command end to end: a real server on loopback, real files,
 * checked through the server's own counters (cacheBytes, diskReads).
 */
import assert from 'node:assert/strict'
import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { WarmResult } from '../../lib/client/client.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const MiB = 1024 * KiB

/** A small tree with files of one block, several blocks, an empty file, and one outside `tree`. */
function makeTree(root: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (const [rel, size] of [
    ['tree/a.bin', 2 * MiB + 17],
    ['tree/b.bin', 1000],
    ['tree/empty.bin', 0],
    ['tree/sub/c.bin', MiB],
    ['tree/sub/deeper/d.bin', 300 * KiB],
  ] as const) {
    files.set(rel, writeFile(root, rel, size))
  }
  writeFile(root, 'outside.bin', 50 * KiB)
  return files
}

const total = (files: Map<string, Buffer>) => [...files.values()].reduce((n, b) => n + b.length, 0)

describe('warm loads files into the cache', () => {
  test('warming a tree loads every file under it and nothing else; reads then cost no disk read', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    const result = await client.warm('tree')
    assert.deepEqual(result, { files: files.size, bytes: total(files), totalFiles: files.size, totalBytes: total(files), full: false })
    const warmed = server.stats()
    assert.equal(warmed.cacheBytes, total(files))
    assert.equal((await client.stat('outside.bin')).cachedBytes, 0, 'a file outside the tree stays cold')
    for (const [rel, data] of files) {
      assert.equal((await client.stat(rel)).cached, true, rel)
      assert.ok((await client.readFile(rel)).equals(data), rel)
    }
    assert.equal(server.stats().diskReads, warmed.diskReads, 'every read was served from RAM')
  })

  test('warming a single file loads just that file', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    const size = files.get('tree/a.bin')!.length
    const result = await client.warm('tree/a.bin')
    assert.deepEqual(result, { files: 1, bytes: size, totalFiles: 1, totalBytes: size, full: false })
    assert.equal(server.stats().cacheBytes, size)
    assert.equal((await client.stat('tree/a.bin')).cached, true)
    assert.equal((await client.stat('tree/b.bin')).cachedBytes, 0)
    const before = server.stats().diskReads
    assert.ok((await client.readFile('tree/a.bin')).equals(files.get('tree/a.bin')!))
    assert.equal(server.stats().diskReads, before)
  })

  test('warming the root (no path) loads every file', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    const result = await client.warm()
    assert.equal(result.files, files.size + 1)
    assert.equal(result.bytes, total(files) + 50 * KiB)
    assert.equal(server.stats().cacheBytes, result.bytes)
  })

  test('warming twice loads nothing new and leaves the cache as it was', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    await client.warm('tree')
    const first = server.stats()
    const again = await client.warm('tree')
    assert.equal(again.files, files.size)
    assert.equal(again.full, false)
    const second = server.stats()
    assert.equal(second.cacheBytes, first.cacheBytes)
    assert.equal(second.diskReads, first.diskReads)
  })

  test('a long warm reports consistent PROGRESS and ends with every file loaded', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 256 * MiB })
    const count = 300
    const size = 100 * 1000
    for (let i = 0; i < count; i++) writeFile(root, `many/${String(i).padStart(3, '0')}.bin`, size)
    const client = await connectTo(t, url)
    const seen: WarmResult[] = []
    const result = await client.warm('many', (p) => seen.push(p))
    assert.equal(result.files, count)
    assert.equal(result.totalFiles, count)
    assert.equal(result.bytes, count * size)
    assert.equal(result.full, false)
    assert.equal(server.stats().cacheBytes, count * size)
    let lastBytes = 0
    for (const p of seen) {
      assert.ok(p.files <= p.totalFiles, `progress files ${p.files} > totalFiles ${p.totalFiles}`)
      assert.equal(p.totalFiles, count)
      assert.equal(p.totalBytes, count * size)
      assert.ok(p.bytes >= lastBytes, `progress bytes went back from ${lastBytes} to ${p.bytes}`)
      assert.ok(p.bytes <= result.bytes)
      lastBytes = p.bytes
    }
  })

  test('warming more than fits stops with full: true and stays within the limit', async (t) => {
    const limit = 350 * KiB
    const { server, url, root } = await startServer(t, { cacheSize: limit })
    const count = 10
    for (let i = 0; i < count; i++) writeFile(root, `big/${i}.bin`, 100 * KiB)
    const client = await connectTo(t, url)
    const result = await client.warm('big')
    assert.equal(result.full, true)
    assert.equal(result.totalFiles, count)
    assert.ok(result.files < count, `files ${result.files}`)
    assert.ok(result.files > 0, 'what fits is loaded')
    assert.equal(result.bytes, result.files * 100 * KiB)
    const s = server.stats()
    assert.ok(s.cacheBytes <= limit, `cacheBytes ${s.cacheBytes} > limit ${limit}`)
  })

  for (const policy of ['lru', 'tinylfu'] as const) {
    test(`a full warm reports exactly what is cached (${policy})`, async (t) => {
      const limit = 350 * KiB
      const { server, url, root } = await startServer(t, { cacheSize: limit, policy })
      for (let i = 0; i < 10; i++) writeFile(root, `big/${i}.bin`, 100 * KiB)
      const client = await connectTo(t, url)
      const result = await client.warm('big')
      assert.equal(result.full, true)
      const s = server.stats()
      assert.equal(s.policy, policy)
      assert.equal(s.cacheBytes, result.bytes, 'bytes reported as loaded are cached')
      assert.equal(result.bytes, result.files * 100 * KiB)
      // LRU takes every block that fits; TinyLFU may decline one at admission (counted as an eviction).
      if (policy === 'lru') assert.equal(s.evictions, 0, 'warming does not evict what it just loaded')
    })

    test(`a file that fits is loaded whole even when a later one does not fit (${policy})`, async (t) => {
      const { server, url, root } = await startServer(t, { cacheSize: 5 * MiB + MiB / 2, policy })
      for (let i = 0; i < 4; i++) writeFile(root, `big/${i}.bin`, 3 * MiB)
      const client = await connectTo(t, url)
      const result = await client.warm('big')
      assert.equal(result.full, true)
      assert.deepEqual({ files: result.files, bytes: result.bytes }, { files: 1, bytes: 3 * MiB })
      assert.equal(server.stats().cacheBytes, 3 * MiB)
    })
  }
})

describe('warm and files that change under it', () => {
  test('a file written to while it is warmed is skipped; the others are loaded and the warm succeeds', { timeout: 30_000 }, async (t) => {
    const root = tempDir(t)
    const files = makeTree(root)
    // Big, so its blocks take a while to read; appended to all along, as a log is.
    writeFile(root, 'tree/growing.log', 48 * MiB)
    const { url, server } = await startServer(t, { root, cacheSize: 256 * MiB })
    const log = openSync(join(root, 'tree/growing.log'), 'a')
    const appender = setInterval(() => appendFileSync(log, 'one more line\n'), 2)
    t.after(() => {
      clearInterval(appender)
      closeSync(log)
    })
    const client = await connectTo(t, url)
    const result = await client.warm('tree')
    clearInterval(appender)
    assert.equal(result.files, files.size, 'every file but the growing one')
    for (const path of files.keys()) assert.equal((await client.stat(path)).cached, true, path)
    assert.equal(server.stats().cacheBytes >= total(files), true)
  })
})

describe('warm refuses bad paths', () => {
  test('a missing path is ENOENT', async (t) => {
    const { url, root } = await startServer(t)
    makeTree(root)
    const client = await connectTo(t, url)
    await assert.rejects(client.warm('nope'), { code: 'ENOENT' })
    await assert.rejects(client.warm('tree/nope.bin'), { code: 'ENOENT' })
  })

  test('a path leaving the root is EACCES', async (t) => {
    const { server, url, root } = await startServer(t)
    makeTree(root)
    const client = await connectTo(t, url)
    await assert.rejects(client.warm('../x'), { code: 'EACCES' })
    await assert.rejects(client.warm('/etc'), { code: 'EACCES' })
    assert.equal(server.stats().cacheBytes, 0)
  })
})

describe('server.warm() (as --warm uses it)', () => {
  test('gives the same result and cache contents as the warm command', async (t) => {
    const root = tempDir(t)
    const files = makeTree(root)
    const viaCommand = await startServer(t, { root, cacheSize: 64 * MiB })
    const viaLibrary = await startServer(t, { root, cacheSize: 64 * MiB })
    const client = await connectTo(t, viaCommand.url)
    const fromCommand = await client.warm('tree')
    const fromLibrary = await viaLibrary.server.warm('tree')
    assert.deepEqual(fromLibrary, fromCommand)
    assert.equal(fromLibrary.files, files.size)
    assert.equal(viaLibrary.server.stats().cacheBytes, total(files))
    assert.equal(viaLibrary.server.stats().cacheBytes, viaCommand.server.stats().cacheBytes)
  })

  test('close() stops a warm still running: it fails with ESHUTDOWN and reads nothing more', async (t) => {
    const { server, root } = await startServer(t, { cacheSize: 512 * MiB })
    for (let i = 0; i < 300; i++) writeFile(root, `many/${i}.bin`, 256 * 1024)
    const warming = server.warm('')
    await new Promise((resolve) => setTimeout(resolve, 30)) // under way
    await server.close()
    const reads = server.stats().diskReads
    // A fast machine may have finished already; otherwise the warm ends with ESHUTDOWN.
    const outcome = await warming.then(
      (r) => (r.files === 300 ? 'finished' : `partial result ${JSON.stringify(r)}`),
      (err: NodeJS.ErrnoException) => err.code,
    )
    assert.ok(outcome === 'finished' || outcome === 'ESHUTDOWN', String(outcome))
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(server.stats().diskReads, reads, 'no disk read after close() resolved')
  })

  test('close() during a long walk of the tree stops it there: the warm fails with ESHUTDOWN', { timeout: 60_000 }, async (t) => {
    const { server, root } = await startServer(t)
    // 20,000 empty directories: the walk reads each one and finds no file, so it has no part to stop at.
    for (let i = 0; i < 200; i++) for (let j = 0; j < 100; j++) mkdirSync(join(root, `d${String(i).padStart(3, '0')}`, `e${j}`), { recursive: true })
    const warming = server.warm('')
    await new Promise((resolve) => setTimeout(resolve, 20))
    await server.close()
    await assert.rejects(warming, { code: 'ESHUTDOWN' })
  })

  test('fails with the same codes for a missing path and one leaving the root', async (t) => {
    const { server, root } = await startServer(t)
    makeTree(root)
    await assert.rejects(server.warm('nope'), { code: 'ENOENT' })
    await assert.rejects(server.warm('../x'), { code: 'EACCES' })
  })
})

describe('warm from a list', () => {
  test('loads exactly the listed files, in that order, until the cache is full; the rest stay out', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 4 * MiB, policy: 'lru' })
    const names = Array.from({ length: 12 }, (_, i) => `d${i % 3}/f${String(i).padStart(2, '0')}.bin`)
    for (const n of names) writeFile(root, n, 700 * KiB)
    const client = await connectTo(t, url)
    // An epoch's order: not the walk's.
    const order = [7, 2, 11, 0, 5, 9, 1, 3, 4, 6, 8, 10].map((i) => names[i])
    const r = await client.warmList(order)
    assert.equal(r.full, true)
    assert.equal(r.files, 5, '5 of 700 KiB fit in 4 MiB')
    // A list is looked at as it is loaded: the totals count the paths reached, the one that did not fit included.
    assert.equal(r.totalFiles, 6)
    assert.equal(r.totalBytes, 6 * 700 * KiB)
    for (const [i, n] of order.entries()) assert.equal((await client.stat(n)).cached, i < 5, `${n}, listed ${i}`)
    assert.equal(server.stats().cacheBytes, 5 * 700 * KiB)
  })

  test('missing paths, directories and escapes are skipped with their codes; the others are loaded', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    const r = await client.warmList(['tree/b.bin', 'nope.bin', 'tree/sub', '../etc/passwd', 'tree/a.bin'])
    assert.equal(r.files, 2)
    assert.equal(r.bytes, files.get('tree/b.bin')!.length + files.get('tree/a.bin')!.length)
    assert.equal(r.skipped, 3)
    assert.deepEqual(r.skippedPaths, [
      { path: 'nope.bin', code: 'ENOENT' },
      { path: 'tree/sub', code: 'EISDIR' },
      { path: '../etc/passwd', code: 'EACCES' },
    ])
  })

  test('a request with both path and paths, or paths that are not strings, is EBADREQ', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    await assert.rejects(client.request('warm', { path: 'a', paths: ['b'] }), { code: 'EBADREQ' })
    await assert.rejects(client.request('warm', { paths: [1] }), { code: 'EBADREQ' })
    await assert.rejects(client.request('warm', { paths: ['a'], idle: 'yes' }), { code: 'EBADREQ' })
  })

  test('a listed file a request is reading is left to it: not loaded, not counted', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    const done = server.files.reading(['tree/sub/c.bin'])
    const r = await client.warmList(['tree/b.bin', 'tree/sub/c.bin'])
    assert.deepEqual([r.files, r.bytes, r.totalFiles, r.skipped], [1, files.get('tree/b.bin')!.length, 1, 0])
    assert.equal((await client.stat('tree/sub/c.bin')).cached, false)
    done()
    assert.equal((await client.warmList(['tree/sub/c.bin'])).files, 1)
  })

  test('an idle warm (a prefetch) loads the same files; a file known and cached is counted without a disk read', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = makeTree(root)
    const client = await connectTo(t, url)
    assert.deepEqual(await client.readFile('tree/b.bin'), files.get('tree/b.bin'))
    const reads = server.stats().diskReads
    const r = await client.warmList(['tree/b.bin', 'tree/sub/c.bin', 'nope.bin'], undefined, { idle: true })
    assert.deepEqual([r.files, r.bytes, r.skipped, r.full], [2, files.get('tree/b.bin')!.length + MiB, 1, false])
    assert.equal((await client.stat('tree/sub/c.bin')).cached, true)
    assert.ok(server.stats().diskReads > reads, 'c.bin was read from the disk')
    const again = server.stats().diskReads
    assert.equal((await client.warmList(['tree/b.bin', 'tree/sub/c.bin'], undefined, { idle: true })).files, 2)
    assert.equal(server.stats().diskReads, again)
  })
})
