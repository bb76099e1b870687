/**
 * openFile and openFileAt: a regular file under the root, open for reading,
 * with the identity that keys the cache (as fstat gives it, once the version
 * has settled), its size and mtime, and its real path under the root
 * (symlinks resolved). Anything else is refused with its code, naming the
 * path as the client gave it, and leaves no descriptor open.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync, statSync, symlinkSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { identityOf } from '../../lib/fs/identity.js'
import { Jail } from '../../lib/fs/jail.js'
import { type OpenFile, openFile, openFileAt } from '../../lib/fs/open-file.js'
import { Settle } from '../../lib/fs/settle.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { within } from '../helpers/wait.js'

async function setup(t: TestContext) {
  const root = tempDir(t)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  return { root, jail }
}

/** The file's bytes through its descriptor; closes it. */
async function bytesOf(file: OpenFile): Promise<Buffer> {
  try {
    const buf = Buffer.alloc(file.size)
    const { bytesRead } = await file.fh.read(buf, 0, file.size, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await file.fh.close()
  }
}

describe('openFile', () => {
  test('opens a file with the identity, size and mtime its stat gives, named by its path under the root', async (t) => {
    const { root, jail } = await setup(t)
    const data = writeFile(root, 'a/b/c.bin', 70_000)
    const st = statSync(join(root, 'a/b/c.bin'), { bigint: true })
    const file = await openFile(jail, 'a//b/./c.bin')
    assert.equal(file.key, identityOf(st))
    assert.equal(file.size, data.length)
    assert.equal(file.mtimeMs, Number(st.mtimeMs))
    assert.equal(file.name, 'a/b/c.bin', 'empty and "." segments are not part of the name')
    assert.ok((await bytesOf(file)).equals(data))
  })

  test('names a file reached through symlinks by its real path, so a switched link names the new file', async (t) => {
    const { root, jail } = await setup(t)
    const a = writeFile(root, 'real/a.bin', 'first')
    const b = writeFile(root, 'real/b.bin', 'other')
    symlinkSync('real', join(root, 'dir-link'))
    symlinkSync('real/a.bin', join(root, 'link.bin'))
    const viaDir = await openFile(jail, 'dir-link/a.bin')
    assert.equal(viaDir.name, 'real/a.bin')
    assert.ok((await bytesOf(viaDir)).equals(a))
    const viaLink = await openFile(jail, 'link.bin')
    assert.equal(viaLink.name, 'real/a.bin')
    await viaLink.fh.close()
    // Same size; the name and the identity both tell the two apart.
    unlinkSync(join(root, 'link.bin'))
    symlinkSync('real/b.bin', join(root, 'link.bin'))
    const switched = await openFile(jail, 'link.bin')
    assert.equal(switched.name, 'real/b.bin')
    assert.notEqual(switched.key, viaLink.key)
    assert.ok((await bytesOf(switched)).equals(b))
  })

  test('a directory is EISDIR, a FIFO EACCES, without opening them; each names the path as given', async (t) => {
    const { root, jail } = await setup(t)
    mkdirSync(join(root, 'dir'))
    symlinkSync('dir', join(root, 'dir-link'))
    execFileSync('mkfifo', [join(root, 'fifo')])
    const before = fdCount()
    await assert.rejects(openFile(jail, 'dir'), { code: 'EISDIR', message: 'dir is a directory; use ls to list it' })
    await assert.rejects(openFile(jail, 'dir-link'), { code: 'EISDIR', message: 'dir-link is a directory; use ls to list it' })
    await assert.rejects(openFile(jail, ''), { code: 'EISDIR', message: 'the root is a directory; use ls to list it' })
    await assert.rejects(openFile(jail, './'), { code: 'EISDIR', message: 'the root is a directory; use ls to list it' })
    // Opening a FIFO for reading would wait for a writer: a refusal in bounded time shows it was not opened.
    const fifo = openFile(jail, 'fifo')
    assert.ok(await within(fifo, 5000), 'the FIFO was opened')
    await assert.rejects(fifo, { code: 'EACCES', message: 'fifo is not a regular file' })
    assert.equal(fdCount(), before, 'no descriptor left open')
  })

  test('a missing file is ENOENT, and a path through a file ENOTDIR', async (t) => {
    const { root, jail } = await setup(t)
    writeFile(root, 'f.bin', 'x')
    const before = fdCount()
    await assert.rejects(openFile(jail, 'nope.bin'), { code: 'ENOENT' })
    await assert.rejects(openFile(jail, 'nope/x.bin'), { code: 'ENOENT' })
    await assert.rejects(openFile(jail, 'f.bin/x'), { code: 'ENOTDIR' })
    await assert.rejects(openFile(jail, 'f.bin/'), { code: 'ENOTDIR' })
    assert.equal(fdCount(), before)
  })

  test('without a settle window a file just written is handed out at once', async (t) => {
    const { root, jail } = await setup(t)
    writeFile(root, 'fresh.bin', 10)
    const file = await openFile(jail, 'fresh.bin', new Settle(0))
    assert.equal(file.size, 10)
    await file.fh.close()
  })

  test('with a settle window it waits, and hands out the version that settled, not the one it opened', async (t) => {
    const { root, jail } = await setup(t)
    const path = join(root, 'growing.bin')
    writeFile(root, 'growing.bin', 100)
    const opening = openFile(jail, 'growing.bin', new Settle(300))
    await new Promise((r) => setTimeout(r, 100))
    appendFileSync(path, Buffer.alloc(50))
    const file = await opening
    await file.fh.close()
    assert.equal(file.size, 150)
    assert.equal(file.key, identityOf(statSync(path, { bigint: true })))
  })

  test('a file that keeps changing fails with ECHANGED and leaves no descriptor open', async (t) => {
    const { root, jail } = await setup(t)
    const path = join(root, 'busy.bin')
    writeFile(root, 'busy.bin', 1)
    const timer = setInterval(() => appendFileSync(path, 'x'), 20)
    t.after(() => clearInterval(timer))
    const before = fdCount()
    await assert.rejects(openFile(jail, 'busy.bin', new Settle(100)), { code: 'ECHANGED', message: /^busy\.bin is being written to/ })
    clearInterval(timer)
    assert.equal(fdCount(), before)
  })
})

describe('openFileAt', () => {
  test('opens the file at real names from a walk, and names it by them', async (t) => {
    const { root, jail } = await setup(t)
    const data = writeFile(root, 'x/y.bin', 5000)
    const file = await openFileAt(jail, ['x', 'y.bin'], 'shown/y.bin')
    assert.equal(file.name, 'x/y.bin')
    assert.equal(file.key, identityOf(statSync(join(root, 'x/y.bin'), { bigint: true })))
    assert.ok((await bytesOf(file)).equals(data))
  })

  test('its refusals name the path it was shown as', async (t) => {
    const { root, jail } = await setup(t)
    mkdirSync(join(root, 'd'))
    execFileSync('mkfifo', [join(root, 'p')])
    const before = fdCount()
    await assert.rejects(openFileAt(jail, ['d'], 'walked/d'), { code: 'EISDIR', message: 'walked/d is a directory; use ls to list it' })
    await assert.rejects(openFileAt(jail, ['p'], 'walked/p'), { code: 'EACCES', message: 'walked/p is not a regular file' })
    await assert.rejects(openFileAt(jail, ['gone'], 'walked/gone'), { code: 'ENOENT' })
    assert.equal(fdCount(), before)
  })
})
