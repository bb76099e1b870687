import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { crc32 } from 'node:zlib'
import { ChecksumId, FrameType, HEADER_SIZE, MAX_PAYLOAD } from '../../lib/protocol/constants.js'
import { decodeHeader, encodeHeader, type Header } from '../../lib/protocol/header.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { verifyDigest } from '../../lib/protocol/checksum.js'
import { wireFrames } from '../helpers/wire-fixtures.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

function decodeOk(buf: Buffer, offset = 0): Header {
  const r = decodeHeader(buf, offset)
  if (!r.ok) assert.fail(`expected a valid header, got: ${r.reason}`)
  return r.header
}

/** The frames of PROTOCOL.md's "Example" section (spec/fixtures/wire/frames.json). */
const FIXTURES = wireFrames().map((f) => ({
  name: f.name,
  hex: f.hex,
  header: { type: f.type, id: f.id, seq: f.seq, length: Buffer.byteLength(f.payload), checksum: f.checksum, epoch: f.epoch },
  payload: f.payload,
}))

describe('frame header codec', () => {
  test('decodes what it encodes, at any offset', () => {
    const h: Header = { type: FrameType.RESULT, id: 0xfedcba98, seq: 0x12345678, length: MAX_PAYLOAD, checksum: 2, epoch: 0 }
    assert.deepEqual(decodeOk(encodeHeader(h)), h)
    const big = Buffer.alloc(HEADER_SIZE + 11, 0xaa)
    encodeHeader(h, big, 7)
    assert.deepEqual(decodeOk(big, 7), h)
    assert.equal(big[6], 0xaa, 'bytes before the header are untouched')
    assert.equal(big[7 + HEADER_SIZE], 0xaa, 'bytes after the header are untouched')
  })

  test('writes magic, version, big-endian fields and a crc32 of bytes 0–19', () => {
    const buf = encodeHeader({ type: 3, id: 0x01020304, seq: 5, length: 6, checksum: 1, epoch: 0 })
    assert.equal(buf.subarray(0, 20).toString('hex'), 'c5500103' + '01020304' + '00000005' + '00000006' + '01000000')
    assert.equal(buf.readUInt32BE(20), crc32(buf.subarray(0, 20)))
  })

  for (const fx of FIXTURES) {
    test(`decodes the PROTOCOL.md ${fx.name} fixture to its documented fields and re-encodes it byte for byte`, () => {
      const bytes = hex(fx.hex)
      const header = decodeOk(bytes)
      assert.deepEqual(header, fx.header)
      const dsize = header.checksum === ChecksumId.md5 ? 16 : 4
      const payload = bytes.subarray(HEADER_SIZE + dsize)
      assert.equal(payload.length, header.length)
      assert.equal(payload.toString('utf8'), fx.payload)
      assert.ok(verifyDigest(header.checksum, payload, bytes, HEADER_SIZE), 'documented digest matches the payload')

      assert.deepEqual(encodeHeader(header), bytes.subarray(0, HEADER_SIZE))
      const frame = encodeFrame({ type: header.type, id: header.id, seq: header.seq, epoch: header.epoch, payload: Buffer.from(fx.payload) }, header.checksum)
      assert.equal(Buffer.concat(frame).toString('hex'), bytes.toString('hex'))
    })
  }

  test('rejects every single-bit flip anywhere in the 24-byte header', () => {
    const good = hex(FIXTURES[1].hex).subarray(0, HEADER_SIZE)
    decodeOk(good)
    let flips = 0
    for (let byte = 0; byte < HEADER_SIZE; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(good)
        bad[byte] ^= 1 << bit
        const r = decodeHeader(bad)
        assert.equal(r.ok, false, `flip of byte ${byte} bit ${bit} went unnoticed`)
        flips++
      }
    }
    assert.equal(flips, 192)
  })

  test('names the bad magic and the header checksum mismatch as reasons', () => {
    const good = encodeHeader({ type: 3, id: 1, seq: 1, length: 6, checksum: 1, epoch: 0 })
    const badMagic = Buffer.from(good)
    badMagic[0] = 0x00
    const badCrc = Buffer.from(good)
    badCrc[9] ^= 0x40
    assert.deepEqual(decodeHeader(badMagic), { ok: false, reason: 'bad magic' })
    assert.deepEqual(decodeHeader(badCrc), { ok: false, reason: 'header checksum mismatch' })
  })

  test('rejects a payload length over 16 MiB even when the header crc is valid', () => {
    const atLimit = encodeHeader({ type: 3, id: 1, seq: 0, length: MAX_PAYLOAD, checksum: 1, epoch: 0 })
    assert.equal(decodeOk(atLimit).length, 16 * 1024 * 1024)
    for (const length of [MAX_PAYLOAD + 1, 0xffffffff]) {
      const buf = encodeHeader({ type: 3, id: 1, seq: 0, length, checksum: 1, epoch: 0 })
      assert.equal(buf.readUInt32BE(20), crc32(buf.subarray(0, 20)), 'crc is valid')
      const r = decodeHeader(buf)
      assert.equal(r.ok, false)
      assert.match((r as { reason: string }).reason, /exceeds/)
    }
  })

  test('rejects an unknown checksum id even when the header crc is valid', () => {
    for (const checksum of [3, 7, 255]) {
      const r = decodeHeader(encodeHeader({ type: 3, id: 1, seq: 0, length: 6, checksum, epoch: 0 }))
      assert.equal(r.ok, false)
      assert.match((r as { reason: string }).reason, /unknown checksum id/)
    }
    for (const checksum of [0, 1, 2]) decodeOk(encodeHeader({ type: 3, id: 1, seq: 0, length: 6, checksum, epoch: 0 }))
  })

  test('rejects another protocol version even when the header crc is valid', () => {
    const buf = encodeHeader({ type: 3, id: 1, seq: 0, length: 6, checksum: 1, epoch: 0 })
    buf[2] = 2
    buf.writeUInt32BE(crc32(buf.subarray(0, 20)), 20)
    const r = decodeHeader(buf)
    assert.equal(r.ok, false)
    assert.match((r as { reason: string }).reason, /version 2/)
  })

  test('passes the epoch byte through without judging it', () => {
    const buf = encodeHeader({ type: 3, id: 1, seq: 0, length: 6, checksum: 1, epoch: 0x81 })
    assert.equal(decodeOk(buf).epoch, 0x81)
  })

  test('throws RangeError for a buffer shorter than 24 bytes from the offset', () => {
    assert.throws(() => decodeHeader(Buffer.alloc(23)), RangeError)
    assert.throws(() => decodeHeader(Buffer.alloc(0)), RangeError)
    assert.throws(() => decodeHeader(Buffer.alloc(30), 7), RangeError)
    assert.throws(() => encodeHeader({ type: 3, id: 1, seq: 0, length: 0, checksum: 0, epoch: 0 }, Buffer.alloc(23)), RangeError)
    assert.doesNotThrow(() => decodeHeader(Buffer.alloc(30), 6))
  })
})
