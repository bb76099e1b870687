/**
 * KnownFiles lets a read of a recently read, unchanged, cached file skip the
 * open. The shortcut must never serve what the full path would refuse or
 * would serve differently: a swapped file, a symlink out of the root, a
 * removed file, a directory. Each case reads through a real server, first to
 * make the path known and cached, then after the change.
 */
import assert from 'node:assert/strict'
import { mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { KnownFiles } from '../../lib/fs/known-files.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile } from '../../lib/fs/open-file.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

async function knownAndCached(t: Parameters<typeof startServer>[0]) {
  const base = tempDir(t)
  const root = join(base, 'root')
  mkdirSync(root)
  const secret = writeFile(base, 'outside/secret.bin', 5000)
  const data = writeFile(root, 'dir/f.bin', 3000)
  const { server, url } = await startServer(t, { root })
  const client = await connectTo(t, url)
  assert.deepEqual(await client.readFile('dir/f.bin'), data)
  const misses = server.cache.stats().misses
  // The second read is served by the shortcut, without opening the file, and reads no block again.
  assert.deepEqual(await client.readFile('dir/f.bin'), data)
  assert.equal(server.files.hits, 1)
  assert.equal(server.cache.stats().misses, misses)
  return { base, root, secret, data, server, client }
}

describe('reads of known files', () => {
  it('serve the new bytes after the file is replaced (rename over it)', async (t) => {
    const { root, client } = await knownAndCached(t)
    const fresh = writeFile(root, 'tmp.bin', 3000)
    renameSync(join(root, 'tmp.bin'), join(root, 'dir/f.bin'))
    assert.deepEqual(await client.readFile('dir/f.bin'), fresh)
  })

  it('serve the new bytes after the file is rewritten in place with another size', async (t) => {
    const { root, client } = await knownAndCached(t)
    const fresh = Buffer.alloc(4000, 7)
    writeFileSync(join(root, 'dir/f.bin'), fresh)
    assert.deepEqual(await client.readFile('dir/f.bin'), fresh)
  })

  it('refuse a file swapped for a symlink out of the root (EACCES)', async (t) => {
    const { base, root, client } = await knownAndCached(t)
    unlinkSync(join(root, 'dir/f.bin'))
    symlinkSync(join(base, 'outside/secret.bin'), join(root, 'dir/f.bin'))
    await assert.rejects(client.readFile('dir/f.bin'), { code: 'EACCES' })
  })

  it('refuse a directory on the way swapped for a symlink out of the root (EACCES)', async (t) => {
    const { base, root, client } = await knownAndCached(t)
    writeFile(base, 'outside/f.bin', 3000)
    rmSync(join(root, 'dir'), { recursive: true })
    symlinkSync(join(base, 'outside'), join(root, 'dir'))
    await assert.rejects(client.readFile('dir/f.bin'), { code: 'EACCES' })
  })

  it('report a directory on the way turned into a file as the full path does (ENOTDIR, no server path)', async (t) => {
    const { root, client } = await knownAndCached(t)
    rmSync(join(root, 'dir'), { recursive: true })
    writeFileSync(join(root, 'dir'), 'now a file')
    const err = await client.readFile('dir/f.bin').then(() => null, (e: Error & { code?: string }) => e)
    assert.equal(err?.code, 'ENOTDIR')
    assert.ok(!err.message.includes(root), err.message)
  })

  it('refuse a trailing "/" or "/." after the known file (ENOTDIR), as the full path does', async (t) => {
    const { server, client } = await knownAndCached(t)
    for (const p of ['dir/f.bin/', 'dir/f.bin/.', 'dir//f.bin//']) {
      await assert.rejects(client.readFile(p), { code: 'ENOTDIR' }, p)
    }
    assert.equal(server.files.hits, 1, 'no read took the shortcut')
  })

  it('fail with ENOENT once the file is gone', async (t) => {
    const { root, client } = await knownAndCached(t)
    unlinkSync(join(root, 'dir/f.bin'))
    await assert.rejects(client.readFile('dir/f.bin'), { code: 'ENOENT' })
  })

  it('read from disk again after an evict', async (t) => {
    const { server, client, data } = await knownAndCached(t)
    await client.evict('dir/f.bin')
    const misses = server.cache.stats().misses
    assert.deepEqual(await client.readFile('dir/f.bin'), data)
    assert.equal(server.cache.stats().misses, misses + 1)
  })

  it('serve ranges and other spellings of the path from the cache', async (t) => {
    const { server, client, data } = await knownAndCached(t)
    const misses = server.cache.stats().misses
    assert.deepEqual(await client.readFile('dir//./f.bin', { offset: 100, length: 200 }), data.subarray(100, 300))
    await assert.rejects(client.readFile('dir/f.bin', { offset: 3001 }), { code: 'ERANGE' })
    assert.equal(server.cache.stats().misses, misses)
    assert.equal(server.files.hits, 2, 'the range under another spelling took the shortcut')
  })
})

/** A KnownFiles over a fresh root holding `rel`, which was opened (and closed) and is remembered as `as`. */
async function remembering(t: Parameters<typeof tempDir>[0], rel: string, as = rel) {
  const root = tempDir(t)
  writeFile(root, rel, 10)
  const jail = await Jail.open(root)
  const files = new KnownFiles(jail)
  const file = await openFile(jail, rel)
  await file.fh.close()
  files.remember(as, file)
  return { root, files, file }
}

describe('KnownFiles', () => {
  it('knows a path only while a stat shows the identity it had', async (t) => {
    const { root, files, file } = await remembering(t, 'a.bin')
    assert.equal(new KnownFiles(await Jail.open(root)).current('a.bin'), null, 'never remembered: not known')
    assert.equal(files.current('./a.bin')?.key, file.key)
    writeFile(root, 'a.bin', 11)
    assert.equal(files.current('a.bin'), null)
    // Forgotten for good, even if the old identity came back.
    assert.equal(files.current('a.bin'), null)
  })

  it('never knows a directory', async (t) => {
    // A wrong record: the stat of a directory must not match it.
    const { files } = await remembering(t, 'd/x', 'd')
    assert.equal(files.current('d'), null)
  })

  it('remembered() gives the record unchecked, by any spelling, and nothing for a refused path', async (t) => {
    const { root, files, file } = await remembering(t, 'a.bin')
    writeFile(root, 'a.bin', 11)
    // A hint: the change is not looked for, and the record stays.
    assert.equal(files.remembered('./a.bin')?.key, file.key)
    assert.equal(files.knows('a.bin'), true)
    assert.equal(files.remembered('../a.bin'), null)
    assert.equal(files.remembered('b.bin'), null)
  })

  it('a path is being read while any request reading it is not done', async (t) => {
    const files = new KnownFiles(await Jail.open(tempDir(t)))
    const a = files.reading(['d/f.bin', 'd/g.bin'])
    const b = files.reading(['d/f.bin'])
    assert.equal(files.isBeingRead('d/f.bin'), true)
    a()
    a() // once only
    assert.equal(files.isBeingRead('d/f.bin'), true, 'b still reads it')
    assert.equal(files.isBeingRead('d/g.bin'), false)
    b()
    assert.equal(files.isBeingRead('d/f.bin'), false)
    assert.equal(files.isBeingRead('d/h.bin'), false)
  })
})
