import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { lstatSync, mkdirSync, readdirSync, realpathSync, renameSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Jail } from '../../lib/fs/jail.js'
import { openFile } from '../../lib/fs/open-file.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { fdCount } from '../helpers/fds.js'

const mkfifo = (path: string) => execFileSync('mkfifo', [path])

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
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  return { base, root, outside, evil, jail }
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

/** Open file descriptors of this process. */

describe('Jail path shapes', () => {
  test('a trailing "/" or "/." after a file is ENOTDIR; after a directory it is the directory', async (t) => {
    const { root, jail } = await setup(t)
    symlinkSync('file.txt', join(root, 'file-link'))
    symlinkSync('sub', join(root, 'sub-link'))
    for (const p of ['file.txt/', 'file.txt/.', 'sub/deep.txt/', 'sub/deep.txt/./', 'sub//deep.txt//', 'file-link/', 'sub-link/deep.txt/.']) {
      await assert.rejects(jail.resolve(p), { code: 'ENOTDIR', message: `not a directory: ${p}` }, JSON.stringify(p))
      await assert.rejects(openFile(jail, p), { code: 'ENOTDIR' }, JSON.stringify(p))
    }
    for (const p of ['sub/', 'sub/.', 'sub-link/', 'sub-link/./']) assert.equal(await jail.resolve(p), join(root, 'sub'), JSON.stringify(p))
    // A symlink whose own target ends in '/' must lead to a directory too.
    symlinkSync('file.txt/', join(root, 'slash-link'))
    await assert.rejects(jail.resolve('slash-link'), { code: 'ENOTDIR' })
  })
})

describe('Jail.lookup walks through descriptors', () => {
  test('a held directory stays the one resolved after its name is swapped for a symlink out of the root', async (t) => {
    const { root, outside, jail } = await setup(t)
    const sub = await jail.lookup('sub')
    t.after(() => sub.close())
    assert.deepEqual(sub.names, ['sub'])
    renameSync(join(root, 'sub'), join(root, 'sub-away'))
    symlinkSync(outside, join(root, 'sub'))
    assert.deepEqual(readdirSync(sub.path), ['deep.txt'], 'the held directory is the inside one')
    assert.ok(lstatSync(`${sub.path}/deep.txt`).isFile())
    await assert.rejects(jail.lookup('sub/secret.txt'), { code: 'EACCES' })
    await assert.rejects(openFile(jail, 'sub/secret.txt'), { code: 'EACCES' })
  })

  test('symlink chains inside, with ".." in their targets, resolve to where they lead', async (t) => {
    const { root, jail } = await setup(t)
    writeFile(root, 'sub/x/y.txt', 'y')
    symlinkSync('../file.txt', join(root, 'sub', 'up'))
    symlinkSync('../../sub/deep.txt', join(root, 'sub', 'x', 'deep-link'))
    symlinkSync('sub/up', join(root, 'c1'))
    symlinkSync('c1', join(root, 'c2'))
    symlinkSync('sub/x/..', join(root, 'dotdot-dir'))
    symlinkSync('x/../../sub/./x', join(root, 'sub', 'xx'))
    const cases: [string, string[]][] = [
      ['sub/up', ['file.txt']],
      ['c2', ['file.txt']],
      ['sub/x/deep-link', ['sub', 'deep.txt']],
      ['dotdot-dir/deep.txt', ['sub', 'deep.txt']],
      ['dotdot-dir', ['sub']],
      ['sub/xx/y.txt', ['sub', 'x', 'y.txt']],
    ]
    for (const [p, names] of cases) {
      const found = await jail.lookup(p)
      found.close()
      assert.deepEqual(found.names, names, p)
    }
    assert.ok((await readAll(jail, 'sub/x/deep-link')).equals(Buffer.from('deep')))
  })

  test('".." above the root is refused unless the names lead straight back into it', async (t) => {
    const { base, root, jail } = await setup(t)
    symlinkSync('../outside/secret.txt', join(root, 'esc'))
    symlinkSync('../root-evil/x.txt', join(root, 'evil'))
    symlinkSync('..', join(root, 'parent'))
    symlinkSync('../../..', join(root, 'sub', 'way-up'))
    symlinkSync('../root/file.txt', join(root, 'back'))
    symlinkSync('../../root/sub/deep.txt', join(root, 'sub', 'back'))
    for (const p of ['esc', 'evil', 'parent', 'parent/root-evil/x.txt', 'parent/outside', 'sub/way-up', 'sub/way-up/' + base.slice(1) + '/root/file.txt']) {
      await assert.rejects(jail.resolve(p), { code: 'EACCES', message: /resolves outside the root/ }, p)
    }
    assert.equal(await jail.resolve('back'), join(root, 'file.txt'))
    assert.equal(await jail.resolve('sub/back'), join(root, 'sub', 'deep.txt'))
    assert.equal(await jail.resolve('parent/root/file.txt'), join(root, 'file.txt'))
  })

  test('absolute targets are followed only under the root\'s real path', async (t) => {
    const { root, outside, evil, jail } = await setup(t)
    symlinkSync(join(root, 'sub', 'deep.txt'), join(root, 'abs'))
    symlinkSync(`${root}/sub/../file.txt`, join(root, 'abs-dotdot'))
    symlinkSync(`${root}//sub/.`, join(root, 'abs-dir'))
    symlinkSync(root, join(root, 'abs-root'))
    symlinkSync(`${root}/../outside/secret.txt`, join(root, 'abs-out'))
    symlinkSync(join(evil, 'x.txt'), join(root, 'abs-evil'))
    symlinkSync('/', join(root, 'slash'))
    assert.equal(await jail.resolve('abs'), join(root, 'sub', 'deep.txt'))
    assert.equal(await jail.resolve('abs-dotdot'), join(root, 'file.txt'))
    assert.equal(await jail.resolve('abs-dir/deep.txt'), join(root, 'sub', 'deep.txt'))
    assert.equal(await jail.resolve('abs-root/abs-root/file.txt'), join(root, 'file.txt'))
    for (const p of ['abs-out', 'abs-evil', 'slash', 'slash/etc/passwd']) await assert.rejects(jail.resolve(p), { code: 'EACCES' }, p)
    assert.ok(!(await jail.resolve('abs')).startsWith(outside))
  })

  test('symlink loops, and chains longer than 40 hops, are EACCES', async (t) => {
    const { root, jail } = await setup(t)
    symlinkSync('loop-b', join(root, 'loop-a'))
    symlinkSync('loop-a', join(root, 'loop-b'))
    symlinkSync('self', join(root, 'self'))
    symlinkSync('dir-loop/x', join(root, 'dir-loop'))
    symlinkSync('file.txt', join(root, 'hop0'))
    for (let i = 1; i <= 41; i++) symlinkSync(`hop${i - 1}`, join(root, `hop${i}`))
    for (const p of ['loop-a', 'self', 'self/x', 'dir-loop', 'hop41']) {
      await assert.rejects(jail.resolve(p), { code: 'EACCES', message: `path refused: symlinks loop on the way to ${p}` }, p)
    }
    assert.equal(await jail.resolve('hop39'), join(root, 'file.txt'), '40 hops are allowed')
  })

  test('no descriptor is left open, on success or on any error', async (t) => {
    const { root, outside, jail } = await setup(t)
    symlinkSync(join(outside, 'secret.txt'), join(root, 'out'))
    symlinkSync('loop', join(root, 'loop'))
    symlinkSync('../..', join(root, 'sub', 'up2'))
    symlinkSync('gone', join(root, 'dangling'))
    mkfifo(join(root, 'pipe'))
    const before = fdCount()
    const paths = ['', 'file.txt', 'sub', 'sub/deep.txt', 'nope', 'sub/nope/x', 'file.txt/x', 'file.txt/', 'out', 'loop', 'sub/up2/x', 'dangling', 'pipe', 'sub/']
    for (let round = 0; round < 3; round++) {
      for (const p of paths) {
        await jail.lookup(p).then((f) => f.close(), () => {})
        await openFile(jail, p).then((f) => f.fh.close(), () => {})
      }
    }
    assert.equal(fdCount(), before)
  })

  test('close() releases the root\'s descriptor once every lookup is done', async (t) => {
    const { root } = await setup(t)
    const before = fdCount()
    const jail = await Jail.open(root)
    assert.equal(fdCount(), before + 1)
    const held = await jail.lookup('sub')
    jail.close()
    assert.deepEqual(readdirSync(held.path), ['deep.txt'], 'a held directory outlives close()')
    await assert.rejects(jail.lookup('file.txt'), { code: 'ESHUTDOWN' })
    held.close()
    assert.equal(fdCount(), before)
  })
})

async function readAll(jail: Jail, path: string): Promise<Buffer> {
  const file = await openFile(jail, path)
  try {
    const buf = Buffer.alloc(file.size)
    await file.fh.read(buf, 0, file.size, 0)
    return buf
  } finally {
    await file.fh.close()
  }
}
