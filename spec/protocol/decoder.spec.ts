import { whole } from '../helpers/frames.js'
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { ChecksumId, FrameType, HEADER_SIZE } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import { encodeFrame, jsonFrame, payloadLength, payloadViews, type Frame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { encodeHeader } from '../../lib/protocol/header.js'
import { prng as mulberry32 } from '../../lib/prng.js'

const randInt = (rnd: () => number, lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
function randomBytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = randInt(rnd, 0, 255)
  return b
}

interface Sent {
  frame: Frame
  checksum: number
  bytes: Buffer
}

function sample(): Sent[] {
  const rnd = mulberry32(7)
  const list: [Frame, number][] = [
    [jsonFrame(FrameType.HELLO, 0, 0, { protocol: 1, checksum: 'crc32' }), ChecksumId.crc32],
    [jsonFrame(FrameType.START, 1, 0, { size: 9000, offset: 0, length: 9000 }), ChecksumId.crc32],
    [{ type: FrameType.DATA, id: 1, seq: 1, payload: randomBytes(rnd, 5000) }, ChecksumId.crc32],
    [{ type: FrameType.DATA, id: 2, seq: 0, payload: randomBytes(rnd, 300) }, ChecksumId.md5],
    [{ type: FrameType.DATA, id: 1, seq: 2, payload: randomBytes(rnd, 4000) }, ChecksumId.none],
    [{ type: FrameType.DATA, id: 2, seq: 1, payload: Buffer.alloc(0) }, ChecksumId.md5],
    [jsonFrame(FrameType.END, 1, 3, { length: 9000 }), ChecksumId.md5],
    [jsonFrame(FrameType.RESULT, 2, 2, { entries: [] }), ChecksumId.none],
  ]
  return list.map(([frame, checksum]) => ({ frame, checksum, bytes: Buffer.concat(encodeFrame(frame, checksum)) }))
}

function collect() {
  const frames: ReceivedFrame[] = []
  const invalid: string[] = []
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(whole(f)), onInvalid: (r) => invalid.push(r) })
  return { decoder, frames, invalid }
}

/** Feed `bytes` in slices of 1…maxSlice bytes chosen by the seeded PRNG. */
function feedSliced(decoder: FrameDecoder, bytes: Buffer, rnd: () => number, maxSlice: number): void {
  for (let at = 0; at < bytes.length; ) {
    const n = randInt(rnd, 1, maxSlice)
    decoder.write(bytes.subarray(at, at + n))
    at += n
  }
}

function expected(sent: Sent[]): ReceivedFrame[] {
  return sent.map(({ frame, checksum }) => ({ ...frame, epoch: frame.epoch ?? 0, checksum, intact: true }))
}

/** Offset of the payload of frame `i` within the concatenated stream. */
function payloadOffset(sent: Sent[], i: number): number {
  let at = 0
  for (let k = 0; k < i; k++) at += sent[k].bytes.length
  return at + sent[i].bytes.length - sent[i].frame.payload.length
}

describe('FrameDecoder', () => {
  const sent = sample()
  const stream = Buffer.concat(sent.map((s) => s.bytes))

  test('yields every frame of a stream written in one piece', () => {
    const { decoder, frames, invalid } = collect()
    decoder.write(stream)
    assert.deepEqual(frames, expected(sent))
    assert.deepEqual(invalid, [])
    assert.ok(decoder.atBoundary)
  })

  test('yields the same frames when the stream arrives in random slices', () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      for (const maxSlice of [3, 25, 700, 6000]) {
        const { decoder, frames, invalid } = collect()
        feedSliced(decoder, stream, mulberry32(seed), maxSlice)
        assert.deepEqual(frames, expected(sent), `seed ${seed}, slices up to ${maxSlice}`)
        assert.deepEqual(invalid, [])
      }
    }
  })

  test('yields the same frames when the stream arrives byte by byte', () => {
    const { decoder, frames, invalid } = collect()
    for (let i = 0; i < stream.length; i++) decoder.write(stream.subarray(i, i + 1))
    assert.deepEqual(frames, expected(sent))
    assert.deepEqual(invalid, [])
    assert.ok(decoder.atBoundary)
  })

  test('marks a frame whose payload byte flipped as not intact and keeps decoding the frames after it', () => {
    for (const i of [2, 3, 6]) {
      const bad = Buffer.from(stream)
      bad[payloadOffset(sent, i) + 1] ^= 0x10
      const { decoder, frames, invalid } = collect()
      feedSliced(decoder, bad, mulberry32(i), 100)
      assert.equal(frames.length, sent.length)
      assert.deepEqual(invalid, [])
      frames.forEach((f, k) => assert.equal(f.intact, k !== i, `frame ${k} intact`))
      assert.deepEqual(frames.slice(i + 1), expected(sent).slice(i + 1))
    }
  })

  test('cannot detect a payload flip in a frame sent without a checksum', () => {
    const bad = Buffer.from(stream)
    bad[payloadOffset(sent, 4)] ^= 0x01
    const { decoder, frames } = collect()
    decoder.write(bad)
    assert.equal(frames[4].intact, true)
    assert.notDeepEqual(frames[4].payload, sent[4].frame.payload)
  })

  test('reports a corrupt header once through onInvalid and delivers nothing after it', () => {
    const at = sent[0].bytes.length + sent[1].bytes.length + 13 // inside frame 2's header
    const bad = Buffer.from(stream)
    bad[at] ^= 0x04
    const { decoder, frames, invalid } = collect()
    feedSliced(decoder, bad, mulberry32(9), 50)
    decoder.write(stream) // even a whole valid stream afterwards is ignored
    assert.deepEqual(frames, expected(sent).slice(0, 2))
    assert.equal(invalid.length, 1)
    assert.match(invalid[0], /header checksum mismatch/)
  })

  test('reports a stream that does not start with the magic as invalid', () => {
    const { decoder, frames, invalid } = collect()
    decoder.write(Buffer.from('{"id":1,"op":"read","path":"a"}\n'))
    assert.deepEqual(frames, [])
    assert.deepEqual(invalid, ['bad magic'])
  })

  test('tracks buffered bytes and whether it stopped at a frame boundary', () => {
    const { decoder, frames } = collect()
    assert.equal(decoder.buffered, 0)
    assert.ok(decoder.atBoundary)
    decoder.write(Buffer.alloc(0))
    assert.ok(decoder.atBoundary)
    const first = sent[2].bytes // 24 + 4 + 5000 bytes
    decoder.write(first.subarray(0, 10))
    assert.equal(decoder.buffered, 10)
    assert.equal(decoder.atBoundary, false)
    decoder.write(first.subarray(10, HEADER_SIZE + 100))
    assert.equal(decoder.atBoundary, false, 'inside a frame body')
    assert.ok(decoder.buffered > 0)
    assert.equal(frames.length, 0)
    decoder.write(first.subarray(HEADER_SIZE + 100))
    assert.equal(frames.length, 1)
    assert.equal(decoder.buffered, 0)
    assert.ok(decoder.atBoundary)
    decoder.write(Buffer.concat([sent[0].bytes, sent[1].bytes.subarray(0, 5)]))
    assert.equal(frames.length, 2)
    assert.equal(decoder.buffered, 5)
    assert.equal(decoder.atBoundary, false)
  })

  test('hands on a payload that lies inside one chunk without copying it', () => {
    const { decoder, frames } = collect()
    decoder.write(sent[2].bytes)
    assert.equal(frames[0].payload.buffer, sent[2].bytes.buffer)
  })

  /** Round `round` of the fuzz: random bytes, a bit-flipped valid stream, or a valid header over random bytes. */
  function fuzzInput(rnd: () => number, round: number): Buffer {
    if (round % 3 === 0) return randomBytes(rnd, randInt(rnd, 0, 300))
    if (round % 3 === 1) {
      const input = Buffer.from(stream)
      const flips = randInt(rnd, 1, 4)
      for (let f = 0; f < flips; f++) input[randInt(rnd, 0, input.length - 1)] ^= 1 << randInt(rnd, 0, 7)
      return input
    }
    const h = { type: randInt(rnd, 0, 255), id: randInt(rnd, 0, 0xffffffff), seq: randInt(rnd, 0, 9), length: randInt(rnd, 0, 400), checksum: randInt(rnd, 0, 3), epoch: 0 }
    return Buffer.concat([randomBytes(rnd, randInt(rnd, 0, 3)), encodeHeader(h), randomBytes(rnd, randInt(rnd, 0, 500)), stream.subarray(randInt(rnd, 0, 200))])
  }

  test('never throws nor stalls on 2000 random and bit-flipped inputs (seeded)', { timeout: 60_000 }, () => {
    const rnd = mulberry32(20240601)
    for (let round = 0; round < 2000; round++) {
      const input = fuzzInput(rnd, round)
      const frames: ReceivedFrame[] = []
      let invalidCalls = 0
      let framesAfterInvalid = 0
      const decoder = new FrameDecoder({
        onFrame: (f) => {
          if (invalidCalls > 0) framesAfterInvalid++
          frames.push(f)
          // Every frame consumes at least a header: more frames than that is a runaway loop.
          if (frames.length > input.length / HEADER_SIZE) throw new Error('more frames than the input can hold')
        },
        onInvalid: () => void invalidCalls++,
      })
      assert.doesNotThrow(() => feedSliced(decoder, input, rnd, 64), `round ${round}`)
      assert.ok(invalidCalls <= 1, `round ${round}: onInvalid called ${invalidCalls} times`)
      assert.equal(framesAfterInvalid, 0, `round ${round}: frame after onInvalid`)
      const delivered = frames.reduce((n, f) => n + f.payload.length, 0)
      assert.ok(delivered + decoder.buffered <= input.length, `round ${round}: more bytes out than in`)
    }
  })

  test('never throws nor stalls on the same inputs when hunting for the next header (resync)', { timeout: 60_000 }, () => {
    const rnd = mulberry32(777)
    let recovered = 0
    for (let round = 0; round < 2000; round++) {
      const input = fuzzInput(rnd, round)
      let delivered = 0
      let count = 0
      const onFrame = (f: ReceivedFrame) => {
        delivered += f.payload.length
        if (++count > input.length / HEADER_SIZE) throw new Error('more frames than the input can hold')
      }
      const decoder = new FrameDecoder(
        { onFrame, onInvalid: () => {}, onResync: () => void recovered++ },
        { resync: true },
      )
      assert.doesNotThrow(() => feedSliced(decoder, input, rnd, 64), `round ${round}`)
      assert.ok(delivered + decoder.buffered <= input.length, `round ${round}: more bytes out than in`)
    }
    assert.ok(recovered > 0, 'some rounds found a header again')
  })
})

describe('FrameDecoder payloads in pieces', () => {
  const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251))
  const bytes = (checksum: number) => Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 5, seq: 0, payload }, checksum))
  /** The frame's bytes in three chunks, cut inside the payload, each chunk its own copy. */
  /** Frames exactly as the decoder hands them on (collect() joins pieces for comparisons). */
  const raw = () => {
    const frames: ReceivedFrame[] = []
    return { decoder: new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: () => {} }), frames }
  }
  const chunks = (checksum: number) => {
    const b = bytes(checksum)
    const head = HEADER_SIZE + (checksum === ChecksumId.md5 ? 16 : checksum === ChecksumId.crc32 ? 4 : 0)
    return [b.subarray(0, head + 1000), b.subarray(head + 1000, head + 2000), b.subarray(head + 2000)].map((c) => Buffer.from(c))
  }

  for (const [name, id] of [['crc32', ChecksumId.crc32], ['md5', ChecksumId.md5], ['none', ChecksumId.none]] as const) {
    test(`are handed on as views of the received chunks, not copies, and verified (${name})`, () => {
      const { decoder, frames } = raw()
      const input = chunks(id)
      for (const c of input) decoder.write(c)
      assert.equal(frames.length, 1)
      const f = frames[0]
      assert.equal(f.intact, true)
      assert.equal(f.views?.length, 3)
      // Views share the memory of what was written in: the page was not copied.
      assert.equal(f.views![1].buffer, input[1].buffer)
      assert.equal(payloadLength(f), payload.length)
      assert.deepEqual(Buffer.concat([...payloadViews(f)]), payload)
      assert.deepEqual(f.payload, payload)
    })
  }

  test('a flipped byte in a middle piece fails the digest', () => {
    const { decoder, frames } = raw()
    const input = chunks(ChecksumId.crc32)
    input[1][500] ^= 0x10
    for (const c of input) decoder.write(c)
    assert.equal(frames[0].intact, false)
  })
})

describe('FrameDecoder.retain', () => {
  test('frames come out right when the writer reuses its buffer after every write', () => {
    const sent = sample()
    const stream = Buffer.concat(sent.map((s) => s.bytes))
    for (const seed of [1, 2, 3]) {
      const rnd = mulberry32(seed)
      const recv = Buffer.alloc(4096)
      const frames: ReceivedFrame[] = []
      // As the contract says: what is kept from a frame is copied within onFrame.
      const decoder = new FrameDecoder({ onFrame: (f) => frames.push({ ...whole(f), payload: Buffer.from(f.payload) }), onInvalid: () => assert.fail('lost sync') })
      for (let at = 0; at < stream.length; ) {
        const n = Math.min(randInt(rnd, 1, recv.length), stream.length - at)
        stream.copy(recv, 0, at, at + n)
        decoder.write(recv.subarray(0, n))
        decoder.retain()
        recv.fill(0xaa) // the next read lands here
        at += n
      }
      assert.deepEqual(frames, expected(sent), `seed ${seed}`)
    }
  })

  test('a frame much larger than each write, then small ones, through a reused buffer', () => {
    const rnd = mulberry32(11)
    const sent = [3_000_000, 700, 1_200_000, 10].map((n, i) => {
      const frame: Frame = { type: FrameType.DATA, id: 1, seq: i, payload: randomBytes(rnd, n) }
      return { frame, checksum: ChecksumId.crc32, bytes: Buffer.concat(encodeFrame(frame, ChecksumId.crc32)) }
    })
    const stream = Buffer.concat(sent.map((x) => x.bytes))
    const recv = Buffer.alloc(65_536)
    const got: Buffer[] = []
    const decoder = new FrameDecoder({ onFrame: (f) => got.push(f.intact ? Buffer.from(f.payload) : Buffer.alloc(0)), onInvalid: () => assert.fail('lost sync') })
    for (let at = 0; at < stream.length; at += recv.length) {
      const n = stream.copy(recv, 0, at, at + recv.length)
      decoder.write(recv.subarray(0, n))
      decoder.retain()
      recv.fill(0x55)
    }
    assert.equal(got.length, sent.length)
    got.forEach((g, i) => assert.ok(g.equals(sent[i].frame.payload), `frame ${i}`))
  })
})
