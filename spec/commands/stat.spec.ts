/**
 * `stat` answered from the metadata cache: the same answer as the jail's
 * fstat gives, no call at all once every directory on the way is held, and
 * never an answer from before a change that finished.
 */
import assert from 'node:assert/strict'
import { renameSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Client } from '../../lib/client/client.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

async function drain(client: Client): Promise<number> {
  let n = 0
  for await (const _ of client.tree()) n++
  return n
}

describe('stat from the metadata cache', () => {
  test('a file under held directories costs a hit and no miss, and reads as the jail reads it', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a/b/c.bin', 1234)
    writeFile(root, 'a/d.bin', 7)
    const held = await startServer(t, { root })
    const plain = await startServer(t, { root, metaCache: false })
    const client = await connectTo(t, held.url)
    const other = await connectTo(t, plain.url)
    assert.equal(await drain(client), 2)
    const before = held.server.stats()
    for (const path of ['a/b/c.bin', 'a/d.bin', 'a/b', 'a']) {
      const [mine, theirs] = [await client.stat(path), await other.stat(path)]
      assert.deepEqual(mine, theirs, path)
    }
    const after = held.server.stats()
    assert.equal(after.metaMisses, before.metaMisses, 'nothing was read again')
    assert.ok(after.metaHits >= before.metaHits + 4, `hits ${before.metaHits} -> ${after.metaHits}`)
    assert.equal(plain.server.stats().metaHits, 0)
  })

  test('each change is seen by the very next stat: sizes written in place, truncation, rename, removal', async (t) => {
    const { url, root } = await startServer(t)
    const file = join(root, 'd', 'f.bin')
    writeFile(root, 'd/f.bin', 10)
    const client = await connectTo(t, url)
    await drain(client)
    for (let round = 0; round < 150; round++) {
      const size = (round * 7919) % 5000
      if (round % 3 === 0) truncateSync(file, size)
      else writeFileSync(file, Buffer.alloc(size, round))
      const st = await client.stat('d/f.bin')
      const real = statSync(file, { bigint: true })
      assert.equal(st.size, size, `round ${round}`)
      assert.equal(st.mtimeMs, Number(real.mtimeMs), `round ${round}`)
    }
    renameSync(file, join(root, 'd', 'g.bin'))
    await assert.rejects(client.stat('d/f.bin'), { code: 'ENOENT' })
    assert.equal((await client.stat('d/g.bin')).type, 'file')
    rmSync(join(root, 'd'), { recursive: true })
    await assert.rejects(client.stat('d/g.bin'), { code: 'ENOENT' })
    writeFile(root, 'd/g.bin', 3) // the same names again, a new directory
    assert.equal((await client.stat('d/g.bin')).size, 3)
  })

  test('symlinks on the way are resolved by the jail: inside the root followed, outside refused', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'real/x.bin', 5)
    const outside = tempDir(t)
    writeFile(outside, 'secret.bin', 9)
    symlinkSync('real', join(root, 'in'))
    symlinkSync(outside, join(root, 'out'))
    const client = await connectTo(t, url)
    await drain(client)
    assert.equal((await client.stat('in/x.bin')).size, 5)
    assert.equal((await client.stat('in')).type, 'dir')
    await assert.rejects(client.stat('out/secret.bin'), { code: 'EACCES' })
    await assert.rejects(client.stat('real/x.bin/'), { code: 'ENOTDIR' })
  })
})
