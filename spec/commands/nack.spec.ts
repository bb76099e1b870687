/**
 * The `nack` command: a receiver's position (seq, offset, resync) must be
 * non-negative integers, seq within a header's u32, or the line is refused
 * with EBADREQ (on id 0 while the request runs, which goes on untouched);
 * a valid one has the request sent again from there, behind a RESYNC.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FrameType, MAX_ID } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'

const REFUSAL = 'nack needs non-negative integers "seq" (at most 2^32 - 1), "offset" and "resync"'

/** A raw peer that has read `name` (`content` written to it) whole as request 1, on a server started with `opts`. */
async function afterRead(t: Parameters<typeof startServer>[0], name: string, content: string | number, opts: Parameters<typeof startServer>[1] = {}) {
  const { url, root } = await startServer(t, opts)
  const data = writeFile(root, name, content)
  const peer = await rawPeer(t, url)
  peer.send({ id: 1, op: 'read', path: name })
  await peer.done(1)
  return { peer, data }
}

function bytesOf(frames: ReceivedFrame[], id: number): Buffer {
  return Buffer.concat(frames.filter((f) => f.id === id && f.type === FrameType.DATA).map((f) => f.payload))
}

describe('nack refuses a position it cannot resend from', () => {
  test('a nack with a bad position is EBADREQ', async (t) => {
    const { url } = await startServer(t)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'nack', seq: -1, offset: 0, resync: 1 })
    assert.equal(json(await peer.done(1)).code, 'EBADREQ')
  })

  test('answers a NACK whose seq does not fit the header with EBADREQ and keeps serving', async (t) => {
    const { peer } = await afterRead(t, 'a.txt', 'abc')
    peer.send({ id: 1, op: 'nack', seq: Number.MAX_SAFE_INTEGER, offset: 0, resync: 1 })
    await peer.until((fs) => fs.some((f) => f.id === 1 && f.type === FrameType.ERROR))
    assert.equal(json(peer.frames.find((f) => f.id === 1 && f.type === FrameType.ERROR)!).code, 'EBADREQ')
    peer.send({ id: 2, op: 'read', path: 'a.txt' })
    await peer.done(2)
    assert.equal(bytesOf(peer.frames, 2).toString(), 'abc')
  })

  test('each field must be a non-negative safe integer, seq at most 2^32 - 1; the refusal says so', async (t) => {
    const { url } = await startServer(t)
    const peer = await rawPeer(t, url)
    const good = { seq: 1, offset: 0, resync: 1 }
    const bad: Record<string, unknown>[] = [
      { seq: MAX_ID + 1 },
      { seq: 1.5 },
      { seq: '1' },
      { seq: undefined },
      { offset: -1 },
      { offset: 2 ** 53 },
      { offset: null },
      { resync: 0.5 },
      { resync: undefined },
      { resync: [1] },
    ]
    for (const [i, change] of bad.entries()) {
      peer.send({ id: 10 + i, op: 'nack', ...good, ...change })
      const f = await peer.done(10 + i)
      assert.deepEqual([f.type, json(f)], [FrameType.ERROR, { code: 'EBADREQ', message: REFUSAL }], JSON.stringify(change))
    }
  })

  test('seq 2^32 - 1 is taken: the answer is the resend\'s own verdict, not EBADREQ', async (t) => {
    const { peer } = await afterRead(t, 'a.txt', 'abc')
    const before = peer.frames.length
    peer.send({ id: 1, op: 'nack', seq: MAX_ID, offset: 0, resync: 1 })
    const answer = await peer.until((fs) => fs.slice(before).some((f) => f.id === 1 && f.type === FrameType.ERROR))
    assert.notEqual(json(answer.slice(before).find((f) => f.id === 1 && f.type === FrameType.ERROR)!).code, 'EBADREQ')
  })

  test('a bad nack naming a request still running is refused on id 0; that request goes on whole', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 4096 })
    const data = writeFile(root, 'big.bin', 8 * 1024 * 1024)
    const peer = await rawPeer(t, url)
    peer.socket.pause() // the read cannot finish while nothing is taken
    peer.send({ id: 1, op: 'read', path: 'big.bin' })
    peer.send({ id: 1, op: 'nack', seq: -5, offset: 0, resync: 1 })
    peer.socket.resume()
    const end = await peer.done(1)
    assert.equal(end.type, FrameType.END)
    assert.ok(bytesOf(peer.frames, 1).equals(data))
    const refusals = peer.frames.filter((f) => f.id === 0 && f.type === FrameType.ERROR).map((f) => json(f))
    assert.deepEqual(refusals, [{ code: 'EBADREQ', message: `request 1: ${REFUSAL}` }])
  })
})

describe('nack resends', () => {
  test('from the verified point: RESYNC with the point and the halved page size, then the rest, all in the NACK\'s epoch', async (t) => {
    const { peer, data } = await afterRead(t, 'a.bin', 5000, { pageSize: 2048 })
    const before = peer.frames.length
    peer.send({ id: 1, op: 'nack', seq: 2, offset: 2048, resync: 3 })
    await peer.until((fs) => fs.slice(before).some((f) => f.id === 1 && f.type === FrameType.END))
    const resent = peer.frames.slice(before).filter((f) => f.id === 1)
    assert.equal(resent[0].type, FrameType.RESYNC)
    assert.deepEqual(json(resent[0]), { resync: 3, seq: 2, offset: 2048, pageSize: 1024 })
    assert.deepEqual(resent.map((f) => f.seq), resent.map((_, i) => 2 + Math.max(0, i - 1)), 'the RESYNC takes seq 2 without consuming it')
    assert.ok(resent.every((f) => f.epoch === 3))
    assert.ok(bytesOf(resent, 1).equals(data.subarray(2048)))
    assert.deepEqual(json(resent.at(-1)!), { length: 5000 })
  })
})
