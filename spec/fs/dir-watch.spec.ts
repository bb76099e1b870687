/**
 * DirWatch: inotify for the metadata cache. A change to a watched
 * directory's entries is queued before the call that made it returns, so a
 * drain right after it sees it; each event names its watch; a removed or
 * deleted directory's watch ends with IN_IGNORED; an overflowing queue says
 * so; mounts are noticed through the mount table; close() frees both
 * descriptors and makes every call a no-op.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { DirWatch, IN_DELETE_SELF, IN_IGNORED, IN_Q_OVERFLOW } from '../../lib/fs/dir-watch.js'
import { Jail } from '../../lib/fs/jail.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { withoutNative } from '../helpers/without-native.js'

const IN_MODIFY = 0x2
const IN_ATTRIB = 0x4
const IN_CLOSE_WRITE = 0x8
const IN_MOVED_FROM = 0x40
const IN_MOVED_TO = 0x80
const IN_CREATE = 0x100
const IN_DELETE = 0x200

const skip = shmNative() ? false : 'needs native/shm.node'

function open(t: TestContext): DirWatch {
  const watch = DirWatch.open()
  assert.ok(watch, 'inotify is available')
  t.after(() => watch.close())
  return watch
}

/** The events queued now, as [wd, mask] pairs. */
function drained(watch: DirWatch): [number, number][] {
  const events: [number, number][] = []
  watch.drain((wd, mask) => void events.push([wd, mask]))
  return events
}

const masks = (events: [number, number][], wd: number) => events.filter(([w]) => w === wd).map(([, m]) => m)

describe('DirWatch', { skip }, () => {
  test('a change to an entry is queued before the call that made it returns', (t) => {
    const root = tempDir(t)
    const watch = open(t)
    const wd = watch.add(root)
    assert.equal(typeof wd, 'number')
    assert.deepEqual(drained(watch), [])
    writeFileSync(join(root, 'a'), 'x')
    // No wait: the event is there already.
    assert.deepEqual(masks(drained(watch), wd!), [IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE])
    assert.deepEqual(drained(watch), [], 'a drain takes what was queued')
    chmodSync(join(root, 'a'), 0o600)
    renameSync(join(root, 'a'), join(root, 'b'))
    unlinkSync(join(root, 'b'))
    assert.deepEqual(masks(drained(watch), wd!), [IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO, IN_DELETE])
  })

  test('each directory has its own watch; a change inside a subdirectory is not its parent\'s', (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'sub'))
    const watch = open(t)
    const top = watch.add(root)!
    const sub = watch.add(join(root, 'sub'))!
    assert.notEqual(top, sub)
    assert.equal(watch.add(root), top, 'the same directory again is the same watch')
    writeFileSync(join(root, 'sub', 'deep'), '')
    const events = drained(watch)
    assert.ok(masks(events, sub).includes(IN_CREATE))
    assert.deepEqual(masks(events, top), [])
  })

  test('watches a held directory through its descriptor\'s path, whatever its name becomes', async (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'd'))
    const jail = await Jail.open(root)
    t.after(() => jail.close())
    const held = await jail.lookup('d')
    t.after(() => held.close())
    const watch = open(t)
    const wd = watch.add(held.path)!
    renameSync(join(root, 'd'), join(root, 'd-away'))
    drained(watch)
    writeFileSync(join(root, 'd-away', 'f'), '')
    assert.ok(masks(drained(watch), wd).includes(IN_CREATE))
  })

  test('remove() ends a watch with IN_IGNORED; a deleted directory\'s watch ends with IN_DELETE_SELF, then IN_IGNORED', (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'kept'))
    mkdirSync(join(root, 'gone'))
    const watch = open(t)
    const kept = watch.add(join(root, 'kept'))!
    const gone = watch.add(join(root, 'gone'))!
    watch.remove(kept)
    assert.deepEqual(masks(drained(watch), kept), [IN_IGNORED])
    writeFileSync(join(root, 'kept', 'f'), '')
    assert.deepEqual(drained(watch), [], 'no events once removed')
    rmdirSync(join(root, 'gone'))
    assert.deepEqual(masks(drained(watch), gone), [IN_DELETE_SELF, IN_IGNORED])
    watch.remove(gone) // gone already: no error
  })

  test('a path that is no directory, or nothing, gets no watch', (t) => {
    const root = tempDir(t)
    writeFile(root, 'file', 'x')
    const watch = open(t)
    assert.equal(watch.add(join(root, 'file')), null)
    assert.equal(watch.add(join(root, 'missing')), null)
  })

  test('a queue that overflowed says so: IN_Q_OVERFLOW on no watch', (t) => {
    const root = tempDir(t)
    writeFile(root, 'a', '')
    writeFile(root, 'b', '')
    const watch = open(t)
    watch.add(root)
    const max = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'))
    // Alternating names: the kernel merges only identical events in a row.
    for (let i = 0; i <= max; i++) chmodSync(join(root, i % 2 ? 'a' : 'b'), 0o600)
    const events = drained(watch)
    assert.deepEqual(events.at(-1), [-1, IN_Q_OVERFLOW])
    assert.equal(events.length, max + 1)
  })

  test('close() frees its descriptors; afterwards every call does nothing', (t) => {
    const root = tempDir(t)
    const before = fdCount()
    const watch = DirWatch.open()!
    const wd = watch.add(root)!
    assert.equal(fdCount(), before + 2, 'inotify and the mount table')
    writeFileSync(join(root, 'f'), '')
    watch.close()
    watch.close()
    assert.equal(fdCount(), before)
    assert.deepEqual(drained(watch), [], 'queued events are gone with it')
    assert.equal(watch.add(root), null)
    assert.equal(watch.mountsChanged(), false)
    watch.remove(wd)
  })

  test('mountsChanged() is true once per mount or unmount in its namespace', { skip: process.getuid?.() === 0 ? false : 'needs root to mount' }, async (t) => {
    const dir = tempDir(t)
    const mod = new URL('../../lib/fs/dir-watch.js', import.meta.url).href
    // A mount namespace of its own: mounts made elsewhere on the host meanwhile do not reach it.
    const code = `
      import { execFileSync } from 'node:child_process'
      import { DirWatch } from ${JSON.stringify(mod)}
      const watch = DirWatch.open()
      const seen = [watch.mountsChanged()]
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', ${JSON.stringify(dir)}])
      seen.push(watch.mountsChanged(), watch.mountsChanged())
      execFileSync('umount', [${JSON.stringify(dir)}])
      seen.push(watch.mountsChanged(), watch.mountsChanged())
      console.log(JSON.stringify(seen))
    `
    const out = await new Promise<string>((resolve, reject) =>
      execFile('unshare', ['--mount', '--propagation', 'private', process.execPath, '--input-type=module', '-e', code], { timeout: 20_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    ).catch((err: Error) => {
      if (/unshare failed|Operation not permitted|ENOENT/.test(err.message)) return t.skip(`no mount namespace: ${err.message}`)
      throw err
    })
    if (typeof out !== 'string') return
    assert.deepEqual(JSON.parse(out), [false, true, false, true, false])
  })

  test('without the native addon there is no watch', async () => {
    const mod = new URL('../../lib/fs/dir-watch.js', import.meta.url).href
    const out = await withoutNative(`import { DirWatch } from ${JSON.stringify(mod)}; console.log(DirWatch.open())`)
    assert.equal(out.trim(), 'null')
  })
})
