/**
 * A read that outlives its connection (lib/client/resumable-read.ts): the
 * rest of it asked for on the next connection, from the same version of the
 * file; the retry delays counted again after an attempt that brought bytes;
 * release() while it waits to try again; and its three consumers, against a
 * real server.
 */
import assert from 'node:assert/strict'
import { constants as bufferConstants } from 'node:buffer'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { Connections } from '../../lib/client/connections.js'
import type { ReadInfo } from '../../lib/client/read-receiver.js'
import { readBuffer, readChunks, readStream, resumableRead } from '../../lib/client/resumable-read.js'
import type { ConnectOptions } from '../../lib/client/types.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { type Answer, dyingServer, linesOf } from '../helpers/dying-server.js'
import { writeFile } from '../helpers/fixtures.js'
import { drain } from '../helpers/outcome.js'
import { startServer } from '../helpers/server.js'
import { poll } from '../helpers/wait.js'

async function open(t: TestContext, url: string, opts: ConnectOptions = {}): Promise<Connections> {
  const conns = await Connections.open(url, opts)
  t.after(() => conns.close())
  return conns
}

const start = (id: number, info: ReadInfo): Frame => jsonFrame(FrameType.START, id, 0, info)
const data = (id: number, seq: number, text: string): Frame => ({ type: FrameType.DATA, id, seq, payload: Buffer.from(text) })
const end = (id: number, seq: number, length: number): Frame => jsonFrame(FrameType.END, id, seq, { length })

/** An attempt of a read of FILE from `offset` that sends `text` and then, unless `last`, hangs up. */
function attempt(id: number, offset: number, text: string, { last = false, mtimeMs = 5 } = {}): Answer {
  const frames = [start(id, { size: FILE.length, offset, length: FILE.length - offset, mtimeMs }), data(id, 1, text)]
  return last ? { frames: [...frames, end(id, 2, text.length)] } : { frames, hangUp: true }
}

const FILE = 'helloworld'

describe('resumableRead', () => {
  test('a read whose connection died asks for the rest only, and no byte arrives twice', async (t) => {
    const { url, lines } = await dyingServer(t, (req, nth) => (nth === 1 ? attempt(req.id, 0, 'hello') : attempt(req.id, 5, 'world', { last: true })))
    const conns = await open(t, url, { retryDelays: [10] })
    assert.equal((await readBuffer(conns, 'f.txt', {})).toString(), FILE)
    const reads = linesOf(lines, 'read')
    assert.equal(reads.length, 2)
    assert.deepEqual([reads[1].offset, reads[1].length], [5, 5])
  })

  test('the rest from another version of the file: ECHANGED, after the bytes of the first', async (t) => {
    const { url } = await dyingServer(t, (req, nth) => (nth === 1 ? attempt(req.id, 0, 'hello') : attempt(req.id, 5, 'WORLD', { last: true, mtimeMs: 6 })))
    const conns = await open(t, url, { retryDelays: [10] })
    const pieces: Buffer[] = []
    await assert.rejects(
      readChunks(conns, 'f.txt', (c) => pieces.push(Buffer.from(c)), {}),
      (err: Error & { code?: string }) => err.code === 'ECHANGED' && /mtime 5 before.*mtime 6 now/.test(err.message),
    )
    assert.equal(Buffer.concat(pieces).toString(), 'hello')
  })

  test('an attempt that brought bytes starts the count of retry delays again', async (t) => {
    // One delay only, yet three attempts: each of the first two delivered something.
    const { url, lines } = await dyingServer(t, (req, nth) => [attempt(req.id, 0, 'hel'), attempt(req.id, 3, 'low'), attempt(req.id, 6, 'orld', { last: true })][nth - 1])
    const conns = await open(t, url, { retryDelays: [10] })
    assert.equal((await readBuffer(conns, 'f.txt', {})).toString(), FILE)
    assert.deepEqual(linesOf(lines, 'read').map((l) => l.offset ?? 0), [0, 3, 6])
  })

  test('attempts that bring nothing spend the delays: ECLOSED after one more than there are', async (t) => {
    const { url, lines } = await dyingServer(t, () => ({ frames: [], hangUp: true }))
    const conns = await open(t, url, { retryDelays: [10, 10] })
    await assert.rejects(readBuffer(conns, 'f.txt', {}), { code: 'ECLOSED' })
    assert.equal(linesOf(lines, 'read').length, 3)
  })

  test('released while it waits to try again: no new attempt, and the sink hears nothing more', async (t) => {
    const { url, lines } = await dyingServer(t, () => ({ frames: [], hangUp: true }))
    const conns = await open(t, url, { retryDelays: [150] })
    const failures: Error[] = []
    const handle = resumableRead(conns, 'f.txt', {}, { info: () => {}, data: () => true, end: () => {}, fail: (err) => failures.push(err) })
    assert.ok(await poll(() => conns.link.ended !== null), 'the connection died under the read')
    handle.release()
    await sleep(300)
    assert.equal(linesOf(lines, 'read').length, 1)
    assert.deepEqual(failures, [])
  })

  test('the handle shows what START announced', async (t) => {
    const { url } = await dyingServer(t, (req) => attempt(req.id, 0, FILE, { last: true }))
    const conns = await open(t, url)
    let ended!: () => void
    const done = new Promise<void>((resolve) => (ended = resolve))
    const handle = resumableRead(conns, 'f.txt', {}, { info: () => {}, data: () => true, end: () => ended(), fail: () => {} })
    assert.equal(handle.info, null)
    await done
    assert.deepEqual(handle.info, { size: 10, offset: 0, length: 10, mtimeMs: 5 })
    assert.equal(handle.nacks, 0)
  })
})

describe('the consumers of a read, against a real server', () => {
  test('readStream: exactly the range asked for', async (t) => {
    const { url, root } = await startServer(t)
    const file = writeFile(root, 'a.bin', 300_000)
    const conns = await open(t, url)
    const { bytes, error } = await drain(readStream(conns, 'a.bin', { offset: 1000, length: 200_000 }))
    assert.equal(error, null)
    assert.ok(bytes.equals(file.subarray(1000, 201_000)))
  })

  test('readStream once the connections are closed: a stream that fails with ECLOSED', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url)
    await conns.close()
    const { error } = await drain(readStream(conns, 'a.bin', {}))
    assert.equal((error as Error & { code?: string })?.code, 'ECLOSED')
  })

  test('readBuffer: the whole file in one Buffer', async (t) => {
    const { url, root } = await startServer(t)
    const file = writeFile(root, 'a.bin', 700_000)
    const conns = await open(t, url)
    assert.ok((await readBuffer(conns, 'a.bin', {})).equals(file))
  })

  test('readBuffer of more than one Buffer holds: ETOOBIG, and the server is told to stop', { skip: !Number.isSafeInteger(bufferConstants.MAX_LENGTH + 1) && 'no length above MAX_LENGTH to announce' }, async (t) => {
    const huge = bufferConstants.MAX_LENGTH + 1
    const { url, lines } = await dyingServer(t, (req) => ({ frames: req.op === 'read' ? [start(req.id, { size: huge, offset: 0, length: huge, mtimeMs: 0 })] : [] }))
    const conns = await open(t, url)
    await assert.rejects(readBuffer(conns, 'huge.bin', {}), { code: 'ETOOBIG' })
    assert.ok(await poll(() => linesOf(lines, 'cancel').length === 1), JSON.stringify(lines))
  })

  test('readChunks: every piece in order, and what START announced', async (t) => {
    const { url, root } = await startServer(t)
    const file = writeFile(root, 'a.bin', 900_000)
    const conns = await open(t, url)
    const pieces: Buffer[] = []
    const info = await readChunks(conns, 'a.bin', (c) => pieces.push(Buffer.from(c)), { offset: 10 })
    assert.equal(info.length, file.length - 10)
    assert.equal(info.size, file.length)
    assert.ok(Buffer.concat(pieces).equals(file.subarray(10)))
  })

  test('readChunks whose onChunk throws ends with that error', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.bin', 900_000)
    const conns = await open(t, url)
    const boom = new Error('stdout closed')
    await assert.rejects(readChunks(conns, 'a.bin', () => { throw boom }, {}), (err) => err === boom)
    assert.ok(await poll(() => conns.pending === 0))
  })
})
