/**
 * A first pass over a dataset smaller than the cache leaves all of it cached,
 * with every policy: admission control only matters once something must be
 * evicted, so a block read from disk while there is room is always kept.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { POLICIES } from '../../lib/cache/policy.js'
import { connect } from '../../lib/client/client.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

const KiB = 1024
const BLOCK = 64 * KiB

describe('first pass over a dataset smaller than the cache', () => {
  for (const policy of POLICIES) {
    test(`${policy}: every block read is kept, and a second pass reads nothing from disk`, async (t) => {
      // 300 small files in folders and a few spanning many blocks: 2.4 MiB against a 4 MiB cache.
      const { server, url, root } = await startServer(t, { cacheSize: 64 * BLOCK, blockSize: BLOCK, policy, settle: 300 })
      const files: { path: string; data: Buffer }[] = []
      for (let i = 0; i < 300; i++) {
        const path = `class${i % 10}/img${String(i).padStart(4, '0')}.jpg`
        files.push({ path, data: writeFile(root, path, 3 * KiB + ((i * 7919) % (5 * KiB))) })
      }
      for (let i = 0; i < 3; i++) files.push({ path: `shard${i}.tar`, data: writeFile(root, `shard${i}.tar`, 5 * BLOCK + 123 * i) })
      const total = files.reduce((n, f) => n + f.data.length, 0)
      assert.ok(total < 64 * BLOCK)

      const client = await connect(url)
      t.after(() => client.close())
      // Like a DataLoader: shuffled, 8 in flight.
      const order = files.map((_, i) => (i * 131) % files.length)
      for (let i = 0; i < order.length; i += 8) {
        const batch = order.slice(i, i + 8)
        const got = await Promise.all(batch.map((j) => client.readFile(files[j].path)))
        got.forEach((g, k) => assert.ok(g.equals(files[batch[k]].data), files[batch[k]].path))
      }
      const first = server.stats()
      assert.equal(first.cacheBytes, total, 'all of it is cached')
      assert.equal(first.evictions, 0)

      for (const f of files) assert.ok((await client.readFile(f.path)).equals(f.data))
      const second = server.stats()
      assert.equal(second.diskReads, first.diskReads, 'the second pass reads nothing from disk')
      assert.equal(second.misses, first.misses)
    })
  }
})
