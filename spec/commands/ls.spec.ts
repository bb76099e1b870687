/**
 * The `ls` command: a directory's entries sorted by name (UTF-16 code
 * units), typed file, dir or other from the directory itself, files with
 * their sizes when asked (`long`); a symlink listed as what it points to, or
 * not at all when it dangles or leads out of the root. The same answers from
 * the metadata cache as from the disk.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, symlinkSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Client } from '../../lib/client/client.js'
import { type Entry, ls } from '../../lib/commands/ls.js'
import { MetaCache } from '../../lib/fs/meta-cache.js'
import { collect, commandContext } from '../helpers/command-context.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

/** Every file under the root: fills a server's metadata cache. */
async function walk(client: Client): Promise<void> {
  for await (const _ of client.tree());
}

describe('the ls command', () => {
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
  })

  test('sizes only with long; names sorted by UTF-16 code units, not by locale', async (t) => {
    const { url, root } = await startServer(t)
    const names = ['b', 'B', 'a', '_x', 'é', 'Z', '10', '9', '😀', 'ｚ']
    names.forEach((n, i) => writeFile(root, `d/${n}`, i))
    const client = await connectTo(t, url)
    const sorted = [...names].sort()
    assert.deepEqual(await client.ls('d'), sorted.map((name) => ({ name, type: 'file' })))
    assert.deepEqual(await client.ls('d', { long: true }), sorted.map((name) => ({ name, type: 'file', size: names.indexOf(name) })))
  })

  test('the root by default; an empty directory is an empty list', async (t) => {
    const { url, root } = await startServer(t)
    mkdirSync(join(root, 'empty'))
    writeFile(root, 'f', 'x')
    const client = await connectTo(t, url)
    assert.deepEqual(await client.request('ls', {}), { entries: [{ name: 'empty', type: 'dir' }, { name: 'f', type: 'file' }] })
    assert.deepEqual(await client.ls('empty'), [])
    assert.deepEqual(await client.ls('empty/'), [])
  })

  test('a symlink is listed as what it points to; one dangling or leading out of the root is not listed', async (t) => {
    const { url, root } = await startServer(t)
    const outside = tempDir(t)
    writeFile(outside, 'secret.bin', 50)
    writeFile(root, 'd/real.bin', 7)
    mkdirSync(join(root, 'd/sub'))
    symlinkSync('real.bin', join(root, 'd/to-file'))
    symlinkSync('sub', join(root, 'd/to-dir'))
    symlinkSync('../d/real.bin', join(root, 'd/up-and-back'))
    symlinkSync('nothing', join(root, 'd/dangling'))
    symlinkSync(join(outside, 'secret.bin'), join(root, 'd/out'))
    symlinkSync('../..', join(root, 'd/above'))
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls('d', { long: true }), [
      { name: 'real.bin', type: 'file', size: 7 },
      { name: 'sub', type: 'dir' },
      { name: 'to-dir', type: 'dir' },
      { name: 'to-file', type: 'file', size: 7 },
      { name: 'up-and-back', type: 'file', size: 7 },
    ])
  })

  test('more symlinks than are resolved at once: every one listed, each in its place', async (t) => {
    const { url, root } = await startServer(t)
    const expected: { name: string; type: string }[] = []
    for (let i = 0; i < 150; i++) {
      const name = `e${String(i).padStart(3, '0')}`
      if (i % 3 === 0) {
        writeFile(root, `d/${name}`, 'x')
        expected.push({ name, type: 'file' })
      } else {
        symlinkSync(i % 3 === 1 ? `e000` : '.', join(root, `d/${name}`))
        expected.push({ name, type: i % 3 === 1 ? 'file' : 'dir' })
      }
    }
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls('d'), expected)
  })

  test('what is neither a file nor a directory is "other", with no size', async (t) => {
    const { url, root } = await startServer(t)
    assert.equal(spawnSync('mkfifo', [join(root, 'fifo')]).status, 0)
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls('', { long: true }), [{ name: 'fifo', type: 'other' }])
  })

  test('a file is ENOTDIR, a missing path ENOENT, a path leaving the root EACCES', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'sub/f.txt', 'x')
    const client = await connectTo(t, url)
    await assert.rejects(client.ls('sub/f.txt'), { code: 'ENOTDIR', message: /sub\/f\.txt is not a directory/ })
    await assert.rejects(client.ls('sub/nope'), { code: 'ENOENT' })
    await assert.rejects(client.ls('../x'), { code: 'EACCES' })
  })

  test('a path that is not a string, or a long that is not a boolean, is EBADREQ', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    await assert.rejects(client.request('ls', { path: 3 }), { code: 'EBADREQ', message: '"path" must be a string' })
    await assert.rejects(client.request('ls', { path: '', long: 'yes' }), { code: 'EBADREQ', message: '"long" must be true or false' })
  })
})

describe('ls from the metadata cache', () => {
  const TREE = { 'a/b/c.bin': 1234, 'a/b/d.bin': 5, 'a/e.bin': 7, 'top.bin': 70 }

  test('a held directory is listed with no read of the disk, the same as a server without the cache lists it', async (t) => {
    const root = tempDir(t)
    for (const [rel, size] of Object.entries(TREE)) writeFile(root, rel, size)
    mkdirSync(join(root, 'a/empty'))
    symlinkSync('b', join(root, 'a/link'))
    const held = await startServer(t, { root })
    const plain = await startServer(t, { root, metaCache: false })
    const client = await connectTo(t, held.url)
    const other = await connectTo(t, plain.url)
    await walk(client)
    const before = held.server.stats()
    for (const path of ['a/b', 'a', 'a/link', 'a/empty', '']) {
      for (const long of [false, true]) assert.deepEqual(await client.ls(path, { long }), await other.ls(path, { long }), `${path} long ${long}`)
    }
    const after = held.server.stats()
    assert.equal(after.metaMisses, before.metaMisses, 'no directory was read again')
    assert.ok(after.metaHits > before.metaHits)
  })

  test('a change that finished is seen by the very next ls', async (t) => {
    const { url, root } = await startServer(t)
    for (const [rel, size] of Object.entries(TREE)) writeFile(root, rel, size)
    const client = await connectTo(t, url)
    await walk(client)
    writeFile(root, 'a/b/new.bin', 3)
    assert.deepEqual((await client.ls('a/b')).map((e) => e.name), ['c.bin', 'd.bin', 'new.bin'])
    truncateSync(join(root, 'a/b/c.bin'), 10)
    assert.deepEqual(await client.ls('a/b', { long: true }), [
      { name: 'c.bin', type: 'file', size: 10 },
      { name: 'd.bin', type: 'file', size: 5 },
      { name: 'new.bin', type: 'file', size: 3 },
    ])
    rmSync(join(root, 'a/b'), { recursive: true })
    await assert.rejects(client.ls('a/b'), { code: 'ENOENT' })
    assert.deepEqual(await client.ls('a'), [{ name: 'e.bin', type: 'file' }])
  })

  test('a directory held with every one on the way is listed without a lookup; the root and a directory not held are looked up', async (t) => {
    const { ctx } = await commandContext(t, TREE)
    const meta = new MetaCache(1024 * 1024)
    t.after(() => meta.close())
    ctx.meta = meta
    let lookups = 0
    const lookup = ctx.jail.lookup.bind(ctx.jail)
    ctx.jail.lookup = (path) => (lookups++, lookup(path))
    const list = async (path: string, long = true) => {
      const [part] = await collect(ls({ path, long }, ctx))
      assert.ok(part.kind === 'result')
      return (part.body as { entries: Entry[] }).entries
    }
    // Listed once each, the root first: each listing is held from then on.
    for (const path of ['', 'a', 'a/b']) await list(path)
    assert.equal(lookups, 3)
    assert.deepEqual(await list('a/b'), [
      { name: 'c.bin', type: 'file', size: 1234 },
      { name: 'd.bin', type: 'file', size: 5 },
    ])
    assert.deepEqual(await list('a', false), [{ name: 'b', type: 'dir' }, { name: 'e.bin', type: 'file' }])
    assert.equal(lookups, 3, 'held: no lookup')
    await list('')
    assert.equal(lookups, 4, 'the root is looked up')
  })
})
