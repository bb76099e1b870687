/**
 * A whole server under reads: the cache keeps within its limit over a file
 * larger than it, names in any script are served, paths leaving the root are
 * refused, and stat describes a file.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const MiB = 1024 * 1024

describe('the cache', () => {
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

  test('stat of a file gives its type, size and mtime', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.txt', 'x')
    const client = await connectTo(t, url)
    const st = await client.stat('a.txt')
    assert.equal(st.type, 'file')
    assert.equal(st.size, 1)
    assert.equal(typeof st.mtimeMs, 'number')
    assert.equal(new Date(st.mtime).getTime(), Math.floor(st.mtimeMs))
  })
})
