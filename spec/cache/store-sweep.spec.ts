/**
 * The start-up sweep on a real tmpfs: it removes this user's stores that no
 * server runs on and none will adopt, and leaves every other directory.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { ShmStore } from '../../lib/cache/shm-store.js'
import { sweepStores } from '../../lib/cache/store-sweep.js'
import { noSharedMemory, storeDir, tempDir } from '../helpers/fixtures.js'

const KiB = 1024
/** A pid no process has (one that has exited). */
const gonePid = () => spawnSync('true').pid!

describe('sweepStores', { skip: noSharedMemory(shmNative()) }, () => {
  test('removes only the stores nobody runs and nobody will adopt', (t) => {
    const parent = join(storeDir(t), '..')
    const gone = gonePid()
    const make = (name: string, owner?: number, root?: string, temporary = false) => {
      const dir = join(parent, name)
      mkdirSync(dir, { mode: 0o700 })
      if (owner !== undefined) writeFileSync(join(dir, 'owner'), `${owner}\n`)
      if (root !== undefined) writeFileSync(join(dir, 'root'), root)
      if (temporary) writeFileSync(join(dir, 'temporary'), '')
      writeFileSync(join(dir, 'slab-4096-0'), 'x')
      return dir
    }
    const orphan = make('s-orphan', gone, join(parent, 'no-such-root'))
    const temporary = make('s-temporary', gone)
    const running = make('s-running', process.pid, join(parent, 'no-such-root'))
    const adoptable = make('s-adoptable', gone, parent)
    const starting = make('s-starting')
    const other = make('t-other', gone)
    // The library's default: a fresh directory per server, marked temporary, whose root still exists.
    const leftTemporary = make('s-left-temporary', gone, parent, true)
    const runningTemporary = make('s-running-temporary', process.pid, parent, true)
    assert.deepEqual(sweepStores(parent, 's-').sort(), [orphan, temporary, leftTemporary].sort())
    for (const kept of [running, adoptable, starting, other, runningTemporary]) assert.ok(existsSync(kept), kept)
  })

  test('a real store is kept while its server runs, and removed once it is gone and none will adopt it', (t) => {
    const parent = join(storeDir(t), '..')
    const served = tempDir(t)
    const open = (name: string, temporary: boolean) => {
      const store = ShmStore.open({ dir: join(parent, name), blockSize: 64 * KiB, bytes: 256 * KiB, root: served, temporary })
      t.after(() => store.close())
      assert.ok(store.take(100), 'a slab on the tmpfs')
      return store
    }
    const fresh = open('s-fresh', true)
    const named = open('s-named', false)
    assert.deepEqual(sweepStores(parent, 's-'), [], 'their server runs')
    // Their server ends without closing them.
    for (const store of [fresh, named]) writeFileSync(join(store.dir, 'owner'), `${gonePid()}\n`)
    assert.deepEqual(sweepStores(parent, 's-'), [fresh.dir], 'a temporary store is never adopted')
    assert.ok(readdirSync(named.dir).some((n) => n.startsWith('slab-')), 'a store of a root that exists waits for its next server')
  })

  test('an owner file that names no pid counts as no server', (t) => {
    const parent = join(storeDir(t), '..')
    const dir = join(parent, 's-garbled')
    mkdirSync(dir, { mode: 0o700 })
    writeFileSync(join(dir, 'owner'), 'garbled')
    assert.deepEqual(sweepStores(parent, 's-'), [dir])
  })

  test('leaves files, and other users\' directories, whatever their names', { skip: process.getuid?.() === 0 ? false : 'needs root (to give a directory to another user)' }, (t) => {
    const parent = join(storeDir(t), '..')
    writeFileSync(join(parent, 's-file'), '')
    const theirs = join(parent, 's-theirs')
    mkdirSync(theirs, { mode: 0o700 })
    writeFileSync(join(theirs, 'owner'), `${gonePid()}\n`)
    chownSync(theirs, 65534, 65534)
    assert.deepEqual(sweepStores(parent, 's-'), [])
    assert.ok(existsSync(join(parent, 's-file')) && existsSync(theirs))
  })

  test('a parent that does not exist sweeps nothing', (t) => {
    assert.deepEqual(sweepStores(join(tempDir(t), 'missing'), 's-'), [])
  })
})
