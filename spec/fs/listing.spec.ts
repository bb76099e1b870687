/**
 * readListing: a held directory read whole, its entries in UTF-16 order
 * with their kinds and (when asked) each one's lstat, uploads on their way
 * left out; the accessors read a listing as identityOf and the metadata
 * cache need.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { linkSync, lstatSync, mkdirSync, renameSync, statfsSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { identityOf } from '../../lib/fs/identity.js'
import { Jail } from '../../lib/fs/jail.js'
import {
  dirKeyOf,
  KIND_DIR,
  KIND_FILE,
  KIND_LINK,
  KIND_OTHER,
  keyOf,
  linkedElsewhere,
  type Listing,
  listingBytes,
  mtimeMsOf,
  readListing,
  sizeOf,
  STAT_FIELDS,
} from '../../lib/fs/listing.js'
import { uploadTempName } from '../../lib/fs/upload-temp.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { withoutNative } from '../helpers/without-native.js'

async function listed(t: TestContext, root: string, path: string, withStats: boolean): Promise<Listing> {
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const dir = await jail.lookup(path)
  try {
    return await readListing(dir, withStats)
  } finally {
    dir.close()
  }
}

/** root/d holding a file, a directory, symlinks to both, a FIFO and a file with a second name. */
function tree(t: TestContext): string {
  const root = tempDir(t)
  writeFile(root, 'd/file.bin', 1234)
  writeFile(root, 'd/sub/x', 'x')
  symlinkSync('file.bin', join(root, 'd/file-link'))
  symlinkSync('sub', join(root, 'd/dir-link'))
  execFileSync('mkfifo', [join(root, 'd/fifo')])
  writeFile(root, 'd/twice.bin', 'two names')
  linkSync(join(root, 'd/twice.bin'), join(root, 'other-name.bin'))
  return root
}

const KINDS: Record<string, number> = {
  'dir-link': KIND_LINK,
  fifo: KIND_OTHER,
  'file-link': KIND_LINK,
  'file.bin': KIND_FILE,
  sub: KIND_DIR,
  'twice.bin': KIND_FILE,
}

describe('readListing', () => {
  test('names every entry with its kind, a symlink as a symlink, with or without stats', async (t) => {
    const root = tree(t)
    for (const withStats of [false, true]) {
      const l = await listed(t, root, 'd', withStats)
      assert.deepEqual(l.names, Object.keys(KINDS), `withStats ${withStats}`)
      assert.deepEqual([...l.kinds], Object.values(KINDS), `withStats ${withStats}`)
      assert.equal(l.stats === null, !withStats)
    }
  })

  test('each entry\'s stats are its lstat: size, mtime, identity; a directory\'s key and a second name', async (t) => {
    const root = tree(t)
    const l = await listed(t, root, 'd', true)
    assert.equal(l.stats!.length, l.names.length * STAT_FIELDS)
    l.names.forEach((name, i) => {
      const st = lstatSync(join(root, 'd', name), { bigint: true })
      assert.equal(sizeOf(l, i), Number(st.size), name)
      assert.equal(mtimeMsOf(l, i), Number(st.mtimeMs), name)
      assert.equal(keyOf(l, i), identityOf(st), name)
      assert.equal(dirKeyOf(l, i), `${st.dev}:${st.ino}`, name)
      assert.equal(linkedElsewhere(l, i), name === 'twice.bin', name)
    })
    // A directory has more than one link too: only files count as linked elsewhere.
    assert.ok(lstatSync(join(root, 'd/sub')).nlink > 1)
  })

  test('the directory\'s own device, inode and filesystem type', async (t) => {
    const root = tree(t)
    const st = statSync(join(root, 'd'), { bigint: true })
    for (const withStats of [false, true]) {
      const l = await listed(t, root, 'd', withStats)
      assert.deepEqual([l.dev, l.ino], [st.dev, st.ino])
      assert.equal(l.fsType, Number(statfsSync(join(root, 'd')).type))
    }
  })

  test('sorts by UTF-16 code units, not by code point or locale', async (t) => {
    const root = tempDir(t)
    // U+1F600 is a surrogate pair (0xD83D…), so it sorts before U+FF21 in UTF-16, after it by code point.
    const names = ['b', 'B', 'a', '_', '10', '9', 'é', '\u{1F600}', '\uFF21', 'e\u0301']
    for (const n of names) writeFile(root, `d/${n}`, 'x')
    const l = await listed(t, root, 'd', false)
    assert.deepEqual(l.names, ['10', '9', 'B', '_', 'a', 'b', 'e\u0301', 'é', '\u{1F600}', '\uFF21'])
  })

  test('uploads on their way are left out, from the names and the stats alike', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'd/a.bin', 1)
    writeFile(root, `d/${uploadTempName()}`, 222)
    writeFile(root, 'd/z.bin', 3)
    // A name that merely resembles one is listed.
    writeFile(root, 'd/x.cacheserv-tmp', 4)
    for (const withStats of [false, true]) {
      const l = await listed(t, root, 'd', withStats)
      assert.deepEqual(l.names, ['a.bin', 'x.cacheserv-tmp', 'z.bin'])
      if (withStats) assert.deepEqual(l.names.map((_, i) => sizeOf(l, i)), [1, 4, 3])
    }
  })

  test('an empty directory, and the root', async (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'empty'))
    const empty = await listed(t, root, 'empty', true)
    assert.deepEqual([empty.names, [...empty.kinds], [...empty.stats!]], [[], [], []])
    const top = await listed(t, root, '', false)
    assert.deepEqual(top.names, ['empty'])
  })

  test('reads the directory held, even after its name was given to another', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'd/old.bin', 1)
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    const dir = await jail.lookup('d')
    t.after(() => dir.close())
    renameSync(join(root, 'd'), join(root, 'd-away'))
    writeFile(root, 'd/new.bin', 1)
    assert.deepEqual((await readListing(dir, true)).names, ['old.bin'])
  })

  test('a held file is no directory: ENOTDIR, and no descriptor left open', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'f.bin', 1)
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    const file = await jail.lookup('f.bin')
    t.after(() => file.close())
    const before = fdCount()
    for (const withStats of [false, true]) {
      await assert.rejects(readListing(file, withStats), { code: 'ENOTDIR', message: 'ENOTDIR: cannot list a directory' })
    }
    assert.equal(fdCount(), before)
  })
})

describe('readListing without the native addon', () => {
  test('gives the same listing through readdir and lstat, its filesystem type unknown', async (t) => {
    const root = tree(t)
    writeFile(root, `d/${uploadTempName()}`, 9)
    const mod = (rel: string) => JSON.stringify(new URL(rel, import.meta.url).href)
    const out = await withoutNative(`
      import { shmNative } from ${mod('../../lib/cache/shm-native.js')}
      import { Jail } from ${mod('../../lib/fs/jail.js')}
      import { readListing } from ${mod('../../lib/fs/listing.js')}
      if (shmNative() !== null) throw new Error('the addon was loaded')
      const jail = await Jail.open(${JSON.stringify(root)})
      const dir = await jail.lookup('d')
      const plain = []
      for (const withStats of [false, true]) plain.push(await readListing(dir, withStats))
      dir.close()
      jail.close()
      console.log(JSON.stringify(plain, (_, v) => (typeof v === 'bigint' ? String(v) : ArrayBuffer.isView(v) ? [...v].map(String) : v)))
    `)
    const plain = JSON.parse(out) as { names: string[]; kinds: string[]; stats: string[] | null; dev: string; ino: string; fsType: number }[]
    for (const [i, withStats] of [false, true].entries()) {
      const l = await listed(t, root, 'd', withStats)
      assert.deepEqual(plain[i].names, l.names, `withStats ${withStats}`)
      assert.deepEqual(plain[i].kinds, [...l.kinds].map(String))
      assert.deepEqual(plain[i].stats, l.stats && [...l.stats].map(String))
      assert.deepEqual([plain[i].dev, plain[i].ino], [String(l.dev), String(l.ino)])
      assert.equal(plain[i].fsType, 0)
    }
  })
})

describe('listingBytes', () => {
  test('grows with every name\'s length and with the stats held', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a/x', 1)
    writeFile(root, 'b/x', 1)
    writeFile(root, 'b/a-much-longer-name', 1)
    const [a, aStats, b, bStats] = await Promise.all([
      listed(t, root, 'a', false),
      listed(t, root, 'a', true),
      listed(t, root, 'b', false),
      listed(t, root, 'b', true),
    ])
    assert.ok(listingBytes(a) > 0)
    // Each entry's six stats are 48 bytes.
    assert.equal(listingBytes(aStats) - listingBytes(a), 48)
    assert.equal(listingBytes(bStats) - listingBytes(b), 96)
    assert.ok(listingBytes(b) - listingBytes(a) >= 'a-much-longer-name'.length, 'a name costs at least its length')
  })
})
