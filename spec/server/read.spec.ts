import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const PAGE = 256 * 1024
const MiB = 1024 * 1024

for (const checksum of ['crc32', 'md5'] as const) {
  describe(`byte-exact reads over TCP (${checksum})`, () => {
    const sizes: Record<string, number> = {
      empty: 0,
      'one byte': 1,
      'exactly one page': PAGE,
      'one page and one byte': PAGE + 1,
      'one block exactly': MiB,
      'many pages, odd size': 3 * MiB + 17,
      'larger than the cache': 5 * MiB + 3,
    }
    for (const [name, size] of Object.entries(sizes)) {
      test(`reads a file: ${name} (${size} bytes)`, async (t) => {
        const { url, root } = await startServer(t, { checksum, cacheSize: 2 * MiB })
        const data = writeFile(root, 'f.bin', size)
        const client = await connectTo(t, url)
        assert.equal(client.hello.checksum, checksum)
        const got = await client.readFile('f.bin')
        assert.equal(got.length, size)
        assert.ok(got.equals(data))
      })
    }
  })
}

describe('ranges', () => {
  const size = 2 * MiB + 1000
  const cases: [string, number, number | undefined, number, number][] = [
    // name, offset, length, expected start, expected end
    ['an empty range at 0', 0, 0, 0, 0],
    ['the first byte', 0, 1, 0, 1],
    ['the last byte', size - 1, 1, size - 1, size],
    ['a range across a block boundary', MiB - 5, 10, MiB - 5, MiB + 5],
    ['a range ending on a block boundary', MiB - 100, 100, MiB - 100, MiB],
    ['a range starting on a block boundary', MiB, PAGE + 3, MiB, MiB + PAGE + 3],
    ['a length past the end, clipped', size - 10, 1000, size - 10, size],
    ['from an offset to the end', 12345, undefined, 12345, size],
    ['at offset == size, empty', size, undefined, size, size],
  ]
  for (const [name, offset, length, from, to] of cases) {
    test(`reads ${name}`, async (t) => {
      const { url, root } = await startServer(t)
      const data = writeFile(root, 'r.bin', size)
      const client = await connectTo(t, url)
      const stream = client.read('r.bin', { offset, length })
      const chunks: Buffer[] = []
      for await (const c of stream) chunks.push(c as Buffer)
      assert.ok(Buffer.concat(chunks).equals(data.subarray(from, to)))
      assert.deepEqual({ size: stream.info!.size, offset: stream.info!.offset, length: stream.info!.length }, { size, offset, length: to - from })
    })
  }

  test('refuses an offset beyond the end with ERANGE', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'r.bin', 10)
    const client = await connectTo(t, url)
    await assert.rejects(client.readFile('r.bin', { offset: 11 }), { code: 'ERANGE' })
  })
})

describe('the cache', () => {
  test('serves a second read from RAM without touching the disk', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 16 * MiB })
    const data = writeFile(root, 'hot.bin', 3 * MiB + 5)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('hot.bin')).equals(data))
    const afterFirst = server.stats()
    assert.ok(afterFirst.diskReads >= 4)
    assert.ok((await client.readFile('hot.bin')).equals(data))
    const afterSecond = server.stats()
    assert.equal(afterSecond.diskReads, afterFirst.diskReads, 'no disk read on the second pass')
    assert.equal(afterSecond.hitBytes - afterFirst.hitBytes, data.length)
    assert.equal((await client.stat('hot.bin')).cached, true)
  })

  test('keeps cached bytes within the limit while reading a file larger than the cache', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 3 * MiB })
    const data = writeFile(root, 'big.bin', 10 * MiB)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('big.bin')).equals(data))
    assert.ok((await client.readFile('big.bin', { offset: 7 * MiB + 3, length: MiB })).equals(data.subarray(7 * MiB + 3, 8 * MiB + 3)))
    const s = server.stats()
    assert.ok(s.cacheBytes <= 3 * MiB, `cacheBytes ${s.cacheBytes}`)
    assert.ok(s.evictions > 0)
  })

  test('never serves a file replaced on disk from the old cached blocks', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'v.bin', 2 * MiB)
    const client = await connectTo(t, url)
    await client.readFile('v.bin')
    const v2 = writeFile(root, 'v.bin', 2 * MiB)
    assert.ok((await client.readFile('v.bin')).equals(v2))
  })
})

describe('paths', () => {
  test('reads names with spaces and unicode', async (t) => {
    const { url, root } = await startServer(t)
    const rel = 'dir with space/ünïcødé 名前 🚀.bin'
    const data = writeFile(root, rel, 70_000)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile(rel)).equals(data))
    assert.deepEqual(await client.ls('dir with space', { long: true }), [{ name: 'ünïcødé 名前 🚀.bin', type: 'file', size: 70_000 }])
    assert.equal((await client.stat(rel)).size, 70_000)
  })

  test('refuses paths that leave the root with EACCES', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'inside.txt', 'x')
    const client = await connectTo(t, url)
    for (const p of ['../etc/passwd', '/etc/passwd', 'a/../../x', '..', 'inside.txt\0', 'a\\..\\b']) {
      await assert.rejects(client.readFile(p), { code: 'EACCES' }, p)
      await assert.rejects(client.stat(p), { code: 'EACCES' }, p)
    }
    await assert.rejects(client.ls('..'), { code: 'EACCES' })
  })

  test('answers ENOENT, EISDIR and ENOTDIR', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'sub/f.txt', 'x')
    const client = await connectTo(t, url)
    await assert.rejects(client.readFile('nope.bin'), { code: 'ENOENT' })
    await assert.rejects(client.readFile('sub'), { code: 'EISDIR' })
    await assert.rejects(client.ls('sub/f.txt'), { code: 'ENOTDIR' })
    await assert.rejects(client.readFile('sub/f.txt/x'), { code: 'ENOTDIR' })
  })

  test('lists a directory sorted, with types', async (t) => {
    const { url, root } = await startServer(t)
    for (const f of ['b.txt', 'a.txt', 'z/1', 'c/2']) writeFile(root, f, 'x')
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls('', { long: true }), [
      { name: 'a.txt', type: 'file', size: 1 },
      { name: 'b.txt', type: 'file', size: 1 },
      { name: 'c', type: 'dir' },
      { name: 'z', type: 'dir' },
    ])
    const st = await client.stat('a.txt')
    assert.equal(st.type, 'file')
    assert.equal(st.size, 1)
    assert.equal(typeof st.mtimeMs, 'number')
    assert.equal(new Date(st.mtime).getTime(), Math.floor(st.mtimeMs))
  })
})
