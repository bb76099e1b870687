/**
 * Pinning: files kept in the cache whatever the eviction policy does, within
 * its budget, by path, over real sockets and files.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { POLICIES } from '../../lib/cache/policy.js'
import type { Client } from '../../lib/client/client.js'
import type { CacheServer } from '../../lib/server/server.js'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const BLOCK = 64 * KiB

/** Read every file of a scan twice over: more than the cache holds. */
async function scan(client: Client, names: string[]): Promise<void> {
  for (let round = 0; round < 2; round++) for (const n of names) await client.readFile(n)
}

async function diskReadsFor(server: CacheServer, client: Client, path: string): Promise<number> {
  const before = server.stats().diskReads
  await client.readFile(path)
  return server.stats().diskReads - before
}

describe('pin', () => {
  for (const policy of POLICIES) {
    test(`pinned files survive a scan that evicts everything else (${policy}); unpinned, they go like the rest`, async (t) => {
      const { server, url, root } = await startServer(t, { cacheSize: 8 * BLOCK, blockSize: BLOCK, policy })
      const kept = writeFile(root, 'keep/a.bin', 2 * BLOCK + 100)
      writeFile(root, 'keep/b.bin', 1000)
      const names = Array.from({ length: 16 }, (_, i) => `scan/${i}.bin`)
      for (const n of names) writeFile(root, n, BLOCK)
      const client = await connectTo(t, url)
      const r = await client.pin('keep')
      assert.deepEqual(r, { files: 2, bytes: kept.length + 1000, pinnedFiles: 2, pinnedBytes: kept.length + 1000 })
      assert.equal((await client.stat('keep/a.bin')).pinned, true)
      await scan(client, names)
      assert.equal((await client.stat('keep/a.bin')).cached, true)
      assert.equal(await diskReadsFor(server, client, 'keep/a.bin'), 0)
      assert.ok((await client.readFile('keep/a.bin')).equals(kept))
      const s = server.stats()
      assert.equal(s.pinnedBytes, kept.length + 1000)
      assert.equal(s.pinnedFiles, 2)
      assert.ok(s.cacheBytes <= s.cacheLimit, 'pinned bytes count against the budget')
      // evict leaves pinned files in place.
      await client.evict()
      assert.equal((await client.stat('keep/b.bin')).cached, true)

      const u = await client.unpin('keep/a.bin')
      assert.equal(u.files, 1)
      assert.equal(u.pinnedFiles, 1)
      assert.equal((await client.stat('keep/a.bin')).pinned, false)
      await scan(client, names)
      assert.equal((await client.stat('keep/a.bin')).cached, false, 'unpinned, it was evicted by the scan')
      assert.equal((await client.stat('keep/b.bin')).cached, true, 'the other is still pinned')
    })
  }

  test('pinning more than the cache can hold fails with ENOSPC and pins nothing', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 8 * BLOCK, blockSize: BLOCK })
    writeFile(root, 'small.bin', BLOCK)
    writeFile(root, 'big/1.bin', 4 * BLOCK)
    writeFile(root, 'big/2.bin', 3 * BLOCK)
    const client = await connectTo(t, url)
    await client.pin('small.bin')
    await assert.rejects(client.pin('big'), { code: 'ENOSPC' })
    assert.equal(server.stats().pinnedBytes, BLOCK)
    assert.equal(server.stats().pinnedFiles, 1)
    assert.equal((await client.stat('big/1.bin')).pinned, false)
    await assert.rejects(client.pin('nope'), { code: 'ENOENT' })
    await assert.rejects(client.pin('../x'), { code: 'EACCES' })
  })

  test('a pinned file that changes is served fresh, and its new version is pinned once read', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 8 * BLOCK, blockSize: BLOCK })
    writeFile(root, 'p.bin', 2 * BLOCK)
    const client = await connectTo(t, url)
    await client.pin('p.bin')
    const fresh = Buffer.alloc(2 * BLOCK + 5, 9)
    writeFileSync(join(root, 'p.bin'), fresh)
    assert.ok((await client.readFile('p.bin')).equals(fresh), 'never the old bytes')
    let pinnedNow = false
    for (let i = 0; i < 100 && !pinnedNow; i++) {
      pinnedNow = server.stats().pinnedBytes === fresh.length && (await client.stat('p.bin')).cached
      if (!pinnedNow) await new Promise((r) => setTimeout(r, 20))
    }
    assert.ok(pinnedNow, 'the new version is pinned, the old one dropped')
    assert.equal((await client.stat('p.bin')).pinned, true)
    assert.equal(await diskReadsFor(server, client, 'p.bin'), 0)
  })
})
