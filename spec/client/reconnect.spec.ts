/**
 * The client after the server closed its connection (the idle timeout, a
 * restart): requests that start afterwards open a new connection (HELLO,
 * auth again) and go there, all of them on one; a request in flight when the
 * connection died still fails; a server that is gone is a quick ECLOSED; a
 * client closed by its user stays closed.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { ChecksumId, FrameType } from '../../lib/protocol/constants.js'
import { encodeFrame, jsonFrame } from '../../lib/protocol/frame.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { loopbackServer } from '../helpers/loopback.js'
import { connectTo, startServer } from '../helpers/server.js'
import { poll } from '../helpers/wait.js'
import { drain } from '../helpers/outcome.js'

const IDLE = 300


describe('reconnect after the server closed an idle connection', () => {
  test('read, readFile, stat and ls succeed on a new connection', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE })
    const data = writeFile(root, 'a.bin', 300_000)
    const client = await connectTo(t, url)
    assert.equal((await client.stat('a.bin')).size, data.length)
    assert.ok(await poll(() => server.stats().connections === 0), 'the server closed the idle connection')
    await sleep(50) // the client has seen the close by now
    assert.equal((await client.stat('a.bin')).size, data.length)
    assert.equal(server.stats().totalConnections, 2)
    assert.deepEqual(await client.ls('', { long: true }), [{ name: 'a.bin', type: 'file', size: data.length }])
    assert.ok((await client.readFile('a.bin')).equals(data))
    const { bytes, error } = await drain(client.read('a.bin', { offset: 1000 }))
    assert.equal(error, null)
    assert.ok(bytes.equals(data.subarray(1000)))
    // The next pause, the next connection.
    assert.ok(await poll(() => server.stats().connections === 0))
    assert.ok((await client.readFile('a.bin')).equals(data))
    assert.equal(server.stats().totalConnections, 3)
    assert.equal(client.pending, 0)
  })

  test('many requests started at once after the close share one new connection', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE, writable: true })
    const files = Array.from({ length: 12 }, (_, i) => writeFile(root, `f${i}.bin`, 1000 + i * 40_000))
    const client = await connectTo(t, url)
    await client.ls()
    assert.ok(await poll(() => server.stats().connections === 0))
    await sleep(50)
    const reads = files.map((_, i) => client.readFile(`f${i}.bin`))
    const stats = files.map((_, i) => client.stat(`f${i}.bin`))
    const streams = files.slice(0, 3).map((_, i) => drain(client.read(`f${i}.bin`)))
    const listing = client.ls()
    const upload = client.write('up.bin', Buffer.from('uploaded'))
    assert.ok(client.pending > 0)
    const got = await Promise.all(reads)
    got.forEach((b, i) => assert.ok(b.equals(files[i]), `f${i}.bin`))
    ;(await Promise.all(stats)).forEach((s, i) => assert.equal(s.size, files[i].length))
    ;(await Promise.all(streams)).forEach((r, i) => assert.ok(r.error === null && r.bytes.equals(files[i])))
    assert.equal((await listing).length, files.length)
    assert.deepEqual(await upload, { path: 'up.bin', size: 8 })
    assert.equal(server.stats().totalConnections, 2, 'one new connection for all of them')
    assert.equal(server.stats().connections, 1)
  })

  test('authenticates the new connection with the same token', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE, token: 'sesame' })
    writeFile(root, 'a.bin', 10)
    const client = await connect(url, { token: 'sesame' })
    t.after(() => client.close())
    assert.equal((await client.stat('a.bin')).size, 10)
    assert.ok(await poll(() => server.stats().connections === 0))
    await sleep(50)
    assert.equal((await client.stat('a.bin')).size, 10)
    assert.deepEqual((await client.ls()).map((e) => e.name), ['a.bin'])
    assert.equal(server.stats().totalConnections, 2)
  })

  test('over a unix socket', async (t) => {
    const path = join(tempDir(t, 'cacheserv-sock-'), 's.sock')
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE, listen: `unix:${path}` })
    const data = writeFile(root, 'a.bin', 70_000)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('a.bin')).equals(data))
    assert.ok(await poll(() => server.stats().connections === 0))
    await sleep(50)
    assert.ok((await client.readFile('a.bin')).equals(data))
    assert.equal(server.stats().totalConnections, 2)
  })

  test('a connection about to reach the idle timeout is replaced before a request is sent on it', async (t) => {
    // HELLO announces the timeout: a request sent just before it runs out could cross the server's close.
    const { server, url, root } = await startServer(t, { idleTimeout: 2000 })
    writeFile(root, 'a.bin', 10)
    const client = await connectTo(t, url)
    assert.equal(client.hello.idleTimeout, 2000)
    await client.stat('a.bin')
    await sleep(1700) // past the 500 ms margin, short of the timeout
    assert.equal(server.stats().connections, 1, 'the server has not closed it yet')
    assert.equal((await client.stat('a.bin')).size, 10)
    assert.equal(server.stats().totalConnections, 2)
    assert.ok(await poll(() => server.stats().connections === 1), 'the old connection is gone')
  })

  test('a connection that sent nothing yet is replaced before the server\'s first-request deadline', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: 60_000, requestTimeout: 2000 })
    writeFile(root, 'a.bin', 10)
    const client = await connectTo(t, url)
    assert.equal(client.hello.requestTimeout, 2000)
    await sleep(1700) // past the 500 ms margin, short of the deadline
    assert.equal(server.stats().connections, 1, 'the server has not closed it yet')
    assert.equal((await client.stat('a.bin')).size, 10)
    assert.equal(server.stats().totalConnections, 2)
    // Once a request went out, only the idle timeout counts: the same connection serves on.
    await sleep(1700)
    assert.equal((await client.stat('a.bin')).size, 10)
    assert.equal(server.stats().totalConnections, 2)
  })

  test('with retrying off, a server that is gone fails each request with ECLOSED at once', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE })
    writeFile(root, 'a.bin', 10)
    const client = await connect(url, { retryDelays: [] })
    t.after(() => client.close())
    await client.stat('a.bin')
    await server.close()
    await sleep(50)
    const t0 = Date.now()
    const failures = await Promise.allSettled([client.stat('a.bin'), client.readFile('a.bin'), client.ls()])
    for (const f of failures) {
      assert.equal(f.status, 'rejected')
      const err = f.reason as Error & { code?: string; cause?: { code?: string } }
      assert.equal(err.code, 'ECLOSED')
      assert.match(err.message, /ECONNREFUSED/)
      assert.equal(err.cause?.code, 'ECONNECT')
    }
    const { error } = await drain(client.read('a.bin'))
    assert.equal(error?.code, 'ECLOSED')
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`)
    assert.equal(client.pending, 0)
  })

  test('with retrying off, a request in flight when the connection dies fails with ECLOSED, and is not sent again', async (t) => {
    let connections = 0
    const lines: string[] = []
    const hello = Buffer.concat(encodeFrame(jsonFrame(FrameType.HELLO, 0, 0, { protocol: 1, server: 'fake/0', checksum: 'crc32', pageSize: 262144 }), ChecksumId.crc32))
    // Takes the request, then closes without an answer.
    const url = await loopbackServer(t, (socket) => {
      connections++
      socket.write(hello)
      socket.on('data', (b) => {
        lines.push(...b.toString().split('\n').filter(Boolean))
        socket.destroy()
      })
    })
    const client = await connect(url, { retryDelays: [] })
    t.after(() => client.close())
    await assert.rejects(client.stat('a.bin'), { code: 'ECLOSED' })
    await sleep(100)
    assert.equal(connections, 1)
    assert.equal(lines.length, 1)
    // The next request starts on a new connection (where it meets the same fate).
    await assert.rejects(client.stat('a.bin'), { code: 'ECLOSED' })
    assert.equal(connections, 2)
  })

  test('a read held by its consumer when the idle timeout cuts it resumes on a new connection, every byte once', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE })
    const data = writeFile(root, 'big.bin', 16 * 1024 * 1024)
    const client = await connectTo(t, url)
    const stream = client.read('big.bin', { highWaterMark: 64 * 1024 })
    assert.ok(await poll(() => server.stats().bytesServed > 0 && server.stats().connections === 0), 'the server cut the held connection')
    const { bytes, error } = await drain(stream)
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
    assert.ok(server.stats().totalConnections >= 2)
  })

  test('with retrying off, a read held by its consumer when the idle timeout cuts it fails; the next request works', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: IDLE })
    const data = writeFile(root, 'big.bin', 16 * 1024 * 1024)
    const client = await connect(url, { retryDelays: [] })
    t.after(() => client.close())
    const stream = client.read('big.bin', { highWaterMark: 64 * 1024 })
    // Nobody reads the stream: the connection is held, no byte moves, and the server cuts it.
    assert.ok(await poll(() => server.stats().bytesServed > 0 && server.stats().connections === 0), 'the server cut the held connection')
    // Its consumer, back, gets what had arrived, then the error: the read was in flight.
    const { bytes, error } = await drain(stream)
    assert.equal(error?.code, 'ECLOSED')
    assert.ok(bytes.length < data.length)
    assert.equal((await client.stat('big.bin')).size, data.length)
    assert.ok((await client.readFile('big.bin', { length: 1000 })).equals(data.subarray(0, 1000)))
    assert.equal(server.stats().totalConnections, 2)
  })

  test('close() by the user is final: no new connection', async (t) => {
    const { server, url } = await startServer(t, { idleTimeout: IDLE })
    const client = await connect(url)
    await client.ls()
    assert.ok(await poll(() => server.stats().connections === 0))
    await client.close()
    await assert.rejects(client.ls(), { code: 'ECLOSED', message: 'client closed' })
    assert.equal(server.stats().totalConnections, 1)
  })

  test('close() while a new connection opens closes that one too', async (t) => {
    const { server, url } = await startServer(t, { idleTimeout: IDLE })
    const client = await connect(url)
    await client.ls()
    assert.ok(await poll(() => server.stats().connections === 0))
    await sleep(50)
    const listing = client.ls()
    await client.close()
    await assert.rejects(listing, { code: 'ECLOSED' })
    assert.ok(await poll(() => server.stats().connections === 0), 'no connection left open')
  })
})
