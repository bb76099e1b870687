import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { crc32 } from 'node:zlib'
import { ChecksumId, FrameType, HEADER_SIZE, MAX_PAYLOAD } from '../../lib/protocol/constants.js'
import { decodeHeader, encodeHeader, type Header } from '../../lib/protocol/header.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { verifyDigest } from '../../lib/protocol/checksum.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

function decodeOk(buf: Buffer, offset = 0): Header {
  const r = decodeHeader(buf, offset)
  if (!r.ok) assert.fail(`expected a valid header, got: ${r.reason}`)
  return r.header
}

/** The frames of PROTOCOL.md's "Example" section, pasted verbatim. */
const FIXTURES = [
  {
    name: 'START',
    hex: `c5500102 00000001 00000000 0000002c 01000000 7e692649  d21fea08
          7b2273697a65223a362c226f6666736574223a302c226c656e677468223a362c226d74696d654d73223a307d`,
    header: { type: FrameType.START, id: 1, seq: 0, length: 44, checksum: ChecksumId.crc32, epoch: 0 },
    payload: '{"size":6,"offset":0,"length":6,"mtimeMs":0}',
  },
  {
    name: 'DATA crc32',
    hex: `c5500103 00000001 00000001 00000006 01000000 65c5ceec  363a3020
          68656c6c6f0a`,
    header: { type: FrameType.DATA, id: 1, seq: 1, length: 6, checksum: ChecksumId.crc32, epoch: 0 },
    payload: 'hello\n',
  },
  {
    name: 'END',
    hex: `c5500104 00000001 00000002 0000000c 01000000 366a96c3  1b3cdd28
          7b226c656e677468223a367d`,
    header: { type: FrameType.END, id: 1, seq: 2, length: 12, checksum: ChecksumId.crc32, epoch: 0 },
    payload: '{"length":6}',
  },
  {
    name: 'DATA md5',
    hex: `c5500103 00000001 00000001 00000006 02000000 77706102
          b1946ac92492d2347c6235b4d2611184 68656c6c6f0a`,
    header: { type: FrameType.DATA, id: 1, seq: 1, length: 6, checksum: ChecksumId.md5, epoch: 0 },
    payload: 'hello\n',
  },
  {
    name: 'ERROR',
    hex: `c5500106 00000002 00000000 0000003d 01000000 ed2bd37a  cf4ea762
          7b22636f6465223a22454e4f454e54222c226d657373616765223a226e6f20737563682066696c65206f72206469726563746f72793a206e6f7065227d`,
    header: { type: FrameType.ERROR, id: 2, seq: 0, length: 61, checksum: ChecksumId.crc32, epoch: 0 },
    payload: '{"code":"ENOENT","message":"no such file or directory: nope"}',
  },
]

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
      const frame = encodeFrame({ type: header.type, id: header.id, seq: header.seq, payload: Buffer.from(fx.payload) }, header.checksum)
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
