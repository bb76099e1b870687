import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, realpathSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Jail } from '../../lib/fs/jail.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

/** A root with a file and a subdirectory, next to an "outside" directory and a sibling named root-evil. */
async function setup(t: TestContext) {
  const base = realpathSync(tempDir(t))
  const root = join(base, 'root')
  const outside = join(base, 'outside')
  const evil = join(base, 'root-evil')
  writeFile(root, 'file.txt', 'inside')
  writeFile(root, 'sub/deep.txt', 'deep')
  writeFile(outside, 'secret.txt', 'secret')
  writeFile(evil, 'x.txt', 'x')
  return { base, root, outside, evil, jail: await Jail.open(root) }
}

describe('Jail', () => {
  test('resolves the root for "", "." and other spellings of it', async (t) => {
    const { root, jail } = await setup(t)
    for (const p of ['', '.', './', './.', './/.']) assert.equal(await jail.resolve(p), root, JSON.stringify(p))
  })

  test('resolves relative paths, ignoring empty and "." segments', async (t) => {
    const { root, jail } = await setup(t)
    assert.equal(await jail.resolve('file.txt'), join(root, 'file.txt'))
    assert.equal(await jail.resolve('sub//./deep.txt'), join(root, 'sub', 'deep.txt'))
    assert.equal(await jail.resolve('sub/'), join(root, 'sub'))
  })

  test('refuses ".." segments, absolute paths, NUL bytes and backslashes with EACCES', async (t) => {
    const { jail } = await setup(t)
    for (const p of ['..', '../outside/secret.txt', 'sub/..', 'sub/../file.txt', 'a/../../b', '/etc/passwd', '/', 'file.txt\0', 'a\0b', 'sub\\deep.txt', '..\\outside']) {
      await assert.rejects(jail.resolve(p), { code: 'EACCES' }, JSON.stringify(p))
      assert.throws(() => Jail.segments(p), { code: 'EACCES' }, JSON.stringify(p))
    }
  })

  test('allows names that merely contain dots', async (t) => {
    const { root, jail } = await setup(t)
    writeFile(root, '..hidden', 'h')
    writeFile(root, 'a..b', 'h')
    assert.equal(await jail.resolve('..hidden'), join(root, '..hidden'))
    assert.equal(await jail.resolve('a..b'), join(root, 'a..b'))
  })

  test('refuses a symlink to a file outside the root with EACCES', async (t) => {
    const { root, outside, jail } = await setup(t)
    symlinkSync(join(outside, 'secret.txt'), join(root, 'link.txt'))
    await assert.rejects(jail.resolve('link.txt'), { code: 'EACCES' })
  })

  test('refuses a symlink to a directory outside the root, and paths through it, with EACCES', async (t) => {
    const { root, outside, jail } = await setup(t)
    symlinkSync(outside, join(root, 'out'))
    await assert.rejects(jail.resolve('out'), { code: 'EACCES' })
    await assert.rejects(jail.resolve('out/secret.txt'), { code: 'EACCES' })
  })

  test('refuses a symlink to a sibling directory whose name starts with the root\'s name', async (t) => {
    const { root, evil, jail } = await setup(t)
    symlinkSync(evil, join(root, 'evil'))
    await assert.rejects(jail.resolve('evil/x.txt'), { code: 'EACCES' })
  })

  test('follows a symlink that stays inside the root', async (t) => {
    const { root, jail } = await setup(t)
    symlinkSync('sub/deep.txt', join(root, 'rel-link'))
    symlinkSync(join(root, 'sub'), join(root, 'dir-link'))
    assert.equal(await jail.resolve('rel-link'), join(root, 'sub', 'deep.txt'))
    assert.equal(await jail.resolve('dir-link/deep.txt'), join(root, 'sub', 'deep.txt'))
  })

  test('works through a symlinked root', async (t) => {
    const { base, root } = await setup(t)
    symlinkSync(root, join(base, 'root-link'))
    const jail = await Jail.open(join(base, 'root-link'))
    assert.equal(jail.root, root)
    assert.equal(await jail.resolve('file.txt'), join(root, 'file.txt'))
  })

  test('answers a missing path with ENOENT and a file used as a directory with ENOTDIR', async (t) => {
    const { root, jail } = await setup(t)
    await assert.rejects(jail.resolve('nope.txt'), { code: 'ENOENT' })
    await assert.rejects(jail.resolve('nope/deeper.txt'), { code: 'ENOENT' })
    mkdirSync(join(root, 'empty'))
    await assert.rejects(jail.resolve('empty/x'), { code: 'ENOENT' })
    await assert.rejects(jail.resolve('file.txt/x'), { code: 'ENOTDIR' })
  })

  test('answers a dangling symlink with ENOENT', async (t) => {
    const { root, jail } = await setup(t)
    symlinkSync(join(root, 'gone'), join(root, 'dangling'))
    await assert.rejects(jail.resolve('dangling'), { code: 'ENOENT' })
  })

  test('answers a path that is not a string with EBADREQ, and an over-long one with EACCES', async (t) => {
    const { jail } = await setup(t)
    for (const p of [42, null, undefined, {}, ['file.txt'], true]) {
      await assert.rejects(jail.resolve(p), { code: 'EBADREQ' }, String(p))
    }
    await assert.rejects(jail.resolve('a/'.repeat(3000)), { code: 'EACCES' })
    await assert.rejects(jail.resolve('n'.repeat(256)), { code: 'EACCES' })
  })
})
