/**
 * `tree` from the client's side (lib/client/tree.ts): one streamed response,
 * asked for again after the last file given when its connection dies; or
 * pages that follow the server's cursor. Scripted servers show the request
 * lines; a real server shows both ways give the same files.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { describe, test } from 'node:test'
import { Connections } from '../../lib/client/connections.js'
import { pagedTree, streamedTree } from '../../lib/client/tree.js'
import type { ConnectOptions, TreeFile } from '../../lib/client/types.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { type Answer, dyingServer, linesOf } from '../helpers/dying-server.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

async function open(t: TestContext, url: string, opts: ConnectOptions = {}): Promise<Connections> {
  const conns = await Connections.open(url, opts)
  t.after(() => conns.close())
  return conns
}

async function collect(files: AsyncIterable<TreeFile>): Promise<string[]> {
  const out: string[] = []
  for await (const f of files) out.push(f.path)
  return out
}

/** A streamed tree's answer giving `names` (size 1 each), then END, or, with `hangUp`, ending the connection instead. */
function streamed(id: number, names: string[], hangUp = false): Answer {
  const body = Buffer.from(names.map((path) => `${JSON.stringify({ path, size: 1 })}\n`).join(''))
  const frames: Frame[] = [jsonFrame(FrameType.START, id, 0, {})]
  if (body.length > 0) frames.push({ type: FrameType.DATA, id, seq: 1, payload: body })
  if (hangUp) return { frames, hangUp: true }
  return { frames: [...frames, jsonFrame(FrameType.END, id, frames.length, { length: body.length })] }
}

describe('streamedTree', () => {
  test('a connection that dies under it is asked for the files after the last one given', async (t) => {
    const { url, lines } = await dyingServer(t, (req, nth) => (nth === 1 ? streamed(req.id, ['a', 'b'], true) : streamed(req.id, ['c'])))
    const conns = await open(t, url, { retryDelays: [10] })
    assert.deepEqual(await collect(streamedTree(conns, 'd', '.bin')), ['a', 'b', 'c'])
    const trees = linesOf(lines, 'tree')
    assert.equal(trees.length, 2)
    assert.deepEqual(trees.map((l) => [l.path, l.stream, l.suffix, l.after]), [
      ['d', true, '.bin', undefined],
      ['d', true, '.bin', 'b'],
    ])
  })

  test('an attempt that gave files starts the count of retry delays again', async (t) => {
    const answers = (id: number, nth: number) => [streamed(id, ['a'], true), streamed(id, ['b'], true), streamed(id, ['c'])][nth - 1]
    const { url, lines } = await dyingServer(t, (req, nth) => answers(req.id, nth))
    const conns = await open(t, url, { retryDelays: [10] })
    assert.deepEqual(await collect(streamedTree(conns, '', undefined)), ['a', 'b', 'c'])
    assert.deepEqual(linesOf(lines, 'tree').map((l) => l.after), [undefined, 'a', 'b'])
  })

  test('attempts that give nothing spend the delays, then fail with ECLOSED', async (t) => {
    const { url, lines } = await dyingServer(t, () => ({ frames: [], hangUp: true }))
    const conns = await open(t, url, { retryDelays: [10, 10] })
    await assert.rejects(collect(streamedTree(conns, '', undefined)), { code: 'ECLOSED' })
    assert.equal(linesOf(lines, 'tree').length, 3)
  })

  test('an error the server answers with is not asked again', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url, { retryDelays: [10] })
    await assert.rejects(collect(streamedTree(conns, 'missing', undefined)), { code: 'ENOENT' })
  })
})

describe('pagedTree', () => {
  test('follows the cursor with a request per page', async (t) => {
    const pages = [
      { files: [{ path: 'a', size: 1 }, { path: 'b', size: 2 }], next: 'b' },
      { files: [{ path: 'c', size: 3 }], next: null },
    ]
    const { url, lines } = await dyingServer(t, (req, nth) => ({ frames: [jsonFrame(FrameType.RESULT, req.id, 0, pages[nth - 1])] }))
    const conns = await open(t, url)
    assert.deepEqual(await collect(pagedTree(conns, 'd', '.bin', 2)), ['a', 'b', 'c'])
    assert.deepEqual(linesOf(lines, 'tree').map((l) => [l.limit, l.suffix, l.after]), [
      [2, '.bin', undefined],
      [2, '.bin', 'b'],
    ])
  })

  test('a page without a files list and a cursor: EPROTO', async (t) => {
    const { url } = await dyingServer(t, (req) => ({ frames: [jsonFrame(FrameType.RESULT, req.id, 0, { files: [] })] }))
    const conns = await open(t, url)
    await assert.rejects(collect(pagedTree(conns, '', undefined, 10)), { code: 'EPROTO' })
  })
})

test('a real server gives the same files streamed and paged, suffix applied', async (t) => {
  const { url, root } = await startServer(t)
  for (const name of ['d/b.bin', 'd/a.bin', 'd/e/c.bin', 'd/x.txt', 'd/e/y.txt']) writeFile(root, name, 10)
  const conns = await open(t, url)
  const want = ['d/a.bin', 'd/b.bin', 'd/e/c.bin']
  assert.deepEqual(await collect(streamedTree(conns, 'd', '.bin')), want)
  assert.deepEqual(await collect(pagedTree(conns, 'd', '.bin', 2)), want)
})
