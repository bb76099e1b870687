import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { fstatSync, mkdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fstatFd, O_DIRECTORY, O_NOFOLLOW, O_PATH, openFd, release } from '../../lib/fs/path-descriptors.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { within } from '../helpers/wait.js'

describe('O_PATH descriptors', () => {
  test('hold a FIFO without opening it (an open for reading would wait for a writer)', async (t) => {
    const root = tempDir(t)
    execFileSync('mkfifo', [join(root, 'fifo')])
    const opened = openFd(join(root, 'fifo'), O_PATH | O_NOFOLLOW)
    assert.ok(await within(opened, 2000), 'the O_PATH open of a FIFO blocked')
    const fd = await opened
    t.after(() => release(fd))
    assert.equal((await fstatFd(fd)).isFIFO(), true)
  })

  test('with O_NOFOLLOW hold the symlink itself, not its target', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'target.txt', 'x')
    symlinkSync('target.txt', join(root, 'link'))
    const fd = await openFd(join(root, 'link'), O_PATH | O_NOFOLLOW)
    t.after(() => release(fd))
    const st = await fstatFd(fd)
    assert.equal(st.isSymbolicLink(), true)
    assert.equal(typeof st.ino, 'bigint')
  })

  test('with O_DIRECTORY refuse a file (ENOTDIR), and name entries of a directory through /proc/self/fd', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'sub/file.txt', 'hello')
    await assert.rejects(openFd(join(root, 'sub', 'file.txt'), O_PATH | O_DIRECTORY), { code: 'ENOTDIR' })
    const dir = await openFd(join(root, 'sub'), O_PATH | O_NOFOLLOW | O_DIRECTORY)
    t.after(() => release(dir))
    const file = await openFd(`/proc/self/fd/${dir}/file.txt`, O_PATH | O_NOFOLLOW)
    t.after(() => release(file))
    assert.equal((await fstatFd(file)).size, 5n)
  })

  test('fstatFd of a closed descriptor rejects with EBADF', async (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'd'))
    const fd = await openFd(join(root, 'd'), O_PATH | O_DIRECTORY)
    release(fd)
    await assert.rejects(fstatFd(fd), { code: 'EBADF' })
  })

  test('release closes the descriptor, and releasing it again does not throw', async (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'd'))
    const fd = await openFd(join(root, 'd'), O_PATH | O_DIRECTORY)
    release(fd)
    assert.throws(() => fstatSync(fd), { code: 'EBADF' })
    assert.doesNotThrow(() => release(fd))
  })
})
