/**
 * The store's directory on a real tmpfs: private to this user, owned by one
 * running server at a time (a gone one's store is taken over), and refused
 * when the tmpfs cannot hold the cache, counting the slabs left there.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { alive, checkRoom, claimDir, claimOwner, readFileQuiet, unlinkQuiet } from '../../lib/cache/store-dir.js'
import { storeDir } from '../helpers/fixtures.js'
import { smallTmpfs } from '../helpers/tmpfs.js'

const MiB = 1024 * 1024
const noShm = existsSync('/dev/shm') ? false : 'needs /dev/shm'
const root = process.getuid?.() === 0 ? false : 'needs root (to give a directory to another user)'
/** A pid no process has (one that has exited). */
const gonePid = () => spawnSync('true').pid!

describe('claimDir', { skip: noShm }, () => {
  test('creates the directory with mode 0700, and accepts it again', (t) => {
    const dir = storeDir(t)
    claimDir(dir)
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    claimDir(dir)
  })

  test('refuses a directory others can enter, or a file', (t) => {
    const dir = storeDir(t)
    mkdirSync(dir)
    chmodSync(dir, 0o750)
    assert.throws(() => claimDir(dir), /must be a directory owned by this user with mode 0700/)
    const file = join(dir, '..', 'file')
    writeFileSync(file, '')
    assert.throws(() => claimDir(file), /must be a directory owned by this user with mode 0700/)
  })

  test('refuses another user\'s directory', { skip: root }, (t) => {
    const dir = storeDir(t)
    mkdirSync(dir, { mode: 0o700 })
    chownSync(dir, 65534, 65534)
    assert.throws(() => claimDir(dir), /owned by this user/)
  })
})

describe('claimOwner', { skip: noShm }, () => {
  function dir(t: Parameters<typeof storeDir>[0]): string {
    const d = storeDir(t)
    claimDir(d)
    return d
  }

  test('names this process in the owner file', (t) => {
    const d = dir(t)
    claimOwner(d)
    assert.equal(readFileSync(join(d, 'owner'), 'utf8'), `${process.pid}\n`)
    assert.equal(statSync(join(d, 'owner')).mode & 0o777, 0o600)
  })

  test('takes over a store whose owner is gone, unreadable, or this process', (t) => {
    for (const left of [`${gonePid()}\n`, 'not a pid', '', `${process.pid}\n`]) {
      const d = dir(t)
      writeFileSync(join(d, 'owner'), left)
      claimOwner(d)
      assert.equal(readFileSync(join(d, 'owner'), 'utf8'), `${process.pid}\n`, JSON.stringify(left))
    }
  })

  test('refuses a store a running server owns, and leaves its owner file', (t) => {
    const d = dir(t)
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    t.after(() => other.kill('SIGKILL'))
    writeFileSync(join(d, 'owner'), `${other.pid}\n`)
    assert.throws(() => claimOwner(d), new RegExp(`${d} is in use by the server with pid ${other.pid}; give this one another --shm-dir`))
    assert.equal(readFileSync(join(d, 'owner'), 'utf8'), `${other.pid}\n`)
  })
})

describe('checkRoom', { skip: noShm }, () => {
  test('passes when the tmpfs has room, and says what to do when it has not', (t) => {
    const d = storeDir(t)
    claimDir(d)
    checkRoom(d, MiB)
    assert.throws(() => checkRoom(d, 2 ** 50), /the cache does not fit the shared memory at .*: it needs 1073741824 MiB and the filesystem has \d+ MiB free; lower --cache-size/)
  })

  test('counts the slabs an earlier server left as room, and no other file', (t) => {
    const tmpfs = smallTmpfs(t)
    if (!tmpfs) return
    const d = join(tmpfs.dir, 'store')
    claimDir(d)
    // 4 MiB in all: with 2 MiB in a file, 3 MiB fit only if that file is a slab to reuse.
    writeFileSync(join(d, 'slab-4096-0'), Buffer.alloc(2 * MiB, 1))
    checkRoom(d, 3 * MiB)
    unlinkQuiet(join(d, 'slab-4096-0'))
    writeFileSync(join(d, 'other'), Buffer.alloc(2 * MiB, 1))
    assert.throws(() => checkRoom(d, 3 * MiB), /does not fit/)
  })
})

describe('small helpers', { skip: noShm }, () => {
  test('alive tells a running process from one that has exited', () => {
    assert.equal(alive(process.pid), true)
    assert.equal(alive(gonePid()), false)
  })

  test('readFileQuiet and unlinkQuiet pass over a missing file', (t) => {
    const d = storeDir(t)
    claimDir(d)
    const file = join(d, 'f')
    assert.equal(readFileQuiet(file), undefined)
    unlinkQuiet(file)
    writeFileSync(file, 'x')
    assert.equal(readFileQuiet(file), 'x')
    unlinkQuiet(file)
    assert.equal(existsSync(file), false)
  })
})
