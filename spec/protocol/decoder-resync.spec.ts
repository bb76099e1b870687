import { whole } from '../helpers/frames.js'
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { ChecksumId, FrameType, HEADER_SIZE, MAGIC } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import { encodeFrame, jsonFrame, type Frame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { createDeframer, type Deframed } from '../../lib/stages/deframer.js'
import { prng } from '../../lib/stages/corrupt.js'

const randInt = (rnd: () => number, lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
/** Random bytes that never contain the magic's first byte, so they can hold no header. */
function junk(rnd: () => number, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) {
    const x = randInt(rnd, 0, 255)
    b[i] = x === MAGIC >> 8 ? 0 : x
  }
  return b
}

/** Eight frames of request 1, seq 0…7, CRC-32 checked, payloads of varied sizes. */
const rnd0 = prng(2024)
const FRAMES: Frame[] = [
  jsonFrame(FrameType.START, 1, 0, { size: 12345 }),
  ...[3000, 17, 5000, 800, 4096, 1, 2500].map((n, i): Frame => ({ type: FrameType.DATA, id: 1, seq: i + 1, epoch: 2, payload: junk(rnd0, n) })),
]
const BYTES = FRAMES.map((f) => Buffer.concat(encodeFrame(f, ChecksumId.crc32)))
const received = (f: Frame): ReceivedFrame => ({ ...f, epoch: f.epoch ?? 0, checksum: ChecksumId.crc32, intact: true })
const EXPECTED = FRAMES.map(received)

function collect() {
  const frames: ReceivedFrame[] = []
  const invalid: string[] = []
  const resyncs: number[] = []
  const decoder = new FrameDecoder(
    { onFrame: (f) => frames.push(whole(f)), onInvalid: (r) => invalid.push(r), onResync: (n) => resyncs.push(n) },
    { resync: true },
  )
  return { decoder, frames, invalid, resyncs }
}

function decode(bytes: Buffer, feed: 'whole' | 'bytes' | number = 'whole') {
  const c = collect()
  if (feed === 'whole') c.decoder.write(bytes)
  else if (feed === 'bytes') for (let i = 0; i < bytes.length; i++) c.decoder.write(bytes.subarray(i, i + 1))
  else {
    const rnd = prng(feed)
    for (let at = 0; at < bytes.length; ) {
      const n = randInt(rnd, 1, 900)
      c.decoder.write(bytes.subarray(at, at + n))
      at += n
    }
  }
  const { frames, invalid, resyncs } = c
  return { frames, invalid, resyncs }
}

/** The stream with frame `i` replaced by `bytes`. */
const replacing = (i: number, bytes: Buffer) => Buffer.concat([...BYTES.slice(0, i), bytes, ...BYTES.slice(i + 1)])

describe('FrameDecoder with resync', () => {
  test('skips garbage inserted between frames: onInvalid once, onResync with its length, every frame intact', () => {
    for (const n of [1, 5, 23, 24, 300]) {
      const garbage = junk(prng(n), n)
      const stream = Buffer.concat([...BYTES.slice(0, 3), garbage, ...BYTES.slice(3)])
      for (const feed of ['whole', 'bytes', n] as const) {
        const { frames, invalid, resyncs } = decode(stream, feed)
        assert.deepEqual(frames, EXPECTED, `${n} bytes of garbage, fed ${feed}`)
        assert.equal(invalid.length, 1)
        assert.deepEqual(resyncs, [n])
      }
    }
  })

  test('bytes dropped inside a payload: that frame is not intact, the next is lost, decoding resumes after', () => {
    const at = HEADER_SIZE + 4 + 1000 // inside frame 1's 3000-byte payload
    const stream = replacing(1, Buffer.concat([BYTES[1].subarray(0, at), BYTES[1].subarray(at + 10)]))
    const { frames, invalid, resyncs } = decode(stream)
    assert.deepEqual(frames.map((f) => [f.seq, f.intact]), [[0, true], [1, false], [3, true], [4, true], [5, true], [6, true], [7, true]])
    assert.deepEqual(frames.filter((f) => f.intact), [EXPECTED[0], ...EXPECTED.slice(3)])
    assert.equal(invalid.length, 1)
    assert.deepEqual(resyncs, [BYTES[2].length - 10])
  })

  test('a corrupt header: onInvalid, that frame is lost, the following frames decode', () => {
    for (const offset of [0, 1, 2, 9, 13, 17, 23]) {
      const bad = Buffer.from(BYTES[4])
      bad[offset] ^= 0x08
      const { frames, invalid, resyncs } = decode(replacing(4, bad), offset + 1)
      assert.deepEqual(frames, [...EXPECTED.slice(0, 4), ...EXPECTED.slice(5)], `flip at header byte ${offset}`)
      assert.equal(invalid.length, 1)
      assert.match(invalid[0], /bad magic|header checksum mismatch/)
      assert.deepEqual(resyncs, [BYTES[4].length])
    }
  })

  test('decodes the same damaged stream alike whole, in random slices and byte by byte', () => {
    const r = prng(5)
    const badHeader = Buffer.from(BYTES[2])
    badHeader[6] ^= 0x40
    const badPayload = Buffer.from(BYTES[5])
    badPayload[HEADER_SIZE + 4 + 100] ^= 0x01
    const stream = Buffer.concat([
      junk(r, 40), BYTES[0], BYTES[1].subarray(0, 500), BYTES[1].subarray(520), badHeader, BYTES[3], junk(r, 7),
      BYTES[4], badPayload, BYTES[6].subarray(0, 10), BYTES[7], BYTES[0],
    ])
    const whole = decode(stream)
    assert.ok(whole.frames.length >= 5 && whole.invalid.length >= 3, 'the damage is seen')
    assert.deepEqual(whole.frames.at(-1), EXPECTED[0], 'the last frame survives')
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) assert.deepEqual(decode(stream, seed), whole, `slices, seed ${seed}`)
    assert.deepEqual(decode(stream, 'bytes'), whole, 'byte by byte')
  })

  test('reset() inside a frame body: hunts and decodes the next whole frame, without onInvalid', () => {
    const c = collect()
    c.decoder.write(BYTES[3].subarray(0, HEADER_SIZE + 4 + 200))
    c.decoder.reset()
    c.decoder.write(BYTES[4])
    c.decoder.write(BYTES[5])
    assert.deepEqual(c.frames, [EXPECTED[4], EXPECTED[5]])
    assert.deepEqual(c.invalid, [])
    assert.deepEqual(c.resyncs, [4 + 200])
    assert.ok(c.decoder.atBoundary)
  })

  test('reset() inside a header: the partial header is skipped too, without onInvalid', () => {
    const c = collect()
    c.decoder.write(BYTES[3].subarray(0, 10))
    c.decoder.reset()
    c.decoder.write(BYTES[4])
    assert.deepEqual(c.frames, [EXPECTED[4]])
    assert.deepEqual(c.invalid, [])
  })

  test('reset() at a frame boundary changes nothing', () => {
    const c = collect()
    c.decoder.write(BYTES[0])
    c.decoder.reset()
    c.decoder.write(BYTES[1])
    assert.deepEqual(c.frames, EXPECTED.slice(0, 2))
    assert.deepEqual(c.resyncs, [])
  })

  test('never throws on 1000 random buffers mixed with valid and truncated frames, and passes only real frames as intact', () => {
    const rnd = prng(31337)
    const known = new Set(BYTES.map((b) => b.toString('hex')))
    let recovered = 0
    for (let round = 0; round < 1000; round++) {
      const parts: Buffer[] = []
      for (let k = randInt(rnd, 1, 6); k > 0; k--) {
        const choice = randInt(rnd, 0, 2)
        const frame = BYTES[randInt(rnd, 0, BYTES.length - 1)]
        if (choice === 0) parts.push(frame)
        else if (choice === 1) parts.push(frame.subarray(0, randInt(rnd, 0, frame.length)))
        else {
          const g = Buffer.alloc(randInt(rnd, 0, 200))
          for (let i = 0; i < g.length; i++) g[i] = randInt(rnd, 0, 255)
          parts.push(g)
        }
      }
      const input = Buffer.concat(parts)
      const c = collect()
      assert.doesNotThrow(() => {
        for (let at = 0; at < input.length; ) {
          const n = randInt(rnd, 1, 700)
          c.decoder.write(input.subarray(at, at + n))
          at += n
        }
      }, `round ${round}`)
      for (const f of c.frames.filter((f) => f.intact)) {
        assert.ok(known.has(Buffer.concat(encodeFrame(f, f.checksum)).toString('hex')), `round ${round}: an intact frame that was never sent`)
      }
      const out = c.frames.reduce((n, f) => n + f.payload.length, 0)
      assert.ok(out + c.decoder.buffered <= input.length, `round ${round}: more bytes out than in`)
      recovered += c.resyncs.length
    }
    assert.ok(recovered > 100, `found a header again ${recovered} times`)
  })
})

async function deframe(bytes: Buffer, slice = 333): Promise<Deframed[]> {
  const d = createDeframer({ resync: true })
  const out = d.toArray()
  for (let at = 0; at < bytes.length; at += slice) d.write(bytes.subarray(at, at + slice))
  d.end()
  return ((await out) as Deframed[]).map(whole)
}

describe('createDeframer({ resync: true })', () => {
  const seqs = (items: Deframed[]) => items.map((x) => ('lost' in x ? 'lost' : x.seq))

  test('puts a { lost } marker in order at the place of garbage, between the frames around it', async () => {
    const items = await deframe(Buffer.concat([...BYTES.slice(0, 2), Buffer.alloc(50, 0x33), ...BYTES.slice(2)]))
    assert.deepEqual(seqs(items), [0, 1, 'lost', 2, 3, 4, 5, 6, 7])
    assert.deepEqual(items.filter((x) => !('lost' in x)), EXPECTED)
    assert.equal(typeof (items[2] as { lost: unknown }).lost, 'string')
  })

  test('a corrupt header becomes a { lost } marker in place of its frame', async () => {
    const bad = Buffer.from(BYTES[3])
    bad[15] ^= 0x02
    const items = await deframe(replacing(3, bad))
    assert.deepEqual(seqs(items), [0, 1, 2, 'lost', 4, 5, 6, 7])
    assert.match((items[3] as { lost: string }).lost, /header checksum mismatch/)
  })

  test('a corrupt payload is passed on as not intact, with no marker', async () => {
    const bad = Buffer.from(BYTES[5])
    bad[bad.length - 1] ^= 0x80
    const items = await deframe(replacing(5, bad))
    assert.deepEqual(seqs(items), [0, 1, 2, 3, 4, 5, 6, 7])
    assert.deepEqual(items.map((x) => 'intact' in x && x.intact), [true, true, true, true, true, false, true, true])
  })

  test('a stream ending inside a frame ends without error', async () => {
    const items = await deframe(Buffer.concat(BYTES).subarray(0, BYTES[0].length + 100))
    assert.deepEqual(items, [EXPECTED[0]])
  })
})
