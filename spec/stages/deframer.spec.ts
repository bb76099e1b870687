/**
 * The deframer stream: bytes in any chunking become the frames that were
 * sent. Strict by default (a bad payload is ECHECKSUM, a bad header or a
 * stream cut inside a frame is EPROTO); passCorrupt hands bad payloads on
 * marked; resync turns lost bytes into one `{ lost }` marker in place and
 * carries on, and reset() drops a half-received frame.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { prng } from '../../lib/prng.js'
import { ChecksumId, FrameType, HEADER_SIZE } from '../../lib/protocol/constants.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { createDeframer, type Deframed, type DeframerOptions } from '../../lib/stages/deframer.js'

const frameBytes = (seq: number, size: number, checksum: number = ChecksumId.crc32) =>
  Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 4, seq, payload: Buffer.alloc(size, seq + 1) }, checksum))
const FRAMES = [frameBytes(0, 10), frameBytes(1, 0, ChecksumId.md5), frameBytes(2, 5000), frameBytes(3, 7, ChecksumId.none)]
const STREAM = Buffer.concat(FRAMES)
/** Bytes that hold no magic, so no header can hide in them. */
const GARBAGE = Buffer.alloc(50, 0x33)

interface Outcome {
  items: string[]
  error?: NodeJS.ErrnoException
}

/** Write `chunks` to a new deframer and describe what came out: `seq:intact` per frame, `lost` per marker. */
async function deframe(chunks: Buffer[], opts?: DeframerOptions, between?: (d: ReturnType<typeof createDeframer>, i: number) => void): Promise<Outcome> {
  const d = createDeframer(opts)
  const items: string[] = []
  d.on('data', (x: Deframed) => {
    if ('lost' in x) items.push('lost')
    else items.push(`${x.seq}:${x.intact}:${x.payload.equals(Buffer.alloc(x.payload.length, x.seq + 1))}`)
  })
  return new Promise((resolve) => {
    d.on('end', () => resolve({ items }))
    d.on('error', (error) => resolve({ items, error }))
    chunks.forEach((c, i) => {
      between?.(d, i)
      d.write(c)
    })
    d.end()
  })
}

/** `bytes` cut into slices of 1…max bytes. */
function slices(bytes: Buffer, seed: number, max: number): Buffer[] {
  const rnd = prng(seed)
  const out: Buffer[] = []
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(rnd() * max)
    out.push(bytes.subarray(at, at + n))
    at += n
  }
  return out
}

const ALL = ['0:true:true', '1:true:true', '2:true:true', '3:true:true']

describe('createDeframer (strict)', () => {
  test('yields the frames sent however the bytes are chunked', async () => {
    assert.deepEqual(await deframe([STREAM]), { items: ALL })
    for (let cut = 1; cut < FRAMES[0].length + FRAMES[1].length + HEADER_SIZE + 8; cut++) {
      assert.deepEqual(await deframe([STREAM.subarray(0, cut), STREAM.subarray(cut)]), { items: ALL }, `cut at ${cut}`)
    }
    for (const [seed, max] of [[1, 1], [2, 5], [3, 60], [4, 3000]]) {
      assert.deepEqual(await deframe(slices(STREAM, seed, max)), { items: ALL }, `seed ${seed}, slices up to ${max}`)
    }
  })

  test('fails with ECHECKSUM on a payload that does not match its digest', async () => {
    const bad = Buffer.from(FRAMES[2])
    bad[bad.length - 1] ^= 0x01
    const out = await deframe([FRAMES[0], bad, FRAMES[3]])
    assert.equal(out.error?.code, 'ECHECKSUM')
    assert.match(out.error!.message, /frame 4\/2/)
    assert.deepEqual(out.items.slice(0, 1), ['0:true:true'])
    assert.ok(!out.items.some((x) => x.startsWith('2:')), 'the corrupt frame is not handed on')
  })

  test('hands a corrupt payload on marked with passCorrupt, and goes on', async () => {
    const bad = Buffer.from(FRAMES[2])
    bad[bad.length - 1] ^= 0x01
    assert.deepEqual(await deframe([FRAMES[0], bad, FRAMES[3]], { passCorrupt: true }), { items: ['0:true:true', '2:false:false', '3:true:true'] })
  })

  test('fails with EPROTO on a header that fails its check, even with passCorrupt', async () => {
    const bad = Buffer.from(FRAMES[1])
    bad[6] ^= 0x01
    for (const opts of [{}, { passCorrupt: true }]) {
      const out = await deframe([FRAMES[0], bad, FRAMES[2]], opts)
      assert.equal(out.error?.code, 'EPROTO')
      assert.match(out.error!.message, /header checksum mismatch/)
      assert.deepEqual(out.items, ['0:true:true'])
    }
  })

  test('fails with EPROTO when the stream ends inside a frame, header or body', async () => {
    for (const cut of [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 4 + 2000]) {
      const out = await deframe([FRAMES[0], FRAMES[2].subarray(0, cut)])
      assert.equal(out.error?.code, 'EPROTO', `cut at ${cut}`)
      assert.match(out.error!.message, /ended inside a frame/)
      assert.deepEqual(out.items, ['0:true:true'])
    }
  })

  test('ignores reset(): a half-received frame is still completed', async () => {
    const out = await deframe([STREAM.subarray(0, 100), STREAM.subarray(100)], {}, (d, i) => i === 1 && d.reset())
    assert.deepEqual(out, { items: ALL })
  })
})

describe('createDeframer({ resync: true })', () => {
  test('puts one { lost } marker where garbage was, in order, in any chunking', async () => {
    const bytes = Buffer.concat([GARBAGE, FRAMES[0], FRAMES[1], GARBAGE, GARBAGE, FRAMES[2], FRAMES[3]])
    const want = { items: ['lost', '0:true:true', '1:true:true', 'lost', '2:true:true', '3:true:true'] }
    assert.deepEqual(await deframe([bytes], { resync: true }), want)
    for (const seed of [5, 6, 7]) assert.deepEqual(await deframe(slices(bytes, seed, 40), { resync: true }), want, `seed ${seed}`)
  })

  test('marks a corrupt payload instead of failing, and a corrupt header becomes a marker', async () => {
    const badBody = Buffer.from(FRAMES[0])
    badBody[badBody.length - 1] ^= 0x01
    const badHead = Buffer.from(FRAMES[2])
    badHead[10] ^= 0x01
    const out = await deframe([badBody, FRAMES[1], badHead, FRAMES[3]], { resync: true })
    assert.deepEqual(out, { items: ['0:false:false', '1:true:true', 'lost', '3:true:true'] })
  })

  test('reset() silently drops a frame cut off in its header or its body, and picks up the next', async () => {
    for (const cut of [5, HEADER_SIZE + 4 + 100]) {
      const half = FRAMES[2].subarray(0, cut)
      const out = await deframe([FRAMES[0], half, FRAMES[3]], { resync: true }, (d, i) => i === 2 && d.reset())
      assert.deepEqual(out, { items: ['0:true:true', '3:true:true'] }, `cut at ${cut}`)
    }
  })

  test('ends without an error inside a frame', async () => {
    assert.deepEqual(await deframe([FRAMES[0], FRAMES[2].subarray(0, 40)], { resync: true }), { items: ['0:true:true'] })
  })
})
