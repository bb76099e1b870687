/**
 * The cheap open (one thread-pool job, openat2 beneath the root with no
 * symlink allowed): it opens exactly the plain files the jail's walk would,
 * with the identity a stat gives, and leaves everything else to the walk.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { FdFile } from '../../lib/fs/fd-file.js'
import { identityOf } from '../../lib/fs/identity.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile } from '../../lib/fs/open-file.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

const skip = shmNative() ? false : 'needs native/shm.node'

describe('opening a file with no symlink on its path', { skip }, () => {
  test('opens it in one step, with the identity a stat gives, and reads its bytes', async (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'a/b/c.bin', 70_000)
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    const plain = await jail.openPlain(['a', 'b', 'c.bin'])
    assert.ok(plain, 'opened')
    const fh = new FdFile(plain.fd)
    try {
      assert.equal(identityOf(plain.st), identityOf(statSync(join(root, 'a/b/c.bin'), { bigint: true })))
      assert.equal(plain.st.isFile(), true)
      const buf = Buffer.alloc(data.length)
      assert.equal((await fh.read(buf, 0, buf.length, 0)).bytesRead, data.length)
      assert.ok(buf.equals(data))
      assert.equal(identityOf(await fh.stat()), identityOf(plain.st))
    } finally {
      await fh.close()
    }
    const file = await openFile(jail, 'a//b/./c.bin')
    assert.ok(file.fh instanceof FdFile, 'openFile takes the cheap way')
    await file.fh.close()
  })

  test('leaves symlinks, directories, FIFOs, missing names and escapes to the walk, opening nothing', async (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'real/f.bin', 1000)
    symlinkSync('real', join(root, 'linkdir'))
    symlinkSync('f.bin', join(root, 'real/link.bin'))
    mkdirSync(join(root, 'dir'))
    execFileSync('mkfifo', [join(root, 'fifo')])
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    for (const parts of [['linkdir', 'f.bin'], ['real', 'link.bin'], ['dir'], ['fifo'], ['nope'], ['real', 'nope', 'x'], ['..', 'x']]) {
      // A FIFO opened for reading would block until a writer came: the race shows it was not opened.
      const got = await Promise.race([jail.openPlain(parts), new Promise((r) => setTimeout(() => r('hung'), 5000))])
      assert.equal(got, null, parts.join('/'))
    }
    // Through the walk, the symlinked names still open the file, and the rest fail as they always did.
    for (const path of ['linkdir/f.bin', 'real/link.bin']) {
      const file = await openFile(jail, path)
      assert.ok(!(file.fh instanceof FdFile), `${path}: the walk`)
      const buf = Buffer.alloc(1000)
      await file.fh.read(buf, 0, 1000, 0)
      assert.ok(buf.equals(data))
      await file.fh.close()
    }
    await assert.rejects(openFile(jail, 'fifo'), { code: 'EACCES' })
    await assert.rejects(openFile(jail, 'dir'), { code: 'EISDIR' })
    await assert.rejects(openFile(jail, 'nope'), { code: 'ENOENT' })
  })
})
