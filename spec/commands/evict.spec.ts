/**
 * The `evict` command end to end: cached blocks of a file, a tree or
 * everything are dropped, and the next read goes back to the disk.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Client } from '../../lib/client/client.js'
import type { CacheServer } from '../../lib/server/server.js'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const MiB = 1024 * 1024

/** File → [size, blocks of 1 MiB]. */
const TREE: Record<string, [number, number]> = {
  'a.bin': [2 * MiB + 5, 3],
  'dir/b.bin': [MiB + 1, 2],
  'dir/sub/c.bin': [1000, 1],
  'other.bin': [100, 1],
}
const sizeOf = (...rels: string[]) => rels.reduce((n, r) => n + TREE[r][0], 0)
const blocksOf = (...rels: string[]) => rels.reduce((n, r) => n + TREE[r][1], 0)
const ALL = Object.keys(TREE)

/** A server with every file of TREE read once, so all of it is cached. */
async function cachedTree(t: Parameters<typeof startServer>[0]): Promise<{ server: CacheServer; client: Client; data: Map<string, Buffer> }> {
  const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
  const data = new Map<string, Buffer>()
  for (const rel of ALL) data.set(rel, writeFile(root, rel, TREE[rel][0]))
  const client = await connectTo(t, url)
  for (const rel of ALL) assert.ok((await client.readFile(rel)).equals(data.get(rel)!))
  const s = server.stats()
  assert.equal(s.cacheBytes, sizeOf(...ALL))
  assert.equal(s.entries, blocksOf(...ALL))
  return { server, client, data }
}

/** Read a file again and return how many disk reads that cost. */
async function diskReadsFor(server: CacheServer, client: Client, rel: string, data: Buffer): Promise<number> {
  const before = server.stats().diskReads
  assert.ok((await client.readFile(rel)).equals(data), rel)
  return server.stats().diskReads - before
}

describe('evict drops cached blocks', () => {
  test('evicting a file drops its blocks only, and the next read goes to the disk', async (t) => {
    const { server, client, data } = await cachedTree(t)
    const before = server.stats()
    const r = await client.evict('a.bin')
    assert.deepEqual(r, { files: 1, blocks: 3, bytes: sizeOf('a.bin') })
    const after = server.stats()
    assert.equal(after.cacheBytes, before.cacheBytes - sizeOf('a.bin'))
    assert.equal(after.entries, before.entries - 3)
    assert.equal((await client.stat('a.bin')).cachedBytes, 0)
    assert.equal((await client.stat('dir/b.bin')).cached, true, 'other files stay cached')
    assert.equal(await diskReadsFor(server, client, 'other.bin', data.get('other.bin')!), 0, 'an untouched file is still a hit')
    assert.ok((await diskReadsFor(server, client, 'a.bin', data.get('a.bin')!)) >= 3, 'the evicted file costs disk reads again')
  })

  test('evicting a directory drops every file under it, at any depth', async (t) => {
    const { server, client, data } = await cachedTree(t)
    const before = server.stats()
    const r = await client.evict('dir')
    assert.deepEqual(r, { files: 2, blocks: blocksOf('dir/b.bin', 'dir/sub/c.bin'), bytes: sizeOf('dir/b.bin', 'dir/sub/c.bin') })
    const after = server.stats()
    assert.equal(after.cacheBytes, before.cacheBytes - r.bytes)
    assert.equal(after.entries, before.entries - r.blocks)
    assert.equal((await client.stat('a.bin')).cached, true)
    assert.equal((await client.stat('other.bin')).cached, true)
    assert.ok((await diskReadsFor(server, client, 'dir/sub/c.bin', data.get('dir/sub/c.bin')!)) >= 1)
    assert.ok((await diskReadsFor(server, client, 'dir/b.bin', data.get('dir/b.bin')!)) >= 2)
  })

  test('evicting with no path drops everything', async (t) => {
    const { server, client, data } = await cachedTree(t)
    const r = await client.evict()
    assert.deepEqual(r, { files: null, blocks: blocksOf(...ALL), bytes: sizeOf(...ALL) })
    const after = server.stats()
    assert.equal(after.cacheBytes, 0)
    assert.equal(after.entries, 0)
    for (const rel of ALL) assert.ok((await diskReadsFor(server, client, rel, data.get(rel)!)) >= TREE[rel][1], rel)
    assert.equal(server.stats().cacheBytes, sizeOf(...ALL), 'the reads cached everything again')
  })

  test('evicting the root path "" drops every file, like no path', async (t) => {
    const { server, client } = await cachedTree(t)
    const r = await client.evict('')
    assert.deepEqual(r, { files: ALL.length, blocks: blocksOf(...ALL), bytes: sizeOf(...ALL) })
    assert.equal(server.stats().cacheBytes, 0)
  })

  test('evicting what is not cached drops nothing and returns zero blocks and bytes', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    writeFile(root, 'cold.bin', 2 * MiB)
    const hot = writeFile(root, 'hot.bin', 1000)
    const client = await connectTo(t, url)
    await client.readFile('hot.bin')
    const before = server.stats()
    const r = await client.evict('cold.bin')
    assert.equal(r.blocks, 0)
    assert.equal(r.bytes, 0)
    assert.equal(server.stats().cacheBytes, before.cacheBytes)
    assert.equal(await diskReadsFor(server, client, 'hot.bin', hot), 0)
    assert.deepEqual(await client.evict('cold.bin'), r, 'the same answer again')
  })

  test('evicting everything from an empty cache returns zeros', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    assert.deepEqual(await client.evict(), { files: null, blocks: 0, bytes: 0 })
  })
})

describe('evict refuses bad paths', () => {
  test('a path leaving the root is EACCES, and nothing is dropped', async (t) => {
    const { server, client } = await cachedTree(t)
    const before = server.stats().cacheBytes
    await assert.rejects(client.evict('../x'), { code: 'EACCES' })
    await assert.rejects(client.evict('dir/../../x'), { code: 'EACCES' })
    assert.equal(server.stats().cacheBytes, before)
  })

  test('a missing path is ENOENT', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    await assert.rejects(client.evict('nope'), { code: 'ENOENT' })
  })
})
