/**
 * treeFiles: the files of a streamed `tree`, as the consumer takes them. The
 * connection is held while more than 65,536 parsed files wait untaken and
 * resumed once half are taken; files before a failure are given before it;
 * a request the consumer leaves early is released, one the server ended is
 * not. Over a real server, lines cut across frames come out whole.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { TreeFile } from '../../lib/client/client.js'
import type { ReadSink } from '../../lib/client/read-receiver.js'
import { treeFiles } from '../../lib/client/tree-stream.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { writeFile } from '../helpers/fixtures.js'
import { rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'

const HIGH_WATER = 65_536

/** `n` lines of the stream from file `from` on. */
const lines = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => `${JSON.stringify({ path: `f/${from + i}`, size: from + i })}\n`).join(''))
const file = (i: number): TreeFile => ({ path: `f/${i}`, size: i })

/** treeFiles over a sink the test feeds as the client's receiver would; the request is opened by the first next(). */
function fed() {
  let sink: ReadSink | null = null
  let releases = 0
  const files = treeFiles((s) => {
    sink = s
    return { release: () => void releases++ }
  })
  const first = files.next()
  assert.ok(sink, 'the first next() opens the request')
  return { files, first, sink: sink as ReadSink, releases: () => releases }
}

describe('treeFiles', () => {
  test('holds the connection past 65,536 untaken files and resumes it once half of them are taken', async () => {
    const { files, first, sink } = fed()
    let taken = 0
    const untakenAtResume: number[] = []
    const answers: boolean[] = []
    for (let k = 0; k < HIGH_WATER / 1024; k++) answers.push(sink.data([lines(k * 1024, 1024)], () => untakenAtResume.push(HIGH_WATER - taken)))
    assert.ok(answers.slice(0, -1).every((more) => more), 'taken as they come, up to the mark')
    assert.equal(answers.at(-1), false, 'held at the mark')
    assert.deepEqual((await first).value, file(0))
    taken = 1
    for (; taken < HIGH_WATER; taken++) assert.deepEqual((await files.next()).value, file(taken))
    assert.equal(untakenAtResume.length, 1, 'resumed once')
    assert.ok(untakenAtResume[0] <= HIGH_WATER / 2 && untakenAtResume[0] > HIGH_WATER / 4, `resumed with ${untakenAtResume[0]} files untaken`)
    sink.end()
    assert.equal((await files.next()).done, true)
  })

  test('a consumer that leaves while the connection is held resumes it, ended or not: the connection is shared', async () => {
    for (const endFirst of [true, false]) {
      const { files, first, sink } = fed()
      let resumed = 0
      let more = true
      for (let k = 0; k < HIGH_WATER / 1024; k++) more = sink.data([lines(k * 1024, 1024)], () => void resumed++)
      assert.equal(more, false, 'held at the mark')
      if (endFirst) sink.end() // END in the same read as the last DATA
      await first
      await files.return()
      assert.equal(resumed, 1, `resumed once after leaving (${endFirst ? 'ended' : 'still running'})`)
    }
  })

  test('a stream the server ended is not released; one left early or failed is', async () => {
    const ended = fed()
    ended.sink.data([lines(0, 2)], () => {})
    ended.sink.end()
    assert.deepEqual((await ended.first).value, file(0))
    assert.deepEqual((await ended.files.next()).value, file(1))
    assert.equal((await ended.files.next()).done, true)
    assert.equal(ended.releases(), 0)

    const left = fed()
    left.sink.data([lines(0, 5)], () => {})
    await left.first
    await left.files.return()
    assert.equal(left.releases(), 1, 'the server is told to stop')

    const failed = fed()
    failed.sink.fail(new Error('connection reset'))
    await assert.rejects(failed.first, /connection reset/)
    assert.equal(failed.releases(), 1)
  })

  test('the files before a failure come first, then the failure itself', async () => {
    const { files, first, sink } = fed()
    const reset = Object.assign(new Error('connection reset'), { code: 'ECLOSED' })
    // The arrival ends inside a line: that line never becomes a file.
    sink.data([lines(0, 2), Buffer.from('{"path":"f/2"')], () => {})
    sink.fail(reset)
    assert.deepEqual((await first).value, file(0))
    assert.deepEqual((await files.next()).value, file(1))
    await assert.rejects(files.next(), (err) => err === reset)
    assert.equal((await files.next()).done, true)
  })

  test('a stream that ends inside a line fails with EPROTO, after the whole lines before it', async () => {
    const { files, first, sink, releases } = fed()
    sink.data([lines(0, 3), Buffer.from('{"path":"f/3","si')], () => {})
    sink.end()
    assert.deepEqual((await first).value, file(0))
    assert.deepEqual((await files.next()).value, file(1))
    assert.deepEqual((await files.next()).value, file(2))
    await assert.rejects(files.next(), { code: 'EPROTO' })
    assert.equal(releases(), 1, 'failed, though ended: released like any failure')
  })
})

describe('a streamed tree over a real server', () => {
  test('pages of 1 KiB cut lines and characters, yet every file comes whole and in order; leaving early keeps the client usable', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 1024 })
    for (let i = 0; i < 300; i++) writeFile(root, `ü${i % 7}/名前-${String(i).padStart(3, '0')}.bin`, i % 13)
    // The premise: the stream's DATA frames end inside lines, and one inside a character.
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'tree', stream: true })
    await peer.done(1)
    const data = peer.frames.filter((f) => f.id === 1 && f.type === FrameType.DATA).map((f) => f.payload)
    assert.ok(data.some((p) => p.at(-1) !== 0x0a), 'a frame ends inside a line')
    assert.ok(data.some((p) => (p[0] & 0xc0) === 0x80), 'a frame starts with the rest of a character')
    const client = await connectTo(t, url)
    const expected: TreeFile[] = []
    for await (const f of client.tree('', { pageSize: 1000 })) expected.push(f)
    assert.equal(expected.length, 300)
    const streamed: TreeFile[] = []
    for await (const f of client.tree()) streamed.push(f)
    assert.deepEqual(streamed, expected)
    let n = 0
    for await (const _ of client.tree()) if (++n === 3) break
    assert.equal((await client.stat(expected[0].path)).size, expected[0].size)
  })
})
