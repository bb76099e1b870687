/**
 * Starting requests on a client's connections (lib/client/requests.ts): a
 * request safe to repeat is sent again, within the retry delays, when its
 * connection dies under it, any other is not; PROGRESS reaches its callback;
 * a streamed request's failure says whether its connection died.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { describe, test } from 'node:test'
import { Connections } from '../../lib/client/connections.js'
import { isRetryable, request, streamRequest } from '../../lib/client/requests.js'
import type { ConnectOptions, StatResult } from '../../lib/client/types.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { type Answer, dyingServer, linesOf } from '../helpers/dying-server.js'
import { startServer } from '../helpers/server.js'

async function open(t: TestContext, url: string, opts: ConnectOptions = {}): Promise<Connections> {
  const conns = await Connections.open(url, opts)
  t.after(() => conns.close())
  return conns
}

const HANG_UP: Answer = { frames: [], hangUp: true }
const answered = (...frames: Frame[]): Answer => ({ frames })

describe('request', () => {
  test('a repeatable request is sent again on a new connection when its connection dies', async (t) => {
    const { url, lines } = await dyingServer(t, (req, nth) => (nth === 1 ? HANG_UP : answered(jsonFrame(FrameType.RESULT, req.id, 0, { path: 'a.bin', size: 9 }))))
    const conns = await open(t, url, { retryDelays: [10, 10] })
    const result = await request<StatResult>(conns, 'stat', { path: 'a.bin' })
    assert.equal(result.size, 9)
    assert.equal(linesOf(lines, 'stat').length, 2)
    assert.notEqual(lines[0].id, lines[1].id, 'each attempt is a request of its own')
  })

  test('one that changes the server is never sent twice: ECLOSED', async (t) => {
    const { url, lines } = await dyingServer(t, () => HANG_UP)
    const conns = await open(t, url, { retryDelays: [10, 10] })
    await assert.rejects(request(conns, 'evict', { path: 'a.bin' }), { code: 'ECLOSED' })
    assert.equal(linesOf(lines, 'evict').length, 1)
  })

  test('gives up once the retry delays are spent: one attempt more than there are delays', async (t) => {
    const { url, lines } = await dyingServer(t, () => HANG_UP)
    const conns = await open(t, url, { retryDelays: [10, 10, 10] })
    await assert.rejects(request(conns, 'ls', { path: '' }), { code: 'ECLOSED' })
    assert.equal(linesOf(lines, 'ls').length, 4)
  })

  test('an error the server answers with is not retried', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url, { retryDelays: [10] })
    await assert.rejects(request(conns, 'stat', { path: 'missing.bin' }), { code: 'ENOENT' })
  })

  test('PROGRESS frames go to onProgress, the RESULT resolves', async (t) => {
    const { url } = await dyingServer(t, (req) =>
      answered(
        jsonFrame(FrameType.PROGRESS, req.id, 0, { files: 1 }),
        jsonFrame(FrameType.PROGRESS, req.id, 1, { files: 2 }),
        jsonFrame(FrameType.RESULT, req.id, 2, { files: 3 }),
      ),
    )
    const conns = await open(t, url)
    const seen: unknown[] = []
    const result = await request<{ files: number }>(conns, 'warm', { path: '' }, (p) => seen.push(p))
    assert.deepEqual(seen, [{ files: 1 }, { files: 2 }])
    assert.deepEqual(result, { files: 3 })
  })

  test('after close(): rejected with ECLOSED, nothing sent', async (t) => {
    const { url, lines } = await dyingServer(t, (req) => answered(jsonFrame(FrameType.RESULT, req.id, 0, {})))
    const conns = await open(t, url)
    await conns.close()
    await assert.rejects(request(conns, 'stat', { path: 'a.bin' }), { code: 'ECLOSED', message: 'client closed' })
    assert.equal(lines.length, 0)
  })
})

describe('streamRequest', () => {
  /** Run a streamed request to its end: the bytes of its DATA, or its error. */
  function stream(conns: Connections, op: string, args: Record<string, unknown>): Promise<{ bytes: Buffer; error: Error | null }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = []
      streamRequest(conns, op, args, {
        info: () => {},
        data: (views) => {
          for (const v of views) chunks.push(Buffer.from(v))
          return true
        },
        end: () => resolve({ bytes: Buffer.concat(chunks), error: null }),
        fail: (error) => resolve({ bytes: Buffer.concat(chunks), error }),
      })
    })
  }

  test('delivers the stream of a real server\'s tree', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'd/a.bin', 3)
    writeFile(root, 'd/b.bin', 4)
    const conns = await open(t, url)
    const { bytes, error } = await stream(conns, 'tree', { path: 'd', stream: true })
    assert.equal(error, null)
    const files = bytes.toString().trim().split('\n').map((l) => JSON.parse(l) as { path: string; size: number })
    assert.deepEqual(files.map((f) => [f.path, f.size]), [['d/a.bin', 3], ['d/b.bin', 4]])
  })

  test('a failure because the connection died is marked retryable', async (t) => {
    const { url } = await dyingServer(t, () => HANG_UP)
    const conns = await open(t, url)
    const { error } = await stream(conns, 'tree', { path: '', stream: true })
    assert.equal((error as Error & { code?: string }).code, 'ECLOSED')
    assert.equal(isRetryable(error!), true)
  })

  test('an error the server answers with is not', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url)
    const { error } = await stream(conns, 'tree', { path: 'missing', stream: true })
    assert.equal((error as Error & { code?: string }).code, 'ENOENT')
    assert.equal(isRetryable(error!), false)
  })

  test('nor is a dead connection once the connections are closed', async (t) => {
    const { url } = await dyingServer(t, () => answered())
    const conns = await open(t, url)
    const ended = stream(conns, 'tree', { path: '', stream: true })
    await conns.close()
    const { error } = await ended
    assert.equal((error as Error & { code?: string }).code, 'ECLOSED')
    assert.equal(isRetryable(error!), false)
  })
})
