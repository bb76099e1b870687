/**
 * Deadlines that keep slow and hostile clients from holding connection
 * slots, over real sockets, with short deadlines: a request line trickled in
 * is cut off, a connection that sends only blank lines and reads nothing is
 * dropped, an unauthenticated one is closed, a wrong token is answered only
 * after a delay. And what must go on working: a slow but steady reader, a
 * slow but steady uploader. Plus a NACK whose resend would run past the last
 * seq, which fails its request and not the connection.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { checksumId } from '../../lib/protocol/checksum.js'
import { FrameType, MAX_ID } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import { encodeFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'
import { poll, within } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB

const portOf = (url: string) => Number(/:(\d+)$/.exec(url)![1])
const errorsOn0 = (frames: ReceivedFrame[]) => frames.filter((f) => f.id === 0 && f.type === FrameType.ERROR).map((f) => json(f).code)

/** A peer that sends `bytes` one at a time, every `everyMs`, until closed; it reads (and decodes) what comes. */
async function trickler(t: { after: (fn: () => void) => void }, url: string, bytes: string, everyMs: number) {
  const socket = net.connect({ host: '127.0.0.1', port: portOf(url) })
  const frames: ReceivedFrame[] = []
  const decoder = new FrameDecoder({ onFrame: (f) => void frames.push(f), onInvalid: () => {} })
  socket.on('data', (c: Buffer) => decoder.write(c))
  socket.on('error', () => {})
  const closed = once(socket, 'close').then(() => {})
  await once(socket, 'connect')
  let i = 0
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) return clearInterval(timer)
    socket.write(bytes[i++ % bytes.length])
  }, everyMs)
  t.after(() => {
    clearInterval(timer)
    socket.destroy()
  })
  return { socket, frames, closed }
}

describe('request deadline', () => {
  test('20 clients trickling request lines at the connection limit do not keep a client out past the deadline', async (t) => {
    const { server, url, root } = await startServer(t, { maxConnections: 20, requestTimeout: 300 })
    const data = writeFile(root, 'a.bin', 5000)
    // Never a whole line: one byte every 50 ms of a line that does not end.
    const slow = await Promise.all(Array.from({ length: 20 }, () => trickler(t, url, '{"id":1,"op":"stat","path":"a.bin","pad":"' + 'x'.repeat(200), 50)))
    assert.ok(await poll(() => server.stats().connections === 20), 'all 20 slots are taken')
    await assert.rejects(connect(url), { code: 'EBUSY' }, 'at the limit, a client is refused')
    // Once the deadline has passed, the slots are free again.
    for (const s of slow) assert.ok(await within(s.closed, 10_000), 'a trickling client was closed')
    for (const s of slow) assert.deepEqual(errorsOn0(s.frames), ['ETIMEDOUT'])
    const client = await connect(url)
    t.after(() => client.close())
    assert.ok((await client.readFile('a.bin')).equals(data))
  })

  test('a connection that sends no request, or only blank lines, is closed with ETIMEDOUT', async (t) => {
    const { url } = await startServer(t, { requestTimeout: 300 })
    const silent = await rawPeer(t, url)
    const blank = await trickler(t, url, '\n', 50)
    assert.ok(await within(silent.closed, 10_000), 'the silent connection was closed')
    assert.deepEqual(errorsOn0(silent.frames), ['ETIMEDOUT'])
    assert.ok(await within(blank.closed, 10_000), 'the blank-line connection was closed')
    assert.deepEqual(errorsOn0(blank.frames), ['ETIMEDOUT'])
  })

  test('requests spread over time, each line whole, are served past the deadline', async (t) => {
    const { url, root } = await startServer(t, { requestTimeout: 300 })
    writeFile(root, 'a.bin', 10)
    const peer = await rawPeer(t, url)
    for (let id = 1; id <= 4; id++) {
      await sleep(200)
      peer.send({ id, op: 'stat', path: 'a.bin' })
      assert.equal((await peer.done(id)).type, FrameType.RESULT)
    }
    assert.deepEqual(errorsOn0(peer.frames), [])
  })
})

describe('idle: a connection must send requests or take its answers', () => {
  test('a client sending a blank line every 50 ms and never reading is dropped', async (t) => {
    const { server, url } = await startServer(t, { idleTimeout: 400, requestTimeout: 60_000 })
    const socket = net.connect({ host: '127.0.0.1', port: portOf(url) })
    t.after(() => void socket.destroy())
    socket.on('error', () => {})
    socket.pause() // never reads
    await once(socket, 'connect')
    socket.write(JSON.stringify({ id: 1, op: 'ls' }) + '\n')
    const timer = setInterval(() => socket.writable && socket.write('\n'), 50)
    t.after(() => clearInterval(timer))
    assert.ok(await poll(() => server.stats().connections === 1))
    assert.ok(await poll(() => server.stats().connections === 0, 10_000), 'the server dropped the connection')
  })

  test('a reader taking a large read slowly but steadily is not dropped', async (t) => {
    // Timeouts well above the reader's 40 ms steps, so a loaded machine's pauses are not taken for idleness.
    const { url, root } = await startServer(t, { idleTimeout: 800, requestTimeout: 800 })
    const data = writeFile(root, 'big.bin', 4 * MiB)
    const peer = await rawPeer(t, url)
    peer.socket.pause()
    peer.send({ id: 1, op: 'read', path: 'big.bin' })
    // A few dozen KiB every 40 ms: the read takes many idle timeouts.
    const timer = setInterval(() => {
      peer.socket.resume()
      setImmediate(() => peer.socket.pause())
    }, 40)
    t.after(() => clearInterval(timer))
    const end = await peer.done(1)
    clearInterval(timer)
    peer.socket.resume()
    assert.equal(end.type, FrameType.END)
    const got = Buffer.concat(peer.frames.filter((f) => f.id === 1 && f.type === FrameType.DATA).map((f) => f.payload))
    assert.ok(got.equals(data))
    assert.deepEqual(errorsOn0(peer.frames), [])
  })

  test('an uploader sending its frames slowly but steadily is not dropped', async (t) => {
    const { url, root } = await startServer(t, { writable: true, idleTimeout: 3000, requestTimeout: 300 })
    const data = Buffer.alloc(128 * KiB, 7)
    const peer = await rawPeer(t, url)
    const crc = checksumId('crc32')
    const upload = Buffer.concat([
      Buffer.from(JSON.stringify({ id: 1, op: 'write', path: 'up.bin', length: data.length }) + '\n'),
      ...encodeFrame({ type: FrameType.DATA, id: 1, seq: 1, payload: data.subarray(0, 64 * KiB) }, crc),
      ...encodeFrame({ type: FrameType.DATA, id: 1, seq: 2, payload: data.subarray(64 * KiB) }, crc),
      ...encodeFrame({ type: FrameType.END, id: 1, seq: 3, payload: Buffer.from(JSON.stringify({ length: data.length })) }, crc),
    ])
    // 4 KiB every 25 ms: each frame takes longer than the request deadline, with no pause as long.
    for (let at = 0; at < upload.length; at += 4 * KiB) {
      peer.socket.write(upload.subarray(at, at + 4 * KiB))
      await sleep(25)
    }
    const end = await peer.done(1)
    assert.equal(end.type, FrameType.RESULT, end.type === FrameType.ERROR ? json(end).code : '')
    assert.ok(readFileSync(join(root, 'up.bin')).equals(data))
    assert.deepEqual(errorsOn0(peer.frames), [])
  })
})

describe('auth deadline and throttling', () => {
  test('a connection that does not authenticate in time gets EAUTH and is closed', async (t) => {
    const { url } = await startServer(t, { token: 's3cret', authTimeout: 300 })
    const peer = await rawPeer(t, url)
    assert.ok(await within(peer.closed, 10_000), 'the unauthenticated connection was closed')
    assert.deepEqual(errorsOn0(peer.frames), ['EAUTH'])
  })

  test('a connection that authenticated in time stays past the auth deadline', async (t) => {
    const { url } = await startServer(t, { token: 's3cret', authTimeout: 300 })
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'auth', token: 's3cret' })
    assert.equal((await peer.done(1)).type, FrameType.RESULT)
    assert.equal(await within(peer.closed, 800), false, 'still open')
    peer.send({ id: 2, op: 'ls' })
    assert.equal((await peer.done(2)).type, FrameType.RESULT)
  })

  test('a wrong token is answered only after the throttle delay; the right one from the same address at once', async (t) => {
    const { url } = await startServer(t, { token: 's3cret', authBackoff: 1000, authTimeout: 10_000 })
    const wrong = await rawPeer(t, url)
    wrong.send({ id: 1, op: 'auth', token: 'guess' })
    await sleep(300)
    assert.deepEqual(errorsOn0(wrong.frames), [], 'not answered yet')
    assert.equal(wrong.socket.destroyed, false)
    // Meanwhile a second connection from the same address, with the right token: not held hostage.
    const right = await rawPeer(t, url)
    right.send({ id: 1, op: 'auth', token: 's3cret' })
    assert.equal((await right.done(1)).type, FrameType.RESULT)
    assert.deepEqual(errorsOn0(wrong.frames), [], 'the wrong one still waits')
    assert.ok(await within(wrong.closed, 10_000), 'closed after the delay')
    assert.deepEqual(errorsOn0(wrong.frames), ['EAUTH'])
  })

  test('a guesser on the same address does not lock out the right token', async (t) => {
    const { url } = await startServer(t, { token: 's3cret', authBackoff: 200, authTimeout: 1000 })
    // Wrong tokens, one after another, until the address's delay is far past the auth deadline.
    for (let i = 0; i < 6; i++) {
      const wrong = await rawPeer(t, url)
      wrong.send({ id: 1, op: 'auth', token: `guess-${i}` })
    }
    await sleep(100)
    const right = await rawPeer(t, url)
    right.send({ id: 1, op: 'auth', token: 's3cret' })
    assert.equal((await right.done(1)).type, FrameType.RESULT)
  })
})

describe('a NACK asking for a resend from seq 2^32 - 1', () => {
  test('fails its request with an ERROR, and the connection goes on', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'a.bin', 5000)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'read', path: 'a.bin' })
    assert.equal((await peer.done(1)).type, FrameType.END)
    const before = peer.frames.length
    peer.send({ id: 1, op: 'nack', seq: MAX_ID, offset: 0, resync: 1 })
    const answer = await peer.until((fs) => fs.slice(before).some((f) => f.id === 1 && f.type === FrameType.ERROR))
    const err = answer.slice(before).find((f) => f.type === FrameType.ERROR)!
    assert.equal(json(err).code, 'ECORRUPT')
    assert.equal(err.epoch, 1, 'it answers that NACK')
    assert.ok(err.seq <= MAX_ID)
    // The connection lives: the same id reads again, and the seq numbers start afresh.
    peer.send({ id: 1, op: 'read', path: 'a.bin' })
    await peer.until((fs) => fs.slice(before).some((f) => f.id === 1 && f.type === FrameType.END))
    const again = peer.frames.slice(before).filter((f) => f.id === 1 && f.type !== FrameType.ERROR && f.type !== FrameType.RESYNC)
    assert.deepEqual(again.map((f) => [f.type, f.seq]), [[FrameType.START, 0], [FrameType.DATA, 1], [FrameType.END, 2]])
    assert.ok(again[1].payload.equals(data))
    assert.equal(peer.socket.destroyed, false)
    assert.deepEqual(errorsOn0(peer.frames), [])
  })
})
