import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { crc32 } from 'node:zlib'
import { markImmutable, memoCrc32 } from '../../lib/protocol/crc-memo.js'

describe('memoCrc32', () => {
  test('is crc32 for views of buffers not marked immutable, every time', () => {
    const buf = Buffer.allocUnsafeSlow(4096)
    buf.fill(1)
    assert.equal(memoCrc32(buf.subarray(10, 100)), crc32(buf.subarray(10, 100)))
    buf.fill(2) // not promised immutable: a change is seen
    assert.equal(memoCrc32(buf.subarray(10, 100)), crc32(buf.subarray(10, 100)))
  })

  test('sums each view of an immutable buffer once', () => {
    const buf = Buffer.allocUnsafeSlow(64 * 1024)
    randomBytes(buf.length).copy(buf)
    markImmutable(buf)
    const first = memoCrc32(buf.subarray(1024, 9000))
    assert.equal(first, crc32(buf.subarray(1024, 9000)))
    // Breaking the promise shows the memo at work: the remembered sum comes back.
    buf[2000] ^= 0xff
    assert.equal(memoCrc32(buf.subarray(1024, 9000)), first)
    // Another view of the same buffer is its own entry.
    assert.equal(memoCrc32(buf.subarray(1024, 9001)), crc32(buf.subarray(1024, 9001)))
  })

  test('does not mark a view of a shared pool (it does not own its memory)', () => {
    const small = Buffer.from('pooled bytes') // a view of Buffer's shared 8 KiB pool
    markImmutable(small)
    const c = memoCrc32(small)
    small[0] ^= 1
    assert.notEqual(memoCrc32(small), c)
  })
})
