/**
 * Encoding a frame: header and payload digest, with small payloads copied
 * behind them (one write) and large ones left as their own buffer (no copy);
 * what a decoder gets back from it; the payload limits and field ranges it
 * refuses; and the helpers over a received frame's pieces.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ChecksumId, FrameType, HEADER_SIZE, MAX_PAYLOAD } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import { encodeFrame, jsonFrame, payloadLength, payloadViews, type Frame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { decodeHeader } from '../../lib/protocol/header.js'

const DIGEST = { none: 0, crc32: 4, md5: 16 } as const
const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff))

/** Decode `chunks` and return every frame handed on. */
function decode(chunks: Buffer[]): ReceivedFrame[] {
  const frames: ReceivedFrame[] = []
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (r) => assert.fail(r) })
  for (const c of chunks) decoder.write(c)
  assert.ok(decoder.atBoundary)
  return frames
}

describe('encodeFrame', () => {
  for (const name of ['none', 'crc32', 'md5'] as const) {
    test(`round-trips through the decoder, coalescing payloads under 4096 bytes (${name})`, () => {
      for (const size of [0, 1, 4095, 4096, 70_000]) {
        const frame: Frame = { type: FrameType.DATA, id: 0xffffffff, seq: 12, epoch: 3, payload: pattern(size) }
        const parts = encodeFrame(frame, ChecksumId[name])
        const head = HEADER_SIZE + DIGEST[name]
        if (size < 4096) {
          assert.equal(parts.length, 1, `${size}: one buffer`)
          assert.equal(parts[0].length, head + size)
        } else {
          assert.equal(parts.length, 2, `${size}: head and payload`)
          assert.equal(parts[0].length, head)
          assert.equal(parts[1], frame.payload, 'the payload itself, not a copy')
        }
        const [got] = decode(parts)
        assert.deepEqual(
          { type: got.type, id: got.id, seq: got.seq, epoch: got.epoch, checksum: got.checksum, intact: got.intact },
          { type: FrameType.DATA, id: 0xffffffff, seq: 12, epoch: 3, checksum: ChecksumId[name], intact: true },
        )
        assert.ok(got.payload.equals(frame.payload), `${size}: payload`)
      }
    })
  }

  test('copies a small payload: changing it afterwards does not change the encoded bytes', () => {
    const payload = pattern(100)
    const [bytes] = encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, payload }, ChecksumId.crc32)
    payload.fill(0)
    const [got] = decode([bytes])
    assert.equal(got.intact, true)
    assert.ok(got.payload.equals(pattern(100)))
  })

  test('sends epoch 0 when the frame has none, and only its low 8 bits otherwise', () => {
    const epochOf = (epoch?: number) => {
      const result = decodeHeader(encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, epoch, payload: Buffer.alloc(0) }, ChecksumId.none)[0])
      assert.ok(result.ok)
      return result.header.epoch
    }
    assert.deepEqual([epochOf(undefined), epochOf(255), epochOf(256), epochOf(300)], [0, 255, 0, 44])
  })

  test('makes a digest that catches a flipped payload byte, for crc32 and md5 only', () => {
    for (const [name, id] of Object.entries(ChecksumId)) {
      const bytes = Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, payload: pattern(5000) }, id))
      bytes[bytes.length - 100] ^= 0x20
      assert.equal(decode([bytes])[0].intact, name === 'none', name)
    }
  })

  test('takes a payload of exactly MAX_PAYLOAD and refuses one byte more', () => {
    const max = Buffer.allocUnsafe(MAX_PAYLOAD)
    const [head, body] = encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, payload: max }, ChecksumId.none)
    const result = decodeHeader(head)
    assert.ok(result.ok && result.header.length === MAX_PAYLOAD)
    assert.equal(body, max)
    assert.throws(() => encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, payload: Buffer.allocUnsafe(MAX_PAYLOAD + 1) }, ChecksumId.none), RangeError)
  })

  test('refuses an unknown checksum and fields that do not fit the header, rather than wrapping them', () => {
    const ok: Frame = { type: FrameType.DATA, id: 1, seq: 0, payload: pattern(10) }
    assert.throws(() => encodeFrame(ok, 3), RangeError)
    assert.throws(() => encodeFrame({ ...ok, id: 2 ** 32 }, ChecksumId.crc32), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => encodeFrame({ ...ok, seq: -1 }, ChecksumId.crc32), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => encodeFrame({ ...ok, type: 256 }, ChecksumId.crc32), { code: 'ERR_OUT_OF_RANGE' })
  })
})

describe('jsonFrame', () => {
  test('carries its body as JSON, epoch 0 unless given', () => {
    const body = { path: 'a/b.bin', size: 9000, nested: [1, null, 'x'] }
    const frame = jsonFrame(FrameType.RESULT, 7, 2, body)
    assert.deepEqual({ type: frame.type, id: frame.id, seq: frame.seq, epoch: frame.epoch }, { type: FrameType.RESULT, id: 7, seq: 2, epoch: 0 })
    assert.deepEqual(JSON.parse(decode(encodeFrame(frame, ChecksumId.md5))[0].payload.toString()), body)
    assert.equal(jsonFrame(FrameType.RESYNC, 0, 0, {}, 9).epoch, 9)
  })
})

describe('payloadViews and payloadLength', () => {
  test('give the payload of a frame in one piece as itself', () => {
    const [got] = decode(encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, payload: pattern(300) }, ChecksumId.crc32))
    assert.deepEqual(payloadViews(got), [got.payload])
    assert.equal(payloadLength(got), 300)
  })

  test('give the pieces a payload arrived in, which add up to it', () => {
    const bytes = Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 1, seq: 0, payload: pattern(9000) }, ChecksumId.crc32))
    const cuts = [0, 40, 3000, 6000, bytes.length]
    const [got] = decode(cuts.slice(1).map((end, i) => Buffer.from(bytes.subarray(cuts[i], end))))
    const views = payloadViews(got)
    assert.ok(views.length > 1)
    assert.equal(payloadLength(got), 9000)
    assert.ok(Buffer.concat(views).equals(pattern(9000)))
    assert.ok(got.payload.equals(pattern(9000)))
  })
})
