/**
 * The native addon's loader and the calls the shared-memory store and the
 * client CLI make of it directly: a file mapped shared, ArrayBuffers over
 * ranges of it, a range's pages punched out, a pipe's size and unread bytes,
 * and splice(2) from a file into a pipe. (openBeneath, readStat, spliceStat,
 * listDir and the watch calls are checked through the modules that wrap
 * them.) Without the addon, the loader gives null.
 */
import assert from 'node:assert/strict'
import { closeSync, constants, fstatSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { noSharedMemory, tempDir, writeFile } from '../helpers/fixtures.js'
import { withoutNative } from '../helpers/without-native.js'

const PAGE = 4096
const native = shmNative()
const skip = noSharedMemory(native)

/** A file of `length` zero bytes on tmpfs, open read-write, removed after the test. */
function tmpfsFile(t: TestContext, length: number): { path: string; fd: number } {
  const dir = mkdtempSync('/dev/shm/cacheserv-spec-')
  const path = join(dir, 'slab')
  const fd = openSync(path, 'w+')
  t.after(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })
  ftruncateSync(fd, length)
  return { path, fd }
}

/** A FIFO's two ends, closed after the test (the write end first, if still open). */
function pipe(t: TestContext): { read: number; write: number; closeRead: () => void } {
  const path = join(tempDir(t), 'fifo')
  execFileSync('mkfifo', [path])
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  const write = openSync(path, constants.O_WRONLY)
  let readOpen = true
  const closeRead = () => {
    if (readOpen) closeSync(read)
    readOpen = false
  }
  t.after(() => {
    closeSync(write)
    closeRead()
  })
  return { read, write, closeRead }
}

describe('shmNative', () => {
  test('loads the addon once: every call gives the same object, with every call the server makes', { skip }, () => {
    assert.equal(shmNative(), native)
    for (const name of ['mapFile', 'view', 'punchHole', 'pipeSize', 'pipeUnread', 'splice', 'openBeneath', 'readStat', 'spliceStat', 'listDir', 'watchInit', 'watchAdd', 'watchRemove', 'watchRead', 'mountsOpen', 'mountsChanged']) {
      assert.equal(typeof (native as unknown as Record<string, unknown>)[name], 'function', name)
    }
  })

  test('is null where the addon was not built, and stays null', async () => {
    const mod = new URL('../../lib/cache/shm-native.js', import.meta.url).href
    const out = await withoutNative(`import { shmNative } from ${JSON.stringify(mod)}; console.log(shmNative(), shmNative())`)
    assert.equal(out.trim(), 'null null')
  })
})

describe('the shared mapping', { skip }, () => {
  test('a view is the file\'s bytes at its offset: writes to the file show in it, writes to it reach the file', (t) => {
    const { fd } = tmpfsFile(t, 4 * PAGE)
    const mapping = native!.mapFile(fd, 4 * PAGE)
    const view = native!.view(mapping, PAGE + 100, 5000)
    assert.ok(view instanceof ArrayBuffer)
    assert.equal(view.byteLength, 5000)
    writeSync(fd, Buffer.from('through the descriptor'), 0, 22, PAGE + 100)
    assert.equal(Buffer.from(view, 0, 22).toString(), 'through the descriptor')
    Buffer.from(view).write('through the view', 1000)
    const back = Buffer.alloc(16)
    readSync(fd, back, 0, 16, PAGE + 1100)
    assert.equal(back.toString(), 'through the view')
    // Two views of one range share their bytes.
    const again = new Uint8Array(native!.view(mapping, PAGE + 100, 5000))
    assert.equal(Buffer.from(again.subarray(1000, 1016)).toString(), 'through the view')
  })

  test('mapFile takes whole pages only, and a descriptor that can be mapped', (t) => {
    const { fd } = tmpfsFile(t, 4 * PAGE)
    for (const length of [0, -PAGE, PAGE + 1, 100, 1.5 * PAGE]) {
      assert.throws(() => native!.mapFile(fd, length), { message: 'mapFile(fd, length): length a positive multiple of 4096' }, String(length))
    }
    const dir = openSync(tempDir(t), 'r')
    t.after(() => closeSync(dir))
    assert.throws(() => native!.mapFile(dir, PAGE), /^Error: mmap: /)
  })

  test('punchHole gives a range\'s pages back: the size stays, the mapping reads zeros there and nowhere else', (t) => {
    const { fd } = tmpfsFile(t, 8 * PAGE)
    const mapping = native!.mapFile(fd, 8 * PAGE)
    const all = Buffer.from(native!.view(mapping, 0, 8 * PAGE))
    all.fill(0xab)
    const blocks = fstatSync(fd).blocks
    native!.punchHole(fd, 2 * PAGE, 3 * PAGE)
    assert.equal(fstatSync(fd).size, 8 * PAGE)
    assert.equal(blocks - fstatSync(fd).blocks, (3 * PAGE) / 512, 'three pages went back')
    assert.ok(all.subarray(2 * PAGE, 5 * PAGE).every((b) => b === 0))
    assert.ok(all.subarray(0, 2 * PAGE).every((b) => b === 0xab))
    assert.ok(all.subarray(5 * PAGE).every((b) => b === 0xab))
    const closed = openSync(join(tempDir(t), 'gone'), 'w+')
    closeSync(closed)
    assert.throws(() => native!.punchHole(closed, 0, PAGE), /^Error: fallocate: Bad file descriptor$/)
  })
})

describe('pipes', { skip }, () => {
  test('pipeSize reads a pipe\'s buffer size and grows it; pipeUnread counts what is not read yet', (t) => {
    const p = pipe(t)
    assert.ok(native!.pipeSize(p.write) >= PAGE)
    assert.ok(native!.pipeSize(p.write, 200_000) >= 200_000)
    assert.equal(native!.pipeSize(p.write), native!.pipeSize(p.read), 'one pipe, seen from either end')
    assert.equal(native!.pipeUnread(p.read), 0)
    writeSync(p.write, Buffer.alloc(1234))
    assert.equal(native!.pipeUnread(p.write), 1234)
    readSync(p.read, Buffer.alloc(1000))
    assert.equal(native!.pipeUnread(p.read), 234)
    const file = openSync(join(tempDir(t), 'f'), 'w+')
    t.after(() => closeSync(file))
    assert.throws(() => native!.pipeSize(file), /^Error: fcntl\(F_SETPIPE_SZ\): /)
  })

  test('splice moves a file\'s bytes at an offset into a pipe, 0 at the file\'s end', (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'f.bin', 3 * PAGE + 10)
    const file = openSync(join(root, 'f.bin'), 'r')
    t.after(() => closeSync(file))
    const p = pipe(t)
    assert.equal(native!.splice(file, 100, p.write, PAGE), PAGE)
    assert.equal(native!.splice(file, 3 * PAGE, p.write, PAGE), 10, 'fewer where the file ends')
    assert.equal(native!.splice(file, 3 * PAGE + 10, p.write, PAGE), 0)
    const got = Buffer.alloc(PAGE + 10)
    assert.equal(readSync(p.read, got), PAGE + 10)
    assert.ok(got.equals(Buffer.concat([data.subarray(100, 100 + PAGE), data.subarray(3 * PAGE)])))
  })

  test('splice into a pipe whose reader is gone fails with code EPIPE', (t) => {
    const root = tempDir(t)
    writeFile(root, 'f.bin', PAGE)
    const file = openSync(join(root, 'f.bin'), 'r')
    t.after(() => closeSync(file))
    const p = pipe(t)
    p.closeRead()
    assert.throws(() => native!.splice(file, 0, p.write, PAGE), { code: 'EPIPE' })
  })
})
