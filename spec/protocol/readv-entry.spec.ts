/** The readv entry codec: PROTOCOL.md's example header, and a stream cut into entries whatever its pieces. */
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { describe, test } from 'node:test'
import { decodeEntryHeader, encodeEntryHeader, type Entry, ENTRY_ERROR, ENTRY_FILE, EntryDecoder } from '../../lib/protocol/readv-entry.js'

/** PROTOCOL.md, "readv": the third item, 20,000 bytes of a file of 120,007 bytes, mtime 1764806400000. */
const EXAMPLE = '02000000 00000000 00000000704cfd40 000080896aae7942 000000000088d340'
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')

describe('readv entries', () => {
  test("PROTOCOL.md's example header, both ways", () => {
    const h = { index: 2, kind: ENTRY_FILE, size: 120007, mtimeMs: 1764806400000, length: 20000 } as const
    assert.equal(encodeEntryHeader(h).toString('hex'), hex(EXAMPLE).toString('hex'))
    assert.deepEqual(decodeEntryHeader(hex(EXAMPLE)), h)
  })

  test('a malformed header is EPROTO', () => {
    const bad = encodeEntryHeader({ index: 0, kind: ENTRY_FILE, size: 1, mtimeMs: 0, length: 1 })
    bad.writeUInt32LE(7, 4)
    assert.throws(() => decodeEntryHeader(bad), { code: 'EPROTO' })
    const negative = encodeEntryHeader({ index: 0, kind: ENTRY_FILE, size: 1, mtimeMs: 0, length: 1 })
    negative.writeDoubleLE(-1, 24)
    assert.throws(() => decodeEntryHeader(negative), { code: 'EPROTO' })
  })

  test('the decoder hands out whole entries, in order, however the stream is cut', () => {
    const bodies = Array.from({ length: 40 }, (_, i) => (i % 7 === 0 ? Buffer.alloc(0) : randomBytes(randomInt(1, 3000))))
    const stream = Buffer.concat(
      bodies.flatMap((body, i) => [encodeEntryHeader({ index: i, kind: i % 9 === 4 ? ENTRY_ERROR : ENTRY_FILE, size: body.length, mtimeMs: i, length: body.length }), body]),
    )
    for (const cut of [1, 5, 32, 33, 1000, stream.length]) {
      const got: Entry[] = []
      const decoder = new EntryDecoder((e) => got.push(e))
      // The pieces come from one reused buffer, as the client's receive buffer hands them over.
      const scratch = Buffer.alloc(cut)
      for (let at = 0; at < stream.length; at += cut) {
        const n = stream.copy(scratch, 0, at, at + cut)
        decoder.push(scratch.subarray(0, n))
        scratch.fill(0xee)
      }
      assert.equal(got.length, bodies.length, `cut ${cut}`)
      assert.ok(decoder.atBoundary)
      got.forEach((e, i) => {
        assert.equal(e.header.index, i)
        assert.ok(e.body.equals(bodies[i]), `cut ${cut}, entry ${i}`)
      })
    }
  })

  test('an entry out of order is EPROTO', () => {
    const decoder = new EntryDecoder(() => {})
    assert.throws(() => decoder.push(encodeEntryHeader({ index: 1, kind: ENTRY_FILE, size: 0, mtimeMs: 0, length: 0 })), { code: 'EPROTO' })
  })
})
