import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'
import { poll, within } from '../helpers/wait.js'
import { fdCount } from '../helpers/fds.js'

const MiB = 1024 * 1024

function bytesOf(frames: ReceivedFrame[], id: number): Buffer {
  return Buffer.concat(frames.filter((f) => f.id === id && f.type === FrameType.DATA).map((f) => f.payload))
}

describe('pipelining on one connection', () => {
  test('answers several requests in flight, interleaving a small one with a large read', async (t) => {
    const { url, root } = await startServer(t)
    const big = writeFile(root, 'big.bin', 8 * MiB)
    writeFile(root, 'small.txt', 'hi')
    const peer = await rawPeer(t, url)
    // All three in one write: the server must take them apart and run them together.
    peer.socket.write(
      [{ id: 1, op: 'read', path: 'big.bin' }, { id: 2, op: 'stat', path: 'small.txt' }, { id: 3, op: 'read', path: 'small.txt' }]
        .map((r) => JSON.stringify(r) + '\n')
        .join(''),
    )
    const end1 = await peer.done(1)
    const frames = peer.frames
    const at = (pred: (f: ReceivedFrame) => boolean) => frames.findIndex(pred)
    assert.equal(end1.type, FrameType.END)
    assert.ok(bytesOf(frames, 1).equals(big))
    assert.equal(json(await peer.done(2)).size, 2)
    assert.equal(bytesOf(frames, 3).toString(), 'hi')
    assert.ok(at((f) => f.id === 2) < at((f) => f.id === 1 && f.type === FrameType.END), 'stat answered before the big read ended')
    // seq numbers of each request are 0, 1, 2, … in order
    for (const id of [1, 2, 3]) {
      assert.deepEqual(frames.filter((f) => f.id === id).map((f) => f.seq), frames.filter((f) => f.id === id).map((_, i) => i))
    }
  })

  test('runs 200 pipelined reads through the client library on one connection', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 200 }, (_, i) => writeFile(root, `many/${i}.bin`, 1000 + i * 37))
    const client = await connectTo(t, url)
    const got = await Promise.all(files.map((_, i) => client.readFile(`many/${i}.bin`)))
    got.forEach((g, i) => assert.ok(g.equals(files[i]), `file ${i}`))
  })

  test('serves concurrent clients byte-exactly', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 4 * MiB })
    const files = Array.from({ length: 4 }, (_, i) => writeFile(root, `c${i}.bin`, 2 * MiB + i))
    const clients = await Promise.all(Array.from({ length: 8 }, () => connectTo(t, url)))
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 3; k++) assert.ok((await c.readFile(`c${(i + k) % 4}.bin`)).equals(files[(i + k) % 4]))
      }),
    )
  })
})

describe('bad input leaves the server serving', () => {
  test('answers malformed JSON with EBADREQ on id 0 and keeps the connection', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.txt', 'abc')
    const peer = await rawPeer(t, url)
    peer.send('{not json')
    peer.send('[1,2]')
    peer.send({ id: 0, op: 'stat', path: 'a.txt' })
    peer.send({ id: 4, op: 'frobnicate' })
    peer.send({ id: 5, op: 'read' })
    peer.send({ id: 6, op: 'read', path: 'a.txt', offset: -1 })
    peer.send({ id: 7, op: 'read', path: 42 })
    peer.send({ id: 8, path: 'a.txt' })
    peer.send({ id: 9, op: 'read', path: 'a.txt' })
    await peer.done(9)
    const conn = peer.frames.filter((f) => f.id === 0 && f.type === FrameType.ERROR)
    assert.equal(conn.length, 3)
    for (const f of conn) assert.equal(json(f).code, 'EBADREQ')
    for (const id of [4, 5, 6, 7, 8]) {
      const f = await peer.done(id)
      assert.equal(f.type, FrameType.ERROR)
      assert.equal(json(f).code, 'EBADREQ', `request ${id}`)
    }
    assert.equal(bytesOf(peer.frames, 9).toString(), 'abc')
  })

  test('an id used again after a NACK resent it is served as a new request (its frames are not taken for stale ones)', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 1024 })
    const data = writeFile(root, 'a.bin', 3000)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'read', path: 'a.bin' })
    await peer.done(1)
    // Ask for everything after the first page again, as a receiver that lost page 2 would.
    peer.send({ id: 1, op: 'nack', seq: 2, offset: 1024, resync: 1 })
    await peer.until((fs) => fs.filter((f) => f.id === 1 && f.type === FrameType.END).length === 2)
    peer.send({ id: 1, op: 'stat', path: 'a.bin' })
    const result = await peer.until((fs) => fs.some((f) => f.id === 1 && f.type === FrameType.RESULT), 5000)
    assert.equal(json(result.find((f) => f.id === 1 && f.type === FrameType.RESULT)!).size, data.length)
  })

  test('closes a connection whose request line is over the limit, after saying ETOOBIG', async (t) => {
    const { server, url } = await startServer(t, { maxRequest: 1024 })
    const peer = await rawPeer(t, url)
    peer.socket.write('{"id":1,"op":"stat","path":"' + 'x'.repeat(4000))
    await peer.closed
    const err = peer.frames.find((f) => f.type === FrameType.ERROR)
    assert.ok(err)
    assert.equal(err.id, 0)
    assert.equal(json(err).code, 'ETOOBIG')
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls(), [])
    assert.equal(server.stats().connections, 1)
  })

  test('after a fatal error it closes with FIN, not RST, although the peer was still sending', async (t) => {
    const { url } = await startServer(t, { maxRequest: 1024 })
    const peer = await rawPeer(t, url)
    let ended = false
    let failure: string | null = null
    peer.socket.once('end', () => (ended = true))
    peer.socket.on('error', (err: NodeJS.ErrnoException) => (failure = err.code ?? err.message))
    // The line goes over the limit at once; much of what follows is still unread when the responses end.
    peer.socket.write('{"id":1,"op":"stat","path":"' + 'x'.repeat(4000))
    for (let i = 0; i < 32; i++) peer.socket.write(Buffer.alloc(256 * 1024, 'x'.charCodeAt(0)))
    assert.ok(await within(peer.closed, 5000), 'the connection closed')
    assert.equal(failure, null, 'the server reset the connection')
    assert.ok(ended, 'the server ended its side with FIN')
    assert.deepEqual(peer.frames.filter((f) => f.type === FrameType.ERROR).map((f) => [f.id, json(f).code]), [[0, 'ETOOBIG']])
  })

  test('a peer that never closes its side after a fatal error is let go of after a short linger', async (t) => {
    const { server, url } = await startServer(t, { maxRequest: 1024 })
    const port = Number(/:(\d+)$/.exec(url)![1])
    // Half-open allowed: this peer does not answer the server's FIN with its own.
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    t.after(() => void socket.destroy())
    socket.on('error', () => {})
    socket.resume()
    await once(socket, 'connect')
    socket.write('{"id":1,"op":"stat","path":"' + 'x'.repeat(4000))
    await once(socket, 'end')
    assert.ok(await poll(() => server.stats().connections === 0, 5000), 'the server still holds the connection')
  })

  test('refuses a second request with an id already in flight on id 0, and the running read goes on whole', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 64 * 1024 })
    // Larger than the socket buffers hold, so it is still running; not a whole number of pages,
    // so a lost partial page would show in the byte count.
    const data = writeFile(root, 'big.bin', 40 * MiB + 12_345)
    const peer = await rawPeer(t, url)
    peer.socket.pause() // hold the first read in flight
    peer.send({ id: 1, op: 'read', path: 'big.bin' })
    await sleep(50)
    peer.send({ id: 1, op: 'stat', path: 'big.bin' })
    peer.send('{"id":1,"op":17}') // a malformed line naming the running id
    peer.send({ id: 1, op: 'nack', seq: -1, offset: 0, resync: 1 }) // a malformed NACK for it
    await sleep(50)
    peer.socket.resume()
    const end = await peer.done(1)
    assert.equal(end.type, FrameType.END)
    const mine = peer.frames.filter((f) => f.id === 1)
    assert.deepEqual(mine.map((f) => f.seq), mine.map((_, i) => i), 'the read numbers its frames from 0 without a restart')
    assert.ok(bytesOf(peer.frames, 1).equals(data))
    assert.equal(json(end).length, data.length)
    const refusals = peer.frames.filter((f) => f.id === 0 && f.type === FrameType.ERROR).map((f) => json(f))
    assert.equal(refusals.length, 3)
    for (const r of refusals) {
      assert.equal(r.code, 'EBADREQ')
      assert.match(r.message, /^request 1: /)
    }
    // The connection goes on.
    peer.send({ id: 2, op: 'stat', path: 'big.bin' })
    assert.equal((await peer.done(2)).type, FrameType.RESULT)
  })

  test('frees everything when a client hangs up mid-transfer', async (t) => {
    const { server, url, root } = await startServer(t)
    const data = writeFile(root, 'big.bin', 16 * MiB)
    const warm = await connectTo(t, url)
    await warm.readFile('big.bin', { length: 1 })
    const fdsBefore = fdCount()
    for (let i = 0; i < 5; i++) {
      const peer = await rawPeer(t, url)
      peer.send({ id: 1, op: 'read', path: 'big.bin' })
      await peer.until((fs) => fs.some((f) => f.type === FrameType.DATA))
      peer.socket.destroy()
      await peer.closed
    }
    // The server notices each hang-up and tears the pipeline down.
    for (let i = 0; i < 200 && server.stats().connections > 1; i++) await sleep(10)
    assert.equal(server.stats().connections, 1)
    // The files a torn-down read held close on the thread pool, a moment after its connection is gone.
    for (let i = 0; i < 200 && fdCount() > fdsBefore; i++) await sleep(10)
    assert.ok(fdCount() <= fdsBefore, 'no file descriptor left open')
    assert.ok((await warm.readFile('big.bin')).equals(data))
  })
})

describe('backpressure', () => {
  test('a reader that stops reading stops the server from reading the file', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 128 * MiB })
    const size = 64 * MiB
    const data = writeFile(root, 'huge.bin', size)
    const peer = await rawPeer(t, url)
    peer.socket.pause()
    peer.send({ id: 1, op: 'read', path: 'huge.bin' })
    // Wait until the server stops producing: the same count for several polls in a row.
    let last = -1
    let stable = 0
    for (let i = 0; i < 300 && stable < 5; i++) {
      await sleep(20)
      const now = server.stats().bytesServed
      stable = now === last ? stable + 1 : 0
      last = now
    }
    assert.ok(stable >= 5, 'server kept producing while nobody read')
    assert.ok(last < 24 * MiB, `server produced ${last} bytes of a ${size}-byte file for a reader that read nothing`)
    peer.socket.resume()
    await peer.done(1)
    const got = bytesOf(peer.frames, 1)
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'))
  })

  test('cancel stops a read in flight and ends it with ECANCELED', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'huge.bin', 64 * MiB)
    const peer = await rawPeer(t, url)
    peer.socket.pause()
    peer.send({ id: 1, op: 'read', path: 'huge.bin' })
    await sleep(50)
    peer.send({ id: 1, op: 'cancel' })
    peer.socket.resume()
    const end = await peer.done(1)
    assert.equal(end.type, FrameType.ERROR)
    assert.equal(json(end).code, 'ECANCELED')
    assert.ok(server.stats().bytesServed < 32 * MiB)
    peer.send({ id: 2, op: 'ls' })
    assert.equal((await peer.done(2)).type, FrameType.RESULT)
  })
})
