/**
 * createFramer: frames out as bytes, each behind its header and payload
 * digest, with each frame's lease released once its bytes are out (or at
 * once without a tracker).
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { Releasable } from '../../lib/cache/block-lease.js'
import { ChecksumId, FrameType, HEADER_SIZE } from '../../lib/protocol/constants.js'
import type { Frame, ReceivedFrame } from '../../lib/protocol/frame.js'
import { createDeframer, type DeframerOptions } from '../../lib/stages/deframer.js'
import { createFramer } from '../../lib/stages/framer.js'
import type { OutFrame } from '../../lib/stages/pager.js'
import { whole } from '../helpers/frames.js'

/** Distinct, unpooled chunks: each has its own ArrayBuffer. */
function chunkOf(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (from + i) & 0xff
  return b
}

/** A lease that counts its releases. */
function lease(): Releasable & { releases: number } {
  return {
    releases: 0,
    release() {
      this.releases++
    },
  }
}

async function frameBytes(frames: Frame[], checksum: 'crc32' | 'md5'): Promise<Buffer> {
  const framer = createFramer({ checksum })
  const out = framer.toArray()
  for (const f of frames) framer.write(f)
  framer.end()
  return Buffer.concat((await out) as Buffer[])
}

async function deframe(bytes: Buffer, opts?: DeframerOptions, slice = 1000): Promise<ReceivedFrame[]> {
  const deframer = createDeframer(opts)
  const out = deframer.toArray()
  for (let at = 0; at < bytes.length; at += slice) deframer.write(bytes.subarray(at, at + slice))
  deframer.end()
  return (await out) as ReceivedFrame[]
}

describe('framer → deframer', () => {
  const frames: Frame[] = [
    { type: FrameType.HELLO, id: 0, seq: 0, payload: Buffer.from('{"protocol":1}') },
    { type: FrameType.START, id: 1, seq: 0, payload: Buffer.from('{"size":9000}') },
    { type: FrameType.DATA, id: 1, seq: 1, payload: chunkOf(5000) },
    { type: FrameType.DATA, id: 1, seq: 2, payload: chunkOf(4000, 7) },
    { type: FrameType.END, id: 1, seq: 3, payload: Buffer.from('{"length":9000}') },
  ]
  const checksums = { crc32: ChecksumId.crc32, md5: ChecksumId.md5 } as const

  for (const name of ['crc32', 'md5'] as const) {
    test(`round-trips frames intact with ${name}`, async () => {
      const bytes = await frameBytes(frames, name)
      for (const slice of [1, 7, 1000, bytes.length]) {
        const got = await deframe(bytes, {}, slice)
        assert.deepEqual(got.map(whole), frames.map((f) => ({ ...f, epoch: 0, checksum: checksums[name], intact: true })), `slices of ${slice}`)
      }
    })

    test(`fails with ECHECKSUM when a payload byte flips (${name}), or passes it as not intact with passCorrupt`, async () => {
      const bytes = await frameBytes(frames, name)
      const at = bytes.length - 10 // inside the END payload (its last 15 bytes)
      bytes[at] ^= 0x20
      await assert.rejects(deframe(bytes), { code: 'ECHECKSUM' })
      const got = await deframe(bytes, { passCorrupt: true })
      assert.deepEqual(got.map((f) => f.intact), [true, true, true, true, false])
    })
  }

  test('fails with EPROTO when a header is corrupt', async () => {
    const bytes = await frameBytes(frames, 'crc32')
    bytes[HEADER_SIZE + 4 + 14 + 9] ^= 0x01 // in the START header (HELLO payload is 14 bytes)
    await assert.rejects(deframe(bytes, { passCorrupt: true }), { code: 'EPROTO' })
  })

  test('fails with EPROTO at the end of a stream truncated inside a frame', async () => {
    const bytes = await frameBytes(frames, 'crc32')
    for (const cut of [1, 10, HEADER_SIZE + 2]) {
      await assert.rejects(deframe(bytes.subarray(0, bytes.length - cut)), { code: 'EPROTO', message: /ended inside a frame/ }, `cut ${cut}`)
    }
  })
})

describe('leases', () => {
  test('onLease gets each leased frame\'s end: the count of bytes out up to and including it', async () => {
    const marks: [number, Releasable][] = []
    const framer = createFramer({ onLease: (end, l) => void marks.push([end, l]) })
    const out = framer.toArray()
    const leases = [lease(), lease()]
    const frames: OutFrame[] = [
      { type: FrameType.START, id: 1, seq: 0, payload: Buffer.from('{}') },
      { type: FrameType.DATA, id: 1, seq: 1, payload: chunkOf(10), lease: leases[0] },
      { type: FrameType.DATA, id: 1, seq: 2, payload: chunkOf(8000), lease: leases[1] },
      { type: FrameType.END, id: 1, seq: 3, payload: Buffer.from('{}') },
    ]
    for (const f of frames) framer.write(f)
    framer.end()
    const bytes = Buffer.concat((await out) as Buffer[])
    const sizes = frames.map((f) => HEADER_SIZE + 4 + f.payload.length)
    assert.equal(bytes.length, sizes.reduce((a, b) => a + b))
    assert.deepEqual(marks.map(([end]) => end), [sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]])
    assert.deepEqual(marks.map(([, l]) => l), leases)
    assert.deepEqual(leases.map((l) => l.releases), [0, 0], 'releasing is the tracker\'s job')
  })

  test('without onLease, a frame\'s lease is released once the frame is framed', async () => {
    const framer = createFramer()
    const out = framer.toArray()
    const l = lease()
    framer.write({ type: FrameType.DATA, id: 1, seq: 1, payload: chunkOf(100), lease: l })
    framer.end()
    await out
    assert.equal(l.releases, 1)
  })

  test('a frame that cannot be encoded fails the stream, without a throw, and its lease is released', async () => {
    const framer = createFramer({ onLease: () => assert.fail('not framed, not tracked') })
    const l = lease()
    const failed = once(framer, 'error')
    framer.resume()
    framer.write({ type: FrameType.DATA, id: 1, seq: 2 ** 32, payload: chunkOf(10), lease: l })
    const [err] = (await failed) as [Error]
    assert.ok(err instanceof RangeError, String(err))
    assert.equal(l.releases, 1)
  })
})
