/**
 * File identities: the dev:ino:size:mtimeNs:ctimeNs key that keeps a changed
 * file from hitting blocks of its old contents, the stat the native addon
 * hands over, the host-independent version, and the 40-byte binary form the
 * shared-memory store keeps (with the identities it must refuse).
 */
import assert from 'node:assert/strict'
import { closeSync, fstatSync, openSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { IDENTITY_BYTES, identityOf, nativeStat, readIdentity, sharedVersion, writeIdentity } from '../../lib/fs/identity.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

const native = shmNative()
const raw = (mode: bigint, mtimeNs = 1_500_000_000n) => BigInt64Array.of(7n, 8n, mode, 9n, mtimeNs, 2n)

describe('identityOf', () => {
  test('changes when a same-sized rewrite has its mtime set back: the ctime catches it', async (t) => {
    const path = join(tempDir(t), 'f.bin')
    writeFileSync(path, 'aaaa')
    utimesSync(path, 1_000_000, 1_000_000)
    const before = statSync(path, { bigint: true })
    // ctime comes from a coarse kernel clock: let it tick before the rewrite.
    await sleep(30)
    writeFileSync(path, 'bbbb')
    utimesSync(path, 1_000_000, 1_000_000)
    const after = statSync(path, { bigint: true })
    assert.equal(after.mtimeNs, before.mtimeNs, 'mtime really was set back')
    assert.equal(after.ino, before.ino)
    assert.notEqual(identityOf(after), identityOf(before))
    assert.deepEqual(identityOf(after).split(':').map(BigInt), [after.dev, after.ino, 4n, after.mtimeNs, after.ctimeNs])
  })
})

describe('nativeStat', () => {
  test('reads the addon\'s [dev, ino, mode, size, mtimeNs, ctimeNs] as fstat would have it', { skip: !native && 'needs native/shm.node' }, async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.bin', 5000)
    const fd = openSync(join(root, 'a.bin'), 'r')
    t.after(() => closeSync(fd))
    const got = await new Promise<BigInt64Array>((resolve, reject) =>
      native!.readStat(fd, Buffer.alloc(16), 0, 16, 0, (code, _n, st) => (code ? reject(new Error(code)) : resolve(st))),
    )
    const st = nativeStat(got)
    const want = fstatSync(fd, { bigint: true })
    assert.equal(identityOf(st), identityOf(want))
    assert.equal(st.mtimeMs, want.mtimeMs)
    assert.equal(st.isFile(), true)
    assert.equal(st.isDirectory(), false)
  })

  test('tells files and directories by the whole file-type field, not single bits', () => {
    assert.equal(nativeStat(raw(0o100644n)).isFile(), true)
    assert.equal(nativeStat(raw(0o040755n)).isDirectory(), true)
    // A symlink's and a socket's type fields contain the bits of S_IFREG and S_IFDIR.
    for (const mode of [0o120777n, 0o140755n, 0o010644n, 0o060660n]) {
      const st = nativeStat(raw(mode))
      assert.deepEqual([st.isFile(), st.isDirectory()], [false, false], mode.toString(8))
    }
  })

  test('gives mtimeMs as whole milliseconds of mtimeNs', () => {
    assert.equal(nativeStat(raw(0o100644n, 1_234_567_999n)).mtimeMs, 1234n)
    assert.equal(nativeStat(raw(0o100644n, 999_999n)).mtimeMs, 0n)
  })
})

describe('sharedVersion', () => {
  const a = identityOf(nativeStat(BigInt64Array.of(64769n, 42n, 0o100644n, 10n, 5n, 6n)))
  const b = identityOf(nativeStat(BigInt64Array.of(2049n, 42n, 0o100644n, 10n, 5n, 6n)))

  test('drops the device number, which differs between hosts', () => {
    assert.notEqual(a, b)
    assert.equal(sharedVersion(a), sharedVersion(b))
    assert.equal(sharedVersion(a), '42:10:5:6')
  })

  test('drops the inode number too when asked', () => {
    assert.equal(sharedVersion(a, false), '10:5:6')
    assert.equal(sharedVersion('1:2:3:4:5', false), sharedVersion('9:8:3:4:5', false))
  })
})

describe('writeIdentity and readIdentity', () => {
  const MAX_U64 = (2n ** 64n - 1n).toString()
  const MAX_I64 = (2n ** 63n - 1n).toString()
  const MIN_I64 = (-(2n ** 63n)).toString()

  test('round-trip identities, extremes included, in exactly IDENTITY_BYTES at an offset', () => {
    for (const key of ['64769:1234:5000:1796405332844000000:1796405332837595462', `${MAX_U64}:0:${MAX_I64}:${MIN_I64}:${MAX_I64}`, '0:0:0:-1:0']) {
      const buf = Buffer.alloc(IDENTITY_BYTES + 10, 0xee)
      assert.equal(writeIdentity(key, buf, 5), true, key)
      assert.equal(readIdentity(buf, 5), key)
      assert.deepEqual([...buf.subarray(0, 5), ...buf.subarray(5 + IDENTITY_BYTES)], Array(10).fill(0xee), 'nothing written outside')
    }
  })

  test('refuses what is not an identity, or does not fit its field, and writes nothing', () => {
    const refused = [
      '', '1:2:3:4', '1:2:3:4:5:6', '1:2:3:4:x', '1:2::4:5', '1.5:2:3:4:5', '+1:2:3:4:5', ' 1:2:3:4:5', 'a/b.bin',
      '-1:2:3:4:5', '1:-2:3:4:5', '1:2:-3:4:5',
      `${2n ** 64n}:2:3:4:5`, `1:${2n ** 64n}:3:4:5`, `1:2:${2n ** 63n}:4:5`,
      `1:2:3:${2n ** 63n}:5`, `1:2:3:4:${-(2n ** 63n) - 1n}`,
    ]
    for (const key of refused) {
      const buf = Buffer.alloc(IDENTITY_BYTES, 0xee)
      assert.equal(writeIdentity(key, buf, 0), false, JSON.stringify(key))
      assert.ok(buf.every((b) => b === 0xee), `${key}: buffer untouched`)
    }
  })

  test('round-trips the identity of a real file', (t) => {
    const root = tempDir(t)
    writeFile(root, 'x.bin', 300)
    const key = identityOf(statSync(join(root, 'x.bin'), { bigint: true }))
    const buf = Buffer.alloc(IDENTITY_BYTES)
    assert.equal(writeIdentity(key, buf, 0), true)
    assert.equal(readIdentity(buf, 0), key)
  })
})
