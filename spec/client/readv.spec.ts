/**
 * readEntries over a client's connections (lib/client/readv.ts): items in
 * readv batches of the size asked for, a batch whose connection died asked
 * for again from its first entry not received whole, a stream that ends
 * inside an entry refused, bad options refused before anything is sent; and
 * one readv request on its own (sendReadv): entries, holding, cancel.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { describe, test } from 'node:test'
import { Connections } from '../../lib/client/connections.js'
import type { BatchEntry } from '../../lib/client/read-batches.js'
import { readEntries, sendReadv } from '../../lib/client/readv.js'
import type { ConnectOptions } from '../../lib/client/types.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { encodeEntryHeader, ENTRY_FILE, type Entry } from '../../lib/protocol/readv-entry.js'
import { type Answer, dyingServer, linesOf } from '../helpers/dying-server.js'
import type { ScriptedRequest } from '../helpers/scripted-server.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { poll } from '../helpers/wait.js'

async function open(t: TestContext, url: string, opts: ConnectOptions = {}): Promise<Connections> {
  const conns = await Connections.open(url, opts)
  t.after(() => conns.close())
  return conns
}

/** The readv stream of entries for `paths`: each file's bytes are its own name. */
function entries(paths: string[]): Buffer {
  return Buffer.concat(paths.flatMap((p, index) => [encodeEntryHeader({ index, kind: ENTRY_FILE, size: p.length, mtimeMs: 1, length: p.length }), Buffer.from(p)]))
}

/** A readv's answer: START, its stream cut to `bytes` (all of it by default), then END, or with `hangUp` the connection ended instead. */
function readv(req: ScriptedRequest, { bytes, hangUp = false }: { bytes?: number; hangUp?: boolean } = {}): Answer {
  const stream = entries(req.paths as string[]).subarray(0, bytes)
  const frames: Frame[] = [jsonFrame(FrameType.START, req.id, 0, {}), { type: FrameType.DATA, id: req.id, seq: 1, payload: stream }]
  if (hangUp) return { frames, hangUp }
  return { frames: [...frames, jsonFrame(FrameType.END, req.id, 2, { length: stream.length })] }
}

async function collect(gen: AsyncIterable<BatchEntry>): Promise<{ got: BatchEntry[]; err: (Error & { code?: string }) | null }> {
  const got: BatchEntry[] = []
  try {
    for await (const e of gen) got.push(e)
    return { got, err: null }
  } catch (err) {
    return { got, err: err as Error }
  }
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `f${i}`)

describe('readEntries', () => {
  test('sends the items in readv requests of `batch` paths and yields their entries in order', async (t) => {
    const { url, lines } = await dyingServer(t, (req) => readv(req))
    const conns = await open(t, url)
    const { got, err } = await collect(readEntries(conns, names(5), { batch: 2 }))
    assert.equal(err, null)
    assert.deepEqual(got.map((e) => [e.path, e.data.toString(), e.size, e.mtimeMs]), names(5).map((p) => [p, p, p.length, 1]))
    assert.deepEqual(linesOf(lines, 'readv').map((l) => l.paths), [['f0', 'f1'], ['f2', 'f3'], ['f4']])
  })

  test('a batch whose connection died is asked for again from its first entry not received whole', async (t) => {
    // The first answer carries f0 whole and half of f1's header.
    const { url, lines } = await dyingServer(t, (req, nth) => (nth === 1 ? readv(req, { bytes: 32 + 2 + 16, hangUp: true }) : readv(req)))
    const conns = await open(t, url, { retryDelays: [10] })
    const { got, err } = await collect(readEntries(conns, names(3), { batch: 3 }))
    assert.equal(err, null)
    assert.deepEqual(got.map((e) => e.data.toString()), names(3))
    assert.deepEqual(linesOf(lines, 'readv').map((l) => l.paths), [names(3), ['f1', 'f2']])
  })

  test('without retry delays the dead connection fails the entry the consumer waits for: ECLOSED', async (t) => {
    const { url } = await dyingServer(t, (req) => readv(req, { bytes: 32 + 2, hangUp: true }))
    const conns = await open(t, url, { retryDelays: [] })
    const { got, err } = await collect(readEntries(conns, names(3), { batch: 3 }))
    assert.deepEqual(got.map((e) => e.path), ['f0'])
    assert.equal(err?.code, 'ECLOSED')
  })

  test('a stream that ends inside an entry: EPROTO', async (t) => {
    const { url } = await dyingServer(t, (req) => readv(req, { bytes: 32 + 2 + 5 }))
    const conns = await open(t, url)
    const { got, err } = await collect(readEntries(conns, names(2), { batch: 2 }))
    assert.deepEqual(got.map((e) => e.path), ['f0'])
    assert.equal(err?.code, 'EPROTO')
    assert.match(err!.message, /ended inside an entry/)
  })

  test('a bad batch or highWater fails the first next() with EBADREQ, and nothing is sent', async (t) => {
    const { url, lines } = await dyingServer(t, (req) => readv(req))
    const conns = await open(t, url)
    for (const opts of [{ batch: 0 }, { batch: 1.5 }, { highWater: -1 }, { highWater: Number.NaN }]) {
      const { got, err } = await collect(readEntries(conns, ['f0'], opts))
      assert.deepEqual(got, [])
      assert.equal(err?.code, 'EBADREQ', JSON.stringify(opts))
    }
    assert.equal(lines.length, 0)
  })

  test('over a real server: files and ranges with their sizes, a missing file rejecting at its place', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 5000)
    const b = writeFile(root, 'b.bin', 300)
    const conns = await open(t, url)
    const { got, err } = await collect(readEntries(conns, ['a.bin', { path: 'b.bin', offset: 100, length: 50 }, 'missing.bin', 'a.bin']))
    assert.deepEqual(got.map((e) => [e.path, e.size]), [['a.bin', 5000], ['b.bin', 300]])
    assert.ok(got[0].data.equals(a))
    assert.ok(got[1].data.equals(b.subarray(100, 150)))
    assert.equal(err?.code, 'ENOENT')
  })
})

describe('sendReadv', () => {
  test('hands each entry on whole, and settles when the stream ends', async (t) => {
    const { url } = await dyingServer(t, (req) => readv(req))
    const conns = await open(t, url)
    const got: Entry[] = []
    const { done } = sendReadv(conns, ['x', 'yy'], (e) => got.push(e), () => false, () => assert.fail('not held'))
    await done
    assert.deepEqual(got.map((e) => [e.header.index, e.body.toString()]), [[0, 'x'], [1, 'yy']])
  })

  test('asks to hold the connection after a piece when hold() says so, with the function that resumes it', async (t) => {
    const { url } = await dyingServer(t, (req) => readv(req))
    const conns = await open(t, url)
    let resume: (() => void) | null = null
    const { done } = sendReadv(conns, ['x'], () => {}, () => true, (r) => (resume = r))
    assert.ok(await poll(() => resume !== null), 'held after the first piece')
    resume!()
    await done
  })

  test('cancel() tells the server to stop that request', async (t) => {
    const { url, lines } = await dyingServer(t, () => ({ frames: [] }))
    const conns = await open(t, url)
    const { cancel } = sendReadv(conns, ['x'], () => {}, () => false, () => {})
    assert.ok(await poll(() => linesOf(lines, 'readv').length === 1))
    cancel()
    assert.ok(await poll(() => linesOf(lines, 'cancel').length === 1))
    assert.equal(linesOf(lines, 'cancel')[0].id, linesOf(lines, 'readv')[0].id)
    assert.equal(conns.pending, 0)
  })
})
