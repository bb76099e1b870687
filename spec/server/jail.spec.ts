/**
 * The served root is a jail for every command: ls, read, stat, warm, evict
 * and write refuse anything that names, or resolves to, a place outside it
 * (EACCES), through the server as a client sees it. Symlinks that stay inside
 * work. And a directory swapped for a symlink leading out is refused.
 */
import assert from 'node:assert/strict'
import { lstatSync, readdirSync, readFileSync, realpathSync, renameSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Client } from '../../lib/client/client.js'
import { connect } from '../../lib/client/client.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile } from '../../lib/fs/open-file.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { codeOf } from '../helpers/outcome.js'
import { connectTo, type Running, startServer } from '../helpers/server.js'
import { fdCount } from '../helpers/fds.js'

const KiB = 1024

/** Open file descriptors of this process. */

/** Cleanups for suite-level fixtures (the helpers take anything with an `after`). */
function suiteScope() {
  const cleanups: (() => unknown)[] = []
  return {
    scope: { after: (fn: () => unknown) => void cleanups.push(fn) },
    async cleanup() {
      for (const fn of cleanups.reverse()) await fn()
    },
  }
}

/**
 * base/root          the served root
 *   file.txt, sub/deep.txt
 *   out-file    → base/outside/secret.txt
 *   out-dir     → base/outside
 *   chain-a     → chain-b → base/outside/secret.txt      (inside → inside → outside)
 *   chain-dir-a → chain-dir-b → base/outside
 *   in-file     → sub/deep.txt, in-dir → root/sub, in-chain → in-file, in-dir-chain → in-dir
 * base/outside       secret.txt (1 MiB + 7 bytes, so warm totals give it away)
 */
function makeTree(base: string) {
  const root = join(base, 'root')
  const outside = join(base, 'outside')
  const secret = writeFile(outside, 'secret.txt', 1024 * KiB + 7)
  const file = writeFile(root, 'file.txt', 'inside file')
  const deep = writeFile(root, 'sub/deep.txt', 'deep inside')
  symlinkSync(join(outside, 'secret.txt'), join(root, 'out-file'))
  symlinkSync(outside, join(root, 'out-dir'))
  symlinkSync(join(outside, 'secret.txt'), join(root, 'chain-b'))
  symlinkSync('chain-b', join(root, 'chain-a'))
  symlinkSync(outside, join(root, 'chain-dir-b'))
  symlinkSync(join(root, 'chain-dir-b'), join(root, 'chain-dir-a'))
  symlinkSync('sub/deep.txt', join(root, 'in-file'))
  symlinkSync(join(root, 'sub'), join(root, 'in-dir'))
  symlinkSync('in-file', join(root, 'in-chain'))
  symlinkSync('in-dir', join(root, 'in-dir-chain'))
  return { root, outside, secret, file, deep }
}

interface Case {
  what: string
  /** Paths refused by read, stat, ls, warm and evict. */
  paths: string[]
  /** Paths refused by write (on a writable server). */
  writes: string[]
}

const OVERLONG_PATH = 'a/'.repeat(2100) + 'x' // 4201 bytes, each name short
const OVERLONG_NAME = 'n'.repeat(256)
const OVERLONG_NAME_UTF8 = 'é'.repeat(128) // 128 characters, 256 bytes

describe('every command refuses a path leaving the root with EACCES', () => {
  const { scope, cleanup } = suiteScope()
  let tree: ReturnType<typeof makeTree>
  let running: Running
  let client: Client
  let outsideBefore: string[]

  before(async () => {
    tree = makeTree(realpathSync(tempDir(scope)))
    running = await startServer(scope, { root: tree.root, writable: true })
    client = await connectTo(scope, running.url)
    outsideBefore = readdirSync(tree.outside).sort()
  })
  after(cleanup)

  const cases: Case[] = [
    {
      what: "'..' segments",
      paths: ['..', '../outside/secret.txt', 'sub/../../outside/secret.txt', 'sub/..', './../root/file.txt'],
      writes: ['../outside/new.txt', 'sub/../../outside/new.txt', 'sub/../new.txt'],
    },
    { what: 'absolute paths', paths: ['/etc/passwd', '/', '<outside>/secret.txt', '<root>/file.txt'], writes: ['<outside>/new.txt', '/tmp/cacheserv-jail-new.txt', '<root>/new.txt'] },
    { what: 'NUL bytes', paths: ['file.txt\0', 'file.txt\0.png', '\0', 'sub\0/deep.txt'], writes: ['new\0.txt', 'sub/new.txt\0'] },
    { what: 'backslashes', paths: ['sub\\deep.txt', '..\\outside\\secret.txt', '\\'], writes: ['sub\\new.txt', '..\\outside\\new.txt'] },
    { what: 'an over-long path (> 4096 bytes)', paths: [OVERLONG_PATH], writes: [OVERLONG_PATH] },
    { what: 'an over-long name (> 255 bytes)', paths: [OVERLONG_NAME, `sub/${OVERLONG_NAME}`, OVERLONG_NAME_UTF8], writes: [OVERLONG_NAME, `sub/${OVERLONG_NAME_UTF8}`] },
    { what: 'a symlink to a directory outside the root, and paths through it', paths: ['out-dir', 'out-dir/secret.txt', 'out-dir/.'], writes: ['out-dir/new.txt', 'out-dir/secret.txt'] },
    { what: 'a symlink to a file outside the root', paths: ['out-file', './out-file', 'out-file/'], writes: [] },
    {
      what: 'a chain of symlinks inside → inside → outside',
      paths: ['chain-a', 'chain-b', 'chain-dir-a', 'chain-dir-a/secret.txt'],
      writes: ['chain-dir-a/new.txt', 'chain-dir-a/secret.txt'],
    },
  ]

  const expand = (p: string) => p.replace('<outside>', tree.outside).replace('<root>', tree.root)

  for (const c of cases) {
    test(`${c.what}: ls, read, stat, warm and evict answer EACCES`, async () => {
      for (const raw of c.paths) {
        const p = expand(raw)
        const shown = JSON.stringify(raw.length > 60 ? raw.slice(0, 60) + '…' : raw)
        assert.equal(await codeOf(client.readFile(p)), 'EACCES', `read ${shown}`)
        assert.equal(await codeOf(client.stat(p)), 'EACCES', `stat ${shown}`)
        assert.equal(await codeOf(client.ls(p)), 'EACCES', `ls ${shown}`)
        assert.equal(await codeOf(client.warm(p)), 'EACCES', `warm ${shown}`)
        assert.equal(await codeOf(client.evict(p)), 'EACCES', `evict ${shown}`)
      }
      // Nothing outside was loaded: the refused warms cached nothing of the 1 MiB secret.
      assert.ok((await client.stats()).cacheBytes < 1024 * KiB, 'nothing from outside the root was cached')
    })

    if (c.writes.length > 0) {
      test(`${c.what}: write answers EACCES and creates nothing outside`, async () => {
        for (const raw of c.writes) {
          const p = expand(raw)
          const shown = JSON.stringify(raw.length > 60 ? raw.slice(0, 60) + '…' : raw)
          assert.equal(await codeOf(client.write(p, Buffer.from('pwned'))), 'EACCES', `write ${shown}`)
        }
        assert.deepEqual(readdirSync(tree.outside).sort(), outsideBefore, 'the outside directory is unchanged')
        assert.ok(readFileSync(join(tree.outside, 'secret.txt')).equals(tree.secret), 'the outside file is unchanged')
      })
    }
  }

  test('ls of a directory hides symlinks that escape, and lists those that stay inside by what they point to', async () => {
    const names = (await client.ls('')).map((e) => `${e.name}:${e.type}`)
    for (const hidden of ['out-file', 'out-dir', 'chain-a', 'chain-b', 'chain-dir-a', 'chain-dir-b']) {
      assert.ok(!names.some((n) => n.startsWith(`${hidden}:`)), `${hidden} is not listed: ${names.join(' ')}`)
    }
    for (const shown of ['file.txt:file', 'sub:dir', 'in-file:file', 'in-dir:dir', 'in-chain:file', 'in-dir-chain:dir']) {
      assert.ok(names.includes(shown), `${shown} is listed: ${names.join(' ')}`)
    }
  })

  test('warm of the whole root does not follow escaping symlinks', async () => {
    await client.evict()
    const w = await client.warm('')
    assert.ok(w.totalBytes < 1024 * KiB, `warm counted ${w.totalBytes} bytes: the 1 MiB file outside was walked`)
    assert.ok(w.totalFiles >= 2)
    const ev = await client.evict('')
    assert.equal(ev.files, w.totalFiles, 'evict of the root visits the same files warm did')
  })
})

describe('write of a symlink that points at a file outside the root', () => {
  test('never writes through the link to the outside file', async (t) => {
    const tree = makeTree(realpathSync(tempDir(t)))
    const { url } = await startServer(t, { root: tree.root, writable: true })
    const client = await connectTo(t, url)
    for (const p of ['out-file', 'chain-a']) await codeOf(client.write(p, Buffer.from('pwned')))
    assert.ok(readFileSync(join(tree.outside, 'secret.txt')).equals(tree.secret), 'the outside file is unchanged')
    assert.deepEqual(readdirSync(tree.outside), ['secret.txt'])
  })

  test(
    'answers EACCES and leaves the link in place',
    async (t) => {
      const tree = makeTree(realpathSync(tempDir(t)))
      const { url } = await startServer(t, { root: tree.root, writable: true })
      const client = await connectTo(t, url)
      const codes = { 'out-file': await codeOf(client.write('out-file', Buffer.from('pwned'))), 'chain-a': await codeOf(client.write('chain-a', Buffer.from('pwned'))) }
      assert.deepEqual(codes, { 'out-file': 'EACCES', 'chain-a': 'EACCES' })
      assert.ok(lstatSync(join(tree.root, 'out-file')).isSymbolicLink(), 'out-file is still a symlink')
    },
  )
})

describe('symlinks that stay inside the root work', () => {
  test('read, stat and ls follow file and directory links, and chains of them', async (t) => {
    const tree = makeTree(realpathSync(tempDir(t)))
    const { url } = await startServer(t, { root: tree.root })
    const client = await connectTo(t, url)
    for (const p of ['in-file', 'in-chain', 'in-dir/deep.txt', 'in-dir-chain/deep.txt', './in-dir//deep.txt']) {
      assert.ok((await client.readFile(p)).equals(tree.deep), `read ${p}`)
      const st = await client.stat(p)
      assert.equal(st.type, 'file', `stat ${p}`)
      assert.equal(st.size, tree.deep.length, `stat ${p}`)
    }
    for (const p of ['in-dir', 'in-dir-chain']) {
      assert.deepEqual((await client.ls(p)).map((e) => `${e.name}:${e.type}`), ['deep.txt:file'], `ls ${p}`)
      assert.equal((await client.stat(p)).type, 'dir', `stat ${p}`)
    }
  })
})

describe('paths naming a directory', () => {
  test('a trailing "/" or "/." after a file is ENOTDIR for every command', async (t) => {
    const tree = makeTree(realpathSync(tempDir(t)))
    const { url } = await startServer(t, { root: tree.root, writable: true })
    const client = await connectTo(t, url)
    for (const p of ['file.txt/', 'sub/deep.txt/.', 'in-file/', 'in-dir/deep.txt/']) {
      assert.equal(await codeOf(client.readFile(p)), 'ENOTDIR', `read ${p}`)
      assert.equal(await codeOf(client.stat(p)), 'ENOTDIR', `stat ${p}`)
      assert.equal(await codeOf(client.ls(p)), 'ENOTDIR', `ls ${p}`)
      assert.equal(await codeOf(client.warm(p)), 'ENOTDIR', `warm ${p}`)
      assert.equal(await codeOf(client.evict(p)), 'ENOTDIR', `evict ${p}`)
      assert.equal(await codeOf(client.write(p, Buffer.from('x'))), 'ENOTDIR', `write ${p}`)
    }
    assert.ok(readFileSync(join(tree.root, 'file.txt')).equals(tree.file), 'file.txt is unchanged')
    assert.equal((await client.stat('sub/')).type, 'dir')
    assert.deepEqual((await client.ls('in-dir/.')).map((e) => e.name), ['deep.txt'])
  })
})

describe('descriptors', () => {
  test('every command, answered or refused, leaves no descriptor open in the server', async (t) => {
    const tree = makeTree(realpathSync(tempDir(t)))
    const { url } = await startServer(t, { root: tree.root, writable: true })
    const client = await connectTo(t, url)
    const paths = ['', 'file.txt', 'sub', 'sub/deep.txt', 'in-dir/deep.txt', 'in-chain', 'out-file', 'out-dir/secret.txt', 'chain-dir-a', 'nope', 'sub/nope/x', 'file.txt/x', 'file.txt/']
    const round = async () => {
      for (const p of paths) {
        await Promise.all([client.readFile(p), client.stat(p), client.ls(p), client.warm(p), client.evict(p)].map((r) => r.catch(() => {})))
      }
      await client.write('sub/new.txt', Buffer.from('new')).catch(() => {})
      await client.write('out-dir/new.txt', Buffer.from('new')).catch(() => {})
    }
    await round() // the first round may open what stays open (the cache's own state, lazy modules)
    const before = fdCount()
    await round()
    await round()
    assert.equal(fdCount(), before)
  })
})

describe('a directory swapped for a symlink after the path was checked', () => {
  /** root/d/f.bin and root/d/sub inside; outside/f.bin and outside/sub as the decoys. */
  function swapTree(t: Parameters<typeof tempDir>[0]) {
    const base = realpathSync(tempDir(t))
    const root = join(base, 'root')
    const outside = join(base, 'outside')
    const inside = writeFile(root, 'd/f.bin', 'inside bytes')
    writeFile(root, 'd/sub/g.bin', 'inside g')
    writeFile(outside, 'f.bin', 'SECRET outside bytes')
    writeFile(outside, 'sub/g.bin', 'SECRET g')
    /** Rename root/d away and put a symlink root/d → outside in its place. */
    const swap = () => {
      renameSync(join(root, 'd'), join(root, 'd-away'))
      symlinkSync(outside, join(root, 'd'))
    }
    return { root, outside, inside, swap }
  }

  test('openFile of a path under the swapped directory refuses it with EACCES, leaking no fd', async (t) => {
    const { root, inside, swap } = swapTree(t)
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    // Before the swap the same call opens the file: the refusal below is the swap's doing.
    const ok = await openFile(jail, 'd/f.bin')
    assert.equal(ok.size, inside.length)
    await ok.fh.close()
    swap()
    const fds = fdCount()
    await assert.rejects(openFile(jail, 'd/f.bin'), { code: 'EACCES' })
    assert.equal(fdCount(), fds, 'no descriptor is left open')
  })

  test('lookup of a directory under the swapped one refuses it with EACCES, leaking no fd', async (t) => {
    const { root, swap } = swapTree(t)
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    const ok = await jail.lookup('d/sub')
    assert.ok(ok.st.isDirectory())
    ok.close()
    swap()
    const fds = fdCount()
    await assert.rejects(jail.lookup('d/sub'), { code: 'EACCES' })
    assert.equal(fdCount(), fds, 'no descriptor is left open')
  })

  test('openFile and lookup refuse a last component swapped for a symlink out of the root with EACCES', async (t) => {
    const { root, swap } = swapTree(t)
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    writeFile(root, 'top.bin', 'inside top')
    assert.equal((await jail.lookup('d')).st.isDirectory(), true)
    // Both names are swapped: top.bin for a link to a file outside, d for a link to outside.
    renameSync(join(root, 'top.bin'), join(root, 'top-away.bin'))
    symlinkSync(join(root, '..', 'outside', 'f.bin'), join(root, 'top.bin'))
    swap()
    await assert.rejects(openFile(jail, 'top.bin'), { code: 'EACCES' })
    await assert.rejects(jail.lookup('d'), { code: 'EACCES' })
  })

  test('through the server, read, stat and ls of a path under the swapped directory answer EACCES', async (t) => {
    const { root, inside, swap } = swapTree(t)
    const { url } = await startServer(t, { root })
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('d/f.bin')).equals(inside))
    assert.deepEqual((await client.ls('d')).map((e) => e.name), ['f.bin', 'sub'])
    swap()
    assert.equal(await codeOf(client.readFile('d/f.bin')), 'EACCES', 'read d/f.bin')
    assert.equal(await codeOf(client.stat('d/f.bin')), 'EACCES', 'stat d/f.bin')
    assert.equal(await codeOf(client.ls('d')), 'EACCES', 'ls d')
    assert.equal(await codeOf(client.ls('d/sub')), 'EACCES', 'ls d/sub')
    assert.equal(await codeOf(client.warm('d')), 'EACCES', 'warm d')
    // A fresh connection sees the same.
    const again = await connect(url)
    try {
      assert.equal(await codeOf(again.readFile('d/f.bin')), 'EACCES')
    } finally {
      await again.close()
    }
  })
})
