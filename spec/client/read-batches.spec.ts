/**
 * BatchReads, many files or ranges over the socket in readv batches: items
 * taken from a sync or async source a batch at a time (the items at hand go
 * out, the first is waited for), two batches on their way at most and none
 * while more than a batch of entries waits; entries yielded in order, an
 * error at its place; a batch whose connection died asked for its rest, as
 * the retry rule says; the connection held past highWater bytes untaken and
 * let go when the consumer leaves.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { Connections } from '../../lib/client/connections.js'
import { type BatchEntry, BatchReads, type SendBatch } from '../../lib/client/read-batches.js'
import { sendReadv } from '../../lib/client/readv.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { encodeEntryHeader, ENTRY_ERROR, ENTRY_FILE } from '../../lib/protocol/readv-entry.js'
import { type Answer, dyingServer, linesOf } from '../helpers/dying-server.js'
import { lazyPaths, writeFile } from '../helpers/fixtures.js'
import type { ScriptedRequest } from '../helpers/scripted-server.js'
import { startServer } from '../helpers/server.js'
import { poll, within } from '../helpers/wait.js'

async function open(t: Pick<TestContext, 'after'>, url: string): Promise<Connections> {
  const conns = await Connections.open(url, { retryDelays: [] })
  t.after(() => conns.close())
  return conns
}

/** readv over `conns`, counting the batches sent and the most on their way at once. */
function counted(conns: Connections) {
  const stats = { sent: 0, running: 0, most: 0 }
  const send: SendBatch = (items, onEntry, hold, onHeld) => {
    stats.sent++
    stats.most = Math.max(stats.most, ++stats.running)
    const batch = sendReadv(conns, items, onEntry, hold, onHeld)
    void batch.done.catch(() => {}).finally(() => stats.running--)
    return batch
  }
  return { stats, send }
}

async function collect(entries: AsyncIterable<BatchEntry>): Promise<{ got: BatchEntry[]; err: (Error & { code?: string }) | null }> {
  const got: BatchEntry[] = []
  try {
    for await (const e of entries) got.push(e)
    return { got, err: null }
  } catch (err) {
    return { got, err: err as Error }
  }
}

/** A readv answer whose entries are `entries` (a file's bytes, or an error entry's payload). */
function readvAnswer(req: ScriptedRequest, entries: { error?: string; bytes?: string }[], { hangUp = false } = {}): Answer {
  const stream = Buffer.concat(
    entries.flatMap((e, index) => {
      const body = Buffer.from(e.error ?? e.bytes ?? '')
      return [encodeEntryHeader({ index, kind: e.error === undefined ? ENTRY_FILE : ENTRY_ERROR, size: body.length, mtimeMs: 1, length: body.length }), body]
    }),
  )
  const frames: Frame[] = [jsonFrame(FrameType.START, req.id, 0, {}), { type: FrameType.DATA, id: req.id, seq: 1, payload: stream }]
  return hangUp ? { frames, hangUp } : { frames: [...frames, jsonFrame(FrameType.END, req.id, 2, { length: stream.length })] }
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `f${i}.bin`)

describe('BatchReads', () => {
  test('accepts any iterable of paths, taken lazily: two readv batches at a time', async (t) => {
    const { url, root } = await startServer(t)
    const paths = Array.from({ length: 30 }, (_, i) => `p/${i}.bin`)
    const data = new Map(paths.map((p, i) => [p, writeFile(root, p, 100 + i)]))
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    const lazy = lazyPaths(paths, 2000)
    const it = client.readMany(lazy.paths, { inFlight: 4 })[Symbol.asyncIterator]()
    const first = await it.next()
    assert.equal(first.done, false)
    assert.ok(first.value!.data.equals(data.get(paths[0])!))
    // Two readv batches of 256 paths.
    assert.ok(lazy.taken() <= 512, `took ${lazy.taken()} paths for one file with inFlight 4`)
    await it.return(undefined)
  })

  test('long paths go out in batches whose request lines the server takes', async (t) => {
    const { url, root } = await startServer(t)
    const dir = 'd'.repeat(200) + '/' + 'e'.repeat(200)
    const data = Array.from({ length: 400 }, (_, i) => writeFile(root, `${dir}/${String(i).padStart(200, '0')}.bin`, 10 + i))
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    let i = 0
    for await (const { data: bytes } of client.readMany(data.map((_, k) => `${dir}/${String(k).padStart(200, '0')}.bin`))) assert.ok(bytes.equals(data[i++]))
    assert.equal(i, data.length)
  })

  test('a consumer that stops while the connection is held for its entries leaves the connection working', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 256 * 1024 * 1024 })
    const big = Array.from({ length: 40 }, (_, i) => writeFile(root, `big/${i}.bin`, 2 * 1024 * 1024 + i))
    const small = writeFile(root, 'small.bin', 100)
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    for await (const { data } of client.readMany(big.map((_, i) => `big/${i}.bin`))) {
      assert.ok(data.equals(big[0]))
      // More than 32 MiB of entries arrive untaken meanwhile: the client holds the connection.
      await new Promise((r) => setTimeout(r, 300))
      break
    }
    assert.equal(await within(client.readFile('small.bin').then((d) => assert.ok(d.equals(small))), 5000), true, 'a read after it is answered')
  })

  test('an async source that makes it wait: the items at hand go out at once, the rest as they come', async (t) => {
    const { url, root } = await startServer(t)
    for (let i = 0; i < 6; i++) writeFile(root, `f${i}.bin`, 100 + i)
    const client = await connect(url)
    t.after(() => client.close())
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    async function* items() {
      yield 'f0.bin'
      yield 'f1.bin'
      await gate // the rest of the list is not written yet
      for (let i = 2; i < 6; i++) yield `f${i}.bin`
    }
    const entries = client.readEntries(items())
    const next = entries.next()
    assert.ok(await within(next, 5000), 'the first entry came before the list went on')
    assert.equal((await next).value?.path, 'f0.bin')
    release()
    const rest: string[] = []
    for await (const e of entries) rest.push(e.path)
    assert.deepEqual(rest, ['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin', 'f5.bin'])
  })

  test('a source that throws ends the entries with its error, after the items before it', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'x.bin', 10)
    const client = await connect(url)
    t.after(() => client.close())
    async function* items() {
      yield 'x.bin'
      await new Promise((resolve) => setTimeout(resolve, 20))
      throw new Error('the list broke')
    }
    const got: string[] = []
    await assert.rejects(async () => {
      for await (const e of client.readEntries(items())) got.push(e.path)
    }, /the list broke/)
    assert.deepEqual(got, ['x.bin'])
  })

  test('two batches on their way at most; none more while more than a batch of entries waits untaken', async (t) => {
    const { url, root } = await startServer(t)
    const files = names(40).map((p, i) => writeFile(root, p, 50 + i))
    const conns = await open(t, url)
    const { stats, send } = counted(conns)
    const it = new BatchReads(send, () => null).read(names(40), { batch: 4 })[Symbol.asyncIterator]()
    assert.ok((await it.next()).value?.data.equals(files[0]))
    // Seven entries of eight sent wait here: more than a batch, so the source is left alone.
    assert.equal(await poll(() => stats.sent > 2, 300), false, `${stats.sent} batches sent`)
    await it.return(undefined)
    const { got, err } = await collect(new BatchReads(send, () => null).read(names(40), { batch: 4 }))
    assert.equal(err, null)
    assert.deepEqual(got.map((e) => e.path), names(40))
    assert.ok(stats.most <= 2, `${stats.most} batches at once`)
  })

  test('a batch counts as on its way until it ends: with two unended, no third goes out however many entries were taken', async (t) => {
    // Every entry of each batch, but no END: both batches stay on their way.
    const { url, lines } = await dyingServer(t, (req) => ({ frames: readvAnswer(req, (req.paths as string[]).map((p) => ({ bytes: p }))).frames.slice(0, 2) }))
    const conns = await open(t, url)
    const it = new BatchReads((items, ...rest) => sendReadv(conns, items, ...rest), () => null).read(names(40), { batch: 4 })[Symbol.asyncIterator]()
    for (const p of names(6)) assert.equal((await it.next()).value?.path, p)
    assert.equal(await poll(() => linesOf(lines, 'readv').length > 2, 300), false, `${linesOf(lines, 'readv').length} batches sent`)
    await it.return(undefined)
  })

  test('an item too long for a request line fails at its place with ETOOBIG, and is never sent', async (t) => {
    const { url, lines } = await dyingServer(t, (req) => readvAnswer(req, (req.paths as string[]).map((p) => ({ bytes: p }))))
    const conns = await open(t, url)
    const long = `x/${'y'.repeat(40_000)}`
    const it = new BatchReads((items, ...rest) => sendReadv(conns, items, ...rest), () => null).read(['a', long, 'b'], { batch: 8 })[Symbol.asyncIterator]()
    assert.equal((await it.next()).value?.path, 'a')
    await assert.rejects(it.next(), { code: 'ETOOBIG', message: /more than a readv request line takes \(32768\)/ })
    assert.ok(linesOf(lines, 'readv').every((l) => !(l.paths as string[]).includes(long)))
  })

  const ERRORS: [string, { code: string; message: string | RegExp }][] = [
    ['{"code":"EACCES","message":"outside"}', { code: 'EACCES', message: 'outside' }],
    ['{"code":"EWHAT"}', { code: 'EIO', message: 'e: read failed' }],
    ['not json', { code: 'EPROTO', message: 'readv: the error entry of e is not JSON' }],
  ]
  for (const [payload, expected] of ERRORS) {
    test(`an error entry fails at its place: ${payload} is ${expected.code}`, async (t) => {
      const { url } = await dyingServer(t, (req) => readvAnswer(req, [{ bytes: 'ok' }, { error: payload }]))
      const conns = await open(t, url)
      const it = new BatchReads((items, ...rest) => sendReadv(conns, items, ...rest), () => null).read(['a', 'e'], { batch: 4 })[Symbol.asyncIterator]()
      assert.equal((await it.next()).value?.data.toString(), 'ok')
      await assert.rejects(it.next(), expected)
    })
  }

  test('batches fit the server\'s request lines: a server taking lines of 16 KiB reads a list of long paths', async (t) => {
    const { url, root } = await startServer(t, { maxRequest: 16 * 1024 })
    const paths = Array.from({ length: 300 }, (_, i) => `${'d'.repeat(100)}/${String(i).padStart(100, '0')}.bin`)
    const data = paths.map((p, i) => writeFile(root, p, 10 + i))
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    const { got, err } = await collect(client.readEntries(paths))
    assert.equal(err, null)
    assert.deepEqual(got.map((e) => e.path), paths)
    got.forEach((e, i) => assert.ok(e.data.equals(data[i]), e.path))
  })

  test('an item longer than half the server\'s request line fails at its place with ETOOBIG; the connection goes on', async (t) => {
    const { url, root } = await startServer(t, { maxRequest: 4096 })
    writeFile(root, 'a.bin', 10)
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    const long = `x/${'y'.repeat(3000)}`
    const it = client.readEntries(['a.bin', long, 'a.bin'])[Symbol.asyncIterator]()
    assert.equal((await it.next()).value?.path, 'a.bin')
    await assert.rejects(it.next(), { code: 'ETOOBIG', message: /more than a readv request line takes \(2048\)/ })
    assert.equal((await client.readFile('a.bin')).length, 10)
  })

  test('a batch whose connection died is asked for its rest after the delay retry gives; an attempt that brought entries starts the count again', async (t) => {
    // f0 then a hang-up; nothing then a hang-up; f1 then a hang-up; then the rest.
    const { url, lines } = await dyingServer(t, (req, nth) => {
      const paths = req.paths as string[]
      if (nth === 2) return { frames: [], hangUp: true }
      return readvAnswer(req, (nth === 4 ? paths : paths.slice(0, 1)).map((p) => ({ bytes: p })), { hangUp: nth < 4 })
    })
    const conns = await open(t, url)
    const asked: [string | undefined, number][] = []
    const retry = (err: Error & { code?: string }, attempt: number) => (asked.push([err.code, attempt]), 5)
    const { got, err } = await collect(new BatchReads((items, ...rest) => sendReadv(conns, items, ...rest), retry).read(names(4), { batch: 4 }))
    assert.equal(err, null)
    assert.deepEqual(got.map((e) => e.data.toString()), names(4))
    assert.deepEqual(asked, [['ECLOSED', 0], ['ECLOSED', 1], ['ECLOSED', 0]])
    assert.deepEqual(linesOf(lines, 'readv').map((l) => l.paths), [names(4), names(4).slice(1), names(4).slice(1), names(4).slice(2)])
  })

  test('when retry says no, every entry not received fails with that error at its place', async (t) => {
    const { url } = await dyingServer(t, (req) => readvAnswer(req, [{ bytes: 'first' }], { hangUp: true }))
    const conns = await open(t, url)
    const it = new BatchReads((items, ...rest) => sendReadv(conns, items, ...rest), () => null).read(names(3), { batch: 3 })[Symbol.asyncIterator]()
    assert.equal((await it.next()).value?.data.toString(), 'first')
    await assert.rejects(it.next(), { code: 'ECLOSED' })
  })

  test('a consumer that leaves early closes an async source', async (t) => {
    const { url, root } = await startServer(t)
    for (const p of names(3)) writeFile(root, p, 10)
    const conns = await open(t, url)
    let closed = false
    async function* items() {
      try {
        // A list with no end, each path after a turn of the event loop.
        for (let i = 0; ; i++) {
          await new Promise((resolve) => setImmediate(resolve))
          yield names(3)[i % 3]
        }
      } finally {
        closed = true
      }
    }
    for await (const e of new BatchReads((list, ...rest) => sendReadv(conns, list, ...rest), () => null).read(items(), { batch: 8 })) {
      assert.equal(e.path, 'f0.bin')
      break
    }
    assert.ok(await poll(() => closed, 2000), 'the source was closed')
    assert.ok(await poll(() => conns.pending === 0, 2000), 'no request left running')
  })
})
