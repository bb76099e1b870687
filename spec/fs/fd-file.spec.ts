/**
 * A block read and the file's identity after it: in one trip to the thread
 * pool for a bare descriptor (with the addon), a read per piece and an fstat
 * for node's FileHandle. Both give the bytes asked for (fewer only where the
 * file ends) and the identity a stat gives after the read.
 */
import assert from 'node:assert/strict'
import { closeSync, ftruncateSync, openSync, readFileSync, statSync, utimesSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { FdFile, type ReadableFile, readThenStat } from '../../lib/fs/fd-file.js'
import { identityOf } from '../../lib/fs/identity.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

const kinds: [string, (path: string) => Promise<ReadableFile>, string | false][] = [
  ['a bare descriptor (native)', async (path) => new FdFile(openSync(path, 'r')), shmNative() ? false : 'needs native/shm.node'],
  ['a FileHandle', (path) => open(path, 'r'), false],
]

for (const [kind, openIt, skip] of kinds) {
  describe(`readThenStat on ${kind}`, { skip }, () => {
    test('reads the range whole into the buffer at its offset, then gives the identity a stat gives', async (t) => {
      const root = tempDir(t)
      const data = writeFile(root, 'f.bin', 300_000)
      const fh = await openIt(join(root, 'f.bin'))
      t.after(() => fh.close())
      const buf = Buffer.alloc(200_000 + 7, 0xee)
      const r = await readThenStat(fh, buf, 7, 200_000, 50_000)
      assert.equal(r.bytesRead, 200_000)
      assert.ok(buf.subarray(7).equals(data.subarray(50_000, 250_000)))
      assert.equal(buf[0], 0xee, 'nothing written before the offset')
      assert.equal(identityOf(r.st), identityOf(statSync(join(root, 'f.bin'), { bigint: true })))
      assert.equal(r.st.isFile(), true)
      if (fh instanceof FdFile) assert.equal(r.reads, 1, 'one job')
    })

    test('stops where the file ends, and sees a change made after the open', async (t) => {
      const root = tempDir(t)
      const data = writeFile(root, 'f.bin', 10_000)
      const fh = await openIt(join(root, 'f.bin'))
      t.after(() => fh.close())
      const before = identityOf(statSync(join(root, 'f.bin'), { bigint: true }))
      utimesSync(join(root, 'f.bin'), new Date(1_000_000), new Date(1_000_000))
      const buf = Buffer.alloc(16_384)
      const r = await readThenStat(fh, buf, 0, 16_384, 0)
      assert.equal(r.bytesRead, 10_000)
      assert.ok(buf.subarray(0, 10_000).equals(data))
      assert.notEqual(identityOf(r.st), before, 'the identity is taken after the read')
    })
  })
}

describe('readThenStat into a place in a file (a store slot)', { skip: shmNative() ? false : 'needs native/shm.node' }, () => {
  test('the bytes land at the place, through the descriptor, and the mapping of it shows them', async (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'f.bin', 300_000)
    const fh = new FdFile(openSync(join(root, 'f.bin'), 'r'))
    t.after(() => fh.close())
    const slab = openSync(join(root, 'slab'), 'w+')
    t.after(() => closeSync(slab))
    ftruncateSync(slab, 1 << 20)
    const native = shmNative()!
    const mapped = Buffer.from(native.view(native.mapFile(slab, 1 << 20), 8192, 400_000))
    const r = await readThenStat(fh, mapped, 100, 250_000, 40_000, { fd: slab, offset: 8192 })
    assert.equal(r.bytesRead, 250_000)
    assert.equal(r.reads, 1)
    assert.ok(mapped.subarray(100, 100 + 250_000).equals(data.subarray(40_000, 290_000)), 'seen through the mapping')
    assert.ok(readFileSync(join(root, 'slab')).subarray(8192 + 100, 8192 + 100 + 250_000).equals(data.subarray(40_000, 290_000)), 'in the file at the place')
    assert.equal(mapped[99], 0, 'nothing before the offset')
    assert.equal(identityOf(r.st), identityOf(statSync(join(root, 'f.bin'), { bigint: true })))
  })

  test('stops where the source ends, and a descriptor that cannot be written fails with its code', async (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'f.bin', 5000)
    const fh = new FdFile(openSync(join(root, 'f.bin'), 'r'))
    t.after(() => fh.close())
    const slab = openSync(join(root, 'slab'), 'w+')
    t.after(() => closeSync(slab))
    ftruncateSync(slab, 65536)
    const r = await readThenStat(fh, Buffer.alloc(8192), 0, 8192, 0, { fd: slab, offset: 0 })
    assert.equal(r.bytesRead, 5000)
    assert.ok(readFileSync(join(root, 'slab')).subarray(0, 5000).equals(data))
    const readOnly = openSync(join(root, 'slab'), 'r')
    t.after(() => closeSync(readOnly))
    await assert.rejects(readThenStat(fh, Buffer.alloc(8192), 0, 4096, 0, { fd: readOnly, offset: 0 }), { code: 'EBADF' })
    // Nothing of the failed move is left over for the next.
    const again = await readThenStat(fh, Buffer.alloc(8192), 0, 5000, 0, { fd: slab, offset: 4096 })
    assert.equal(again.bytesRead, 5000)
    assert.ok(readFileSync(join(root, 'slab')).subarray(4096, 9096).equals(data))
  })
})

describe('readThenStat refusing', { skip: shmNative() ? false : 'needs native/shm.node' }, () => {
  test('a closed descriptor fails with its errno name as the code', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'f.bin', 100)
    const fd = openSync(join(root, 'f.bin'), 'r')
    closeSync(fd)
    await assert.rejects(readThenStat(new FdFile(fd), Buffer.alloc(100), 0, 100, 0), { code: 'EBADF' })
  })

  test('a range beyond the buffer throws before anything is read', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'f.bin', 100)
    const fh = new FdFile(openSync(join(root, 'f.bin'), 'r'))
    t.after(() => fh.close())
    await assert.rejects(readThenStat(fh, Buffer.alloc(50), 10, 50, 0), /beyond the buffer/)
  })
})
