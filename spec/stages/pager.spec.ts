import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { FrameType } from '../../lib/protocol/constants.js'
import type { Frame } from '../../lib/protocol/frame.js'
import type { Item } from '../../lib/stages/items.js'
import { createPager } from '../../lib/stages/pager.js'

async function page(items: Item[], pageSize: number): Promise<Frame[]> {
  const pager = createPager({ pageSize })
  const out = pager.toArray()
  for (const item of items) pager.write(item)
  pager.end()
  return (await out) as Frame[]
}

/** Distinct, unpooled chunks: each has its own ArrayBuffer. */
function chunkOf(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (from + i) & 0xff
  return b
}

const data = (id: number, chunk: Buffer): Item => ({ id, kind: 'data', chunk })
const start = (id: number): Item => ({ id, kind: 'start', body: { size: 0 } })
const end = (id: number): Item => ({ id, kind: 'end', body: { length: 0 } })
const json = (f: Frame) => JSON.parse(f.payload.toString('utf8'))

describe('createPager', () => {
  test('cuts one request into pages of exactly pageSize except the last', async () => {
    const frames = await page([start(1), data(1, chunkOf(10)), data(1, chunkOf(7, 10)), data(1, chunkOf(1, 17)), end(1)], 4)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [4, 4, 4, 4, 2])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(18))
  })

  test('emits no short page when the bytes fill whole pages', async () => {
    const frames = await page([start(1), data(1, chunkOf(8)), data(1, chunkOf(4, 8)), end(1)], 4)
    assert.deepEqual(frames.map((f) => [f.type, f.payload.length]).slice(1, -1), [[FrameType.DATA, 4], [FrameType.DATA, 4], [FrameType.DATA, 4]])
  })

  test('hands on pages that lie inside one chunk without copying, and copies only pages that span chunks', async () => {
    const a = chunkOf(10)
    const b = chunkOf(11, 10)
    const frames = await page([start(1), data(1, a), data(1, b), end(1)], 4)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [4, 4, 4, 4, 4, 1])
    assert.equal(pages[0].payload.buffer, a.buffer)
    assert.equal(pages[1].payload.buffer, a.buffer)
    assert.equal(pages[1].payload.byteOffset, a.byteOffset + 4)
    assert.notEqual(pages[2].payload.buffer, a.buffer, 'bytes 8–11 span both chunks')
    assert.notEqual(pages[2].payload.buffer, b.buffer)
    assert.equal(pages[3].payload.buffer, b.buffer)
    assert.equal(pages[4].payload.buffer, b.buffer)
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(21))
  })

  test('carries bytes across many chunks smaller than a page', async () => {
    const chunks = [3, 1, 2, 5, 1, 1, 9].reduce<Buffer[]>((acc, n) => [...acc, chunkOf(n, acc.reduce((s, c) => s + c.length, 0))], [])
    const frames = await page([start(1), ...chunks.map((c) => data(1, c)), end(1)], 8)
    const pages = frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(pages.map((p) => p.payload.length), [8, 8, 6])
    assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(22))
  })

  test('numbers START, every DATA page and END with consecutive seq from 0', async () => {
    const frames = await page([start(5), data(5, chunkOf(9)), end(5)], 4)
    assert.deepEqual(frames.map((f) => [f.type, f.id, f.seq]), [
      [FrameType.START, 5, 0], [FrameType.DATA, 5, 1], [FrameType.DATA, 5, 2], [FrameType.DATA, 5, 3], [FrameType.END, 5, 4],
    ])
    assert.deepEqual(json(frames[0]), { size: 0 })
    assert.deepEqual(json(frames[4]), { length: 0 })
  })

  test('flushes the partial page before the END frame', async () => {
    const frames = await page([start(1), data(1, chunkOf(3)), end(1)], 4)
    assert.deepEqual(frames.map((f) => f.type), [FrameType.START, FrameType.DATA, FrameType.END])
    assert.deepEqual(frames[1].payload, chunkOf(3))
  })

  test('keeps separate seq spaces and byte order for two interleaved requests', async () => {
    const items: Item[] = [start(1), start(2)]
    for (let i = 0; i < 6; i++) items.push(data(1, chunkOf(3, 100 + i * 3)), data(2, chunkOf(5, 200 + i * 5)))
    items.push(end(2), end(1))
    const frames = await page(items, 4)
    for (const [id, total, from] of [[1, 18, 100], [2, 30, 200]]) {
      const mine = frames.filter((f) => f.id === id)
      assert.deepEqual(mine.map((f) => f.seq), mine.map((_, i) => i), `seq of ${id}`)
      assert.equal(mine[0].type, FrameType.START)
      assert.equal(mine.at(-1)!.type, FrameType.END)
      const pages = mine.filter((f) => f.type === FrameType.DATA)
      assert.ok(pages.slice(0, -1).every((p) => p.payload.length === 4), `full pages of ${id}`)
      assert.deepEqual(Buffer.concat(pages.map((p) => p.payload)), chunkOf(total, from))
    }
  })

  test('ends a request on an error item, dropping its carried bytes, so the id starts afresh', async () => {
    const err: Item = { id: 3, kind: 'error', body: { code: 'ECHANGED', message: 'changed' } }
    const frames = await page([start(3), data(3, chunkOf(6)), err, start(3), data(3, chunkOf(4, 50)), end(3)], 4)
    assert.deepEqual(frames.map((f) => [f.type, f.seq]), [
      [FrameType.START, 0], [FrameType.DATA, 1], [FrameType.ERROR, 2], [FrameType.START, 0], [FrameType.DATA, 1], [FrameType.END, 2],
    ])
    assert.deepEqual(json(frames[2]), { code: 'ECHANGED', message: 'changed' })
    assert.deepEqual(frames[4].payload, chunkOf(4, 50))
  })

  test('sends a RESULT as seq 0 and ends the request with it', async () => {
    const frames = await page([{ id: 8, kind: 'result', body: { entries: [] } }, { id: 8, kind: 'result', body: { n: 2 } }], 4)
    assert.deepEqual(frames.map((f) => [f.type, f.id, f.seq]), [[FrameType.RESULT, 8, 0], [FrameType.RESULT, 8, 0]])
    assert.deepEqual(json(frames[1]), { n: 2 })
  })

  test('a RESULT larger than a frame can carry becomes ETOOBIG for that request; the next request is served', async () => {
    const entries = Array.from({ length: 120_000 }, (_, i) => ({ name: `${String(i).padStart(120, 'n')}`, type: 'file', size: i }))
    const frames = await page([{ id: 4, kind: 'result', body: { entries } }, { id: 5, kind: 'result', body: { ok: 1 } }], 4)
    assert.deepEqual(frames.map((f) => [f.type, f.id, f.seq]), [[FrameType.ERROR, 4, 0], [FrameType.RESULT, 5, 0]])
    assert.equal(json(frames[0]).code, 'ETOOBIG')
    assert.match(json(frames[0]).message, /a frame carries at most 16777216/)
  })

  test('sends id-0 HELLO and ERROR frames with seq 0, outside any request', async () => {
    const frames = await page([
      { id: 0, kind: 'hello', body: { protocol: 1 } },
      start(1),
      { id: 0, kind: 'error', body: { code: 'EBADREQ', message: 'bad' } },
      { id: 0, kind: 'error', body: { code: 'ETOOBIG', message: 'big' } },
      end(1),
    ], 4)
    assert.deepEqual(frames.map((f) => [f.type, f.id, f.seq]), [
      [FrameType.HELLO, 0, 0], [FrameType.START, 1, 0], [FrameType.ERROR, 0, 0], [FrameType.ERROR, 0, 0], [FrameType.END, 1, 1],
    ])
    assert.deepEqual(json(frames[0]), { protocol: 1 })
    assert.deepEqual(json(frames[3]), { code: 'ETOOBIG', message: 'big' })
  })
})
