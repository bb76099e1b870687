/** FrameReader: a frame from a ByteQueue, whatever the chunking, and the faults it reports. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ByteQueue } from '../../lib/protocol/byte-queue.js'
import { ChecksumId, FrameType, HEADER_SIZE } from '../../lib/protocol/constants.js'
import { encodeFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { type FrameFault, FrameReader } from '../../lib/protocol/frame-reader.js'
import { decodeHeader } from '../../lib/protocol/header.js'

const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + 5) & 0xff))
const bytesOf = (payload: Buffer, checksum: number = ChecksumId.crc32, seq = 4) => Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 9, seq, epoch: 2, payload }, checksum))
const isFrame = (r: ReceivedFrame | FrameFault | null): r is ReceivedFrame => r !== null && 'type' in r

describe('FrameReader', () => {
  for (const [name, checksum] of [['crc32', ChecksumId.crc32], ['md5', ChecksumId.md5], ['none', ChecksumId.none]] as const) {
    test(`a frame fed a byte at a time comes out whole once its last byte is there (${name})`, () => {
      const payload = pattern(5000)
      const wire = bytesOf(payload, checksum)
      const reader = new FrameReader()
      const bytes = new ByteQueue()
      for (let i = 0; i < wire.length - 1; i++) {
        bytes.push(wire.subarray(i, i + 1))
        assert.equal(reader.read(bytes), null, `byte ${i}`)
      }
      assert.equal(reader.inFrame, true)
      bytes.push(wire.subarray(wire.length - 1))
      const frame = reader.read(bytes)
      assert.ok(isFrame(frame))
      assert.deepEqual([frame.type, frame.id, frame.seq, frame.epoch, frame.checksum, frame.intact], [FrameType.DATA, 9, 4, 2, checksum, true])
      assert.ok(frame.payload.equals(payload))
      assert.equal(reader.inFrame, false)
      assert.equal(bytes.length, 0)
    })
  }

  test('the payload comes as views of the received chunks, not a copy', () => {
    const payload = pattern(100_000)
    const wire = bytesOf(payload)
    const bytes = new ByteQueue()
    const cut = HEADER_SIZE + 4 + 40_000
    bytes.push(wire.subarray(0, cut))
    bytes.push(wire.subarray(cut))
    const frame = new FrameReader().read(bytes)
    assert.ok(isFrame(frame))
    assert.equal(frame.views?.length, 2)
    assert.equal(frame.views![1].buffer, wire.buffer, 'a view of the pushed chunk')
    assert.ok(frame.payload.equals(payload))
  })

  test('frames back to back are read one per call, an empty payload among them', () => {
    const bytes = new ByteQueue()
    bytes.push(Buffer.concat([bytesOf(pattern(3), ChecksumId.crc32, 0), bytesOf(Buffer.alloc(0), ChecksumId.crc32, 1), bytesOf(pattern(7), ChecksumId.crc32, 2)]))
    const reader = new FrameReader()
    const got: [number, number][] = []
    for (let r = reader.read(bytes); r !== null; r = reader.read(bytes)) {
      assert.ok(isFrame(r))
      got.push([r.seq, r.payload.length])
    }
    assert.deepEqual(got, [[0, 3], [1, 0], [2, 7]])
  })

  test('a header that fails its check is a fault, and nothing is taken', () => {
    const wire = bytesOf(pattern(10))
    wire[5] ^= 0x40
    const bytes = new ByteQueue()
    bytes.push(wire)
    const r = new FrameReader().read(bytes)
    assert.ok(r && 'invalid' in r, 'invalid')
    assert.match(r.invalid, /./)
    assert.equal(bytes.length, wire.length, 'a hunt starts from the same byte')
  })

  test('a payload over the reader\'s limit is a fault', () => {
    const bytes = new ByteQueue()
    bytes.push(bytesOf(pattern(2000)))
    const r = new FrameReader(1999).read(bytes)
    assert.deepEqual(r, { tooBig: 2000 })
  })

  test('a damaged payload is read, marked not intact', () => {
    const wire = bytesOf(pattern(300))
    wire[wire.length - 1] ^= 1
    const bytes = new ByteQueue()
    bytes.push(wire)
    const frame = new FrameReader().read(bytes)
    assert.ok(isFrame(frame))
    assert.equal(frame.intact, false)
  })

  test('begin() reads on from a header found elsewhere; forget() drops a half-read frame', () => {
    const wire = bytesOf(pattern(50))
    const header = decodeHeader(wire)
    assert.ok(header.ok)
    const reader = new FrameReader()
    reader.begin(header.header)
    const bytes = new ByteQueue()
    bytes.push(wire.subarray(HEADER_SIZE))
    const frame = reader.read(bytes)
    assert.ok(isFrame(frame) && frame.payload.equals(pattern(50)))
    reader.begin(header.header)
    reader.forget()
    assert.equal(reader.inFrame, false)
  })
})
