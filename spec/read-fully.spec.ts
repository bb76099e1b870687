/** readFullySync: a positioned read that keeps going until the buffer is full or the file ends. */
import assert from 'node:assert/strict'
import fs, { closeSync, openSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { readFullySync } from '../lib/read-fully.js'
import { tempDir, writeFile } from './helpers/fixtures.js'

function open(t: TestContext, bytes: number | Buffer): { fd: number; data: Buffer } {
  const dir = tempDir(t)
  const data = writeFile(dir, 'f.bin', bytes)
  const fd = openSync(join(dir, 'f.bin'), 'r')
  t.after(() => closeSync(fd))
  return { fd, data }
}

/**
 * fs.readSync as the module sees it (its named import follows the fs object
 * once synced), giving at most `most` bytes a call, and failing past 10,000
 * calls: a loop that never ends would otherwise hang the test, not fail it.
 */
function countedReads(t: TestContext, most = Infinity): { calls: () => number } {
  const real = fs.readSync
  let calls = 0
  const short = ((fd: number, into: Uint8Array, offset: number, length: number, position: number) => {
    if (++calls > 10_000) throw new Error('readSync called 10,000 times')
    return real(fd, into, offset, Math.min(length, most), position)
  }) as typeof fs.readSync
  t.mock.method(fs, 'readSync', short)
  syncBuiltinESMExports()
  t.after(() => {
    t.mock.restoreAll()
    syncBuiltinESMExports()
  })
  return { calls: () => calls }
}

describe('readFullySync', () => {
  test('fills the buffer from the position given', (t) => {
    const { fd, data } = open(t, 10_000)
    const into = Buffer.alloc(4096)
    assert.equal(readFullySync(fd, into, 1234), 4096)
    assert.ok(into.equals(data.subarray(1234, 1234 + 4096)))
  })

  test('returns fewer bytes at the end of the file, and 0 past it', (t) => {
    const { fd, data } = open(t, 1000)
    countedReads(t)
    const into = Buffer.alloc(300, 0xee)
    assert.equal(readFullySync(fd, into, 900), 100)
    assert.ok(into.subarray(0, 100).equals(data.subarray(900)))
    assert.ok(into.subarray(100).every((b) => b === 0xee), 'nothing past the end is written')
    assert.equal(readFullySync(fd, into, 1000), 0)
    assert.equal(readFullySync(fd, into, 5000), 0)
  })

  test('an empty buffer reads nothing', (t) => {
    const { fd } = open(t, 10)
    assert.equal(readFullySync(fd, Buffer.alloc(0), 0), 0)
  })

  test('short reads are continued where they stopped, in the buffer and in the file', (t) => {
    const { fd, data } = open(t, 5000)
    const reads = countedReads(t, 7)
    const into = Buffer.alloc(1000)
    assert.equal(readFullySync(fd, into, 333), 1000)
    assert.ok(into.equals(data.subarray(333, 1333)))
    assert.equal(reads.calls(), Math.ceil(1000 / 7))
    const tail = Buffer.alloc(100)
    assert.equal(readFullySync(fd, tail, 4950), 50, 'short reads up to the end of the file')
    assert.ok(tail.subarray(0, 50).equals(data.subarray(4950)))
  })

  test('a read error is thrown, not taken for the end of the file', (t) => {
    const { fd } = open(t, 10)
    const dir = tempDir(t)
    const wfd = openSync(join(dir, 'w'), 'w')
    t.after(() => closeSync(wfd))
    assert.throws(() => readFullySync(wfd, Buffer.alloc(4), 0), { code: 'EBADF' })
    assert.equal(readFullySync(fd, Buffer.alloc(4), 0), 4)
  })
})
