import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { FrameType } from '../../lib/protocol/constants.js'
import type { Frame, ReceivedFrame } from '../../lib/protocol/frame.js'
import { createDeframer } from '../../lib/stages/deframer.js'
import { createFramer } from '../../lib/stages/framer.js'
import type { Item, ResyncBody } from '../../lib/stages/items.js'
import { createPager } from '../../lib/stages/pager.js'

async function page(items: Item[], pageSize = 4): Promise<Frame[]> {
  const pager = createPager({ pageSize })
  const out = pager.toArray()
  for (const item of items) pager.write(item)
  pager.end()
  return (await out) as Frame[]
}

function chunkOf(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (from + i) & 0xff
  return b
}

const data = (id: number, chunk: Buffer, pageSize?: number): Item => ({ id, kind: 'data', chunk, ...(pageSize === undefined ? {} : { pageSize }) })
const start = (id: number): Item => ({ id, kind: 'start', body: { size: 0 } })
const end = (id: number): Item => ({ id, kind: 'end', body: { length: 0 } })
const resync = (id: number, body: ResyncBody): Item => ({ id, kind: 'resync', body })
const summary = (frames: Frame[]) => frames.map((f) => [f.type, f.id, f.seq, f.epoch ?? 0, f.payload.length])
const json = (f: Frame) => JSON.parse(f.payload.toString('utf8'))

describe('createPager: resync items', () => {
  test('emits a RESYNC frame at the asked seq with epoch = resync number, carrying the body', async () => {
    const body = { resync: 3, seq: 5, offset: 16, pageSize: 4 }
    const frames = await page([start(1), data(1, chunkOf(8)), resync(1, body)])
    const last = frames.at(-1)!
    assert.deepEqual([last.type, last.id, last.seq, last.epoch], [FrameType.RESYNC, 1, 5, 3])
    assert.deepEqual(json(last), body)
  })

  test('numbers the frames after it from its seq, with its epoch', async () => {
    const frames = await page([
      start(1), data(1, chunkOf(8)),
      resync(1, { resync: 3, seq: 5, offset: 16, pageSize: 4 }),
      data(1, chunkOf(12, 16)), end(1),
    ])
    assert.deepEqual(summary(frames), [
      [FrameType.START, 1, 0, 0, 10], [FrameType.DATA, 1, 1, 0, 4], [FrameType.DATA, 1, 2, 0, 4],
      [FrameType.RESYNC, 1, 5, 3, frames[3].payload.length],
      [FrameType.DATA, 1, 5, 3, 4], [FrameType.DATA, 1, 6, 3, 4], [FrameType.DATA, 1, 7, 3, 4],
      [FrameType.END, 1, 8, 3, 12],
    ])
  })

  test('drops the partial page carried for that id, so no old bytes leak into the resend', async () => {
    const frames = await page([
      start(1), data(1, chunkOf(6)), // one page of 4, 2 bytes carried
      resync(1, { resync: 1, seq: 2, offset: 4, pageSize: 4 }),
      data(1, chunkOf(7, 4)), end(1),
    ])
    const after = frames.slice(frames.findIndex((f) => f.type === FrameType.RESYNC) + 1)
    const pages = after.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => [p.seq, p.payload.length]), [[2, 4], [3, 3]])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(7, 4))
    assert.deepEqual(after.at(-1)!.seq, 4)
  })

  test('leaves the seq, epoch and carried bytes of other requests alone', async () => {
    const frames = await page([
      start(1), start(2), data(1, chunkOf(5)), data(2, chunkOf(6, 100)),
      resync(1, { resync: 2, seq: 1, offset: 0, pageSize: 4 }),
      data(2, chunkOf(2, 106)), end(2), end(1),
    ])
    const two = frames.filter((f) => f.id === 2)
    assert.deepEqual(two.map((f) => [f.seq, f.epoch ?? 0]), [[0, 0], [1, 0], [2, 0], [3, 0]])
    assert.deepEqual(Buffer.concat(two.filter((f) => f.type === FrameType.DATA).map((f) => f.payload)), chunkOf(8, 100))
    assert.deepEqual(summary(frames.filter((f) => f.id === 1)).slice(2), [
      [FrameType.RESYNC, 1, 1, 2, frames.find((f) => f.type === FrameType.RESYNC)!.payload.length],
      [FrameType.END, 1, 1, 2, 12],
    ])
  })

  test('starts a request that had no state yet; the first frame after the RESYNC shares its seq', async () => {
    const frames = await page([resync(9, { resync: 1, seq: 3, offset: 0, pageSize: 4 }), data(9, chunkOf(4)), end(9)])
    assert.deepEqual(frames.map((f) => [f.type, f.seq, f.epoch]), [[FrameType.RESYNC, 3, 1], [FrameType.DATA, 3, 1], [FrameType.END, 4, 1]])
  })

  test('wraps the epoch at 256 while the RESYNC body keeps the full number', async () => {
    for (const [n, epoch] of [[255, 255], [256, 0], [258, 2], [513, 1]]) {
      const frames = await page([start(1), resync(1, { resync: n, seq: 1, offset: 0, pageSize: 4 }), data(1, chunkOf(4)), end(1)])
      assert.deepEqual(frames.slice(1).map((f) => f.epoch), [epoch, epoch, epoch], `resync ${n}`)
      assert.equal(json(frames[1]).resync, n)
    }
  })

  test('sends the epoch in the header, where a receiver reads it back', async () => {
    const frames = await page([start(1), resync(1, { resync: 258, seq: 1, offset: 0, pageSize: 4 }), data(1, chunkOf(4)), end(1)])
    const framer = createFramer({ checksum: 'crc32' })
    const deframer = createDeframer({ resync: true })
    const out = deframer.toArray()
    framer.pipe(deframer)
    for (const f of frames) framer.write(f)
    framer.end()
    const got = (await out) as ReceivedFrame[]
    assert.deepEqual(got.map((f) => [f.type, f.seq, f.epoch, f.intact]), [
      [FrameType.START, 0, 0, true], [FrameType.RESYNC, 1, 2, true], [FrameType.DATA, 1, 2, true], [FrameType.END, 2, 2, true],
    ])
  })
})

describe('createPager: per-item page size', () => {
  test('cuts a data item at its own pageSize instead of the default', async () => {
    const frames = await page([start(1), data(1, chunkOf(20), 6), data(1, chunkOf(3, 20), 6), data(1, chunkOf(9, 23)), end(1)], 4)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [6, 6, 6, 4, 4, 4, 2])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(32))
  })

  test('a page size smaller than the carried partial page still yields pages of at most the new size', async () => {
    const frames = await page([start(1), data(1, chunkOf(15), 8), data(1, chunkOf(5, 15), 3), end(1)], 100)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [8, 3, 3, 3, 3])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(20))
    assert.deepEqual(frames.map((f) => f.seq), frames.map((_, i) => i))
  })

  test('shrinking below the carry with a chunk too small to fill a page carries the rest to END', async () => {
    const frames = await page([start(1), data(1, chunkOf(7), 8), data(1, chunkOf(1, 7), 3), end(1)], 100)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [3, 3, 2])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(8))
  })

  test('a page size equal to the carry sends the carry as one page', async () => {
    const frames = await page([start(1), data(1, chunkOf(5), 8), data(1, chunkOf(6, 5), 5), end(1)], 100)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [5, 5, 1])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(11))
  })
})
