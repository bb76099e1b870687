/**
 * The shared-memory block store on a real tmpfs: slots by size class, bytes
 * visible in the slab files, records a later server adopts, a private
 * directory, and nothing left behind.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, openSync, readdirSync, readSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { ShmStore } from '../../lib/cache/shm-store.js'
import { RECORD } from '../../lib/cache/slab-layout.js'
import { crc32 } from '../../lib/protocol/crc32.js'
import { noSharedMemory, storeDir } from '../helpers/fixtures.js'

const KiB = 1024
const MiB = 1024 * KiB
const skip = noSharedMemory(shmNative())


function readAt(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r')
  const buf = Buffer.alloc(length)
  try {
    readSync(fd, buf, 0, length, offset)
  } finally {
    closeSync(fd)
  }
  return buf
}

/** Fill a slot as a disk read would, and record it. */
function put(store: ShmStore, bytes: Buffer, key = 'dev:ino:size:mtime:ctime', index = 0) {
  const slot = store.take(bytes.length)
  assert.ok(slot, 'a slot')
  Buffer.from(slot.buffer).set(bytes)
  store.record(slot, key, index, crc32(bytes))
  return slot
}

describe('ShmStore', { skip }, () => {
  test('a block is the bytes of its slot in a slab file, in a slot of its size class', (t) => {
    const store = ShmStore.open({ dir: storeDir(t), blockSize: MiB, bytes: 8 * MiB })
    t.after(() => store.close())
    const small = Buffer.from('a small file')
    const big = Buffer.alloc(MiB, 7)
    const a = put(store, small)
    const b = put(store, big)
    const la = store.location(a)
    const lb = store.location(b)
    assert.match(la.file, /slab-4096-\d+$/)
    assert.match(lb.file, /slab-1048576-\d+$/)
    assert.ok(readAt(la.file, la.offset, small.length).equals(small))
    assert.ok(readAt(lb.file, lb.offset, big.length).equals(big))
    assert.equal(store.slots, 2)
    assert.equal(store.used, 4096 + MiB)
    assert.equal(statSync(la.file).mode & 0o777, 0o400, 'clients cannot write the slabs')
    assert.equal(statSync(store.dir).mode & 0o777, 0o700)
    store.give(a)
    assert.equal(store.slots, 1)
    assert.equal(store.used, MiB)
  })

  test('a full store gives no slot (the block goes on the heap)', (t) => {
    const store = ShmStore.open({ dir: storeDir(t), blockSize: 64 * KiB, bytes: 128 * KiB })
    t.after(() => store.close())
    const a = store.take(64 * KiB)
    const b = store.take(64 * KiB)
    assert.ok(a && b)
    assert.equal(store.take(1), null)
    store.give(a)
    assert.ok(store.take(100))
    assert.equal(store.take(2 * 64 * KiB), null, 'never more than a block')
  })

  test('a second store on the directory adopts recorded blocks; torn records are dropped', (t) => {
    const dir = storeDir(t)
    const first = ShmStore.open({ dir, blockSize: 64 * KiB, bytes: MiB })
    const kept = Buffer.from('kept across a crash')
    const torn = Buffer.alloc(5000, 1)
    put(first, kept, '1:2:19:3:4', 5)
    const t2 = put(first, torn, '1:2:5000:3:4', 0)
    first.take(10) // taken, never recorded: not adopted
    // Tear the second record, as a crash in the middle of writing it would.
    const { file, offset } = first.location(t2)
    const headOffset = t2.index * RECORD + 30
    chmodSync(file, 0o600)
    const fd = openSync(file, 'r+')
    writeSync(fd, Buffer.from([0xff]), 0, 1, headOffset)
    closeSync(fd)
    assert.ok(offset > headOffset)
    // The first server is gone without closing (its owner file names this live pid, which a store takes over).
    const second = ShmStore.open({ dir, blockSize: 64 * KiB, bytes: MiB })
    t.after(() => second.close())
    const found = second.adoptable()
    assert.equal(found.length, 1)
    assert.equal(found[0].fileKey, '1:2:19:3:4')
    assert.equal(found[0].index, 5)
    assert.equal(found[0].crc, crc32(kept))
    assert.ok(Buffer.from(found[0].slot.buffer).equals(kept))
    assert.equal(second.slots, 1)
  })

  test('another block size starts the store empty', (t) => {
    const dir = storeDir(t)
    const first = ShmStore.open({ dir, blockSize: 64 * KiB, bytes: MiB })
    put(first, Buffer.from('x'))
    const second = ShmStore.open({ dir, blockSize: 128 * KiB, bytes: MiB })
    t.after(() => second.close())
    assert.deepEqual(second.adoptable(), [])
  })

  test('a store a running server owns is refused', async (t) => {
    const dir = storeDir(t)
    mkdirSync(dir, { mode: 0o700 })
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    t.after(() => other.kill('SIGKILL'))
    writeFileSync(join(dir, 'owner'), `${other.pid}\n`)
    assert.throws(() => ShmStore.open({ dir, blockSize: MiB, bytes: MiB }), /in use by the server with pid/)
    assert.ok(existsSync(join(dir, 'owner')), 'its owner file is left alone')
  })

  test('a directory others can enter is refused', (t) => {
    const dir = storeDir(t)
    mkdirSync(dir, { mode: 0o755 })
    chmodSync(dir, 0o755)
    assert.throws(() => ShmStore.open({ dir, blockSize: MiB, bytes: MiB }), /owned by this user with mode 0700/)
  })

  test('a cache larger than the tmpfs has room for is refused', (t) => {
    assert.throws(() => ShmStore.open({ dir: storeDir(t), blockSize: MiB, bytes: 2 ** 50 }), /does not fit the shared memory/)
  })

  test('close gives the pages back and removes the directory', (t) => {
    const dir = storeDir(t)
    const store = ShmStore.open({ dir, blockSize: MiB, bytes: 4 * MiB })
    const slot = put(store, Buffer.alloc(MiB, 9))
    const view = Buffer.from(slot.buffer)
    assert.ok(readdirSync(dir).some((n) => n.startsWith('slab-')))
    store.close()
    assert.equal(existsSync(dir), false)
    assert.equal(view[0], 0, 'a stray view reads zeros, not freed memory')
  })
})
