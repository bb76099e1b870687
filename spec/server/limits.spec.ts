/**
 * The server's limits hold against clients that misbehave: a token guards
 * every command, connections are capped, idle and frozen connections are
 * closed, an endless request line is cut off without buffering it, pipelined
 * requests beyond maxInFlight wait rather than fail, and a half-closed
 * client still gets its answers.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'
import { poll, within } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB
const TERMINAL = new Set<number>([FrameType.END, FrameType.RESULT, FrameType.ERROR])

function bytesOf(frames: ReceivedFrame[], id: number): Buffer {
  return Buffer.concat(frames.filter((f) => f.id === id && f.type === FrameType.DATA).map((f) => f.payload))
}

/** Run `fn` with CACHESERV_TOKEN set to `value` (or unset), restoring it afterwards. */
async function withTokenEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.CACHESERV_TOKEN
  if (value === undefined) delete process.env.CACHESERV_TOKEN
  else process.env.CACHESERV_TOKEN = value
  try {
    return await fn()
  } finally {
    if (saved === undefined) delete process.env.CACHESERV_TOKEN
    else process.env.CACHESERV_TOKEN = saved
  }
}

describe('token', () => {
  test('a client without a token is refused with EAUTH', async (t) => {
    const { url } = await startServer(t, { token: 's3cret' })
    await withTokenEnv(undefined, () => assert.rejects(connect(url), { code: 'EAUTH' }))
  })

  test('a client with a wrong token is refused with EAUTH, also an empty or a longer one', async (t) => {
    // Each failure doubles the wait for the next answer (see deadlines.spec.ts): keep it short here.
    const { url } = await startServer(t, { token: 's3cret', authBackoff: 1 })
    await withTokenEnv(undefined, async () => {
      for (const token of ['wrong', '', 's3cre', 's3cret ', 's3cret\n', 'S3CRET']) {
        await assert.rejects(connect(url, { token }), { code: 'EAUTH', message: 'the server refused the token' }, JSON.stringify(token))
      }
    })
  })

  test('a client with the right token, as an option or from CACHESERV_TOKEN, is served', async (t) => {
    const { url, root } = await startServer(t, { token: 's3cret' })
    const data = writeFile(root, 'a.bin', 5000)
    await withTokenEnv('wrong', async () => {
      const c = await connect(url, { token: 's3cret' }) // the option wins over the env
      try {
        assert.ok((await c.readFile('a.bin')).equals(data))
      } finally {
        await c.close()
      }
    })
    await withTokenEnv('s3cret', async () => {
      const c = await connect(url)
      try {
        assert.equal(c.hello.auth, true)
        assert.ok((await c.readFile('a.bin')).equals(data))
        assert.equal((await c.stat('a.bin')).size, data.length)
      } finally {
        await c.close()
      }
    })
  })

  test('a raw peer that sends a read first gets EAUTH on id 0 and is closed before the read runs', async (t) => {
    const { server, url, root } = await startServer(t, { token: 's3cret' })
    writeFile(root, 'a.bin', 100 * KiB)
    const peer = await rawPeer(t, url)
    assert.equal(peer.frames[0].type, FrameType.HELLO)
    assert.equal(json(peer.frames[0]).auth, true, 'HELLO says a token is needed')
    peer.send({ id: 1, op: 'read', path: 'a.bin' })
    peer.send({ id: 2, op: 'auth', token: 's3cret' }) // too late: the first request decides
    peer.send({ id: 3, op: 'stat', path: 'a.bin' })
    assert.ok(await within(peer.closed, 5000), 'the server closed the connection')
    const errors = peer.frames.filter((f) => f.type === FrameType.ERROR)
    assert.deepEqual(errors.map((f) => [f.id, json(f).code]), [[0, 'EAUTH']])
    assert.deepEqual(peer.frames.filter((f) => f.id !== 0), [], 'no frame for any request')
    const s = server.stats()
    assert.equal(s.misses, 0, 'the file was never read')
    assert.equal(s.diskReads, 0)
    assert.equal(s.bytesServed, 0)
  })

  test('a raw peer whose auth is wrong gets EAUTH, and requests pipelined behind it do not run', async (t) => {
    const { server, url, root } = await startServer(t, { token: 's3cret' })
    writeFile(root, 'a.bin', 100 * KiB)
    const peer = await rawPeer(t, url)
    peer.socket.write(JSON.stringify({ id: 1, op: 'auth', token: 'nope' }) + '\n' + JSON.stringify({ id: 2, op: 'read', path: 'a.bin' }) + '\n')
    assert.ok(await within(peer.closed, 5000), 'the server closed the connection')
    assert.deepEqual(peer.frames.filter((f) => f.type !== FrameType.HELLO).map((f) => [f.type, f.id, json(f).code]), [[FrameType.ERROR, 0, 'EAUTH']])
    assert.equal(server.stats().misses, 0)
  })

  test('HELLO says auth:false on a server without a token, and commands need no auth', async (t) => {
    const { url } = await startServer(t)
    const peer = await rawPeer(t, url)
    assert.ok(!json(peer.frames[0]).auth)
    peer.send({ id: 1, op: 'ls' })
    assert.equal((await peer.done(1)).type, FrameType.RESULT)
  })
})

describe('maxConnections', () => {
  test('a connection beyond the limit is refused with EBUSY, and a slot freed is usable again', async (t) => {
    const { server, url, root } = await startServer(t, { maxConnections: 2 })
    const data = writeFile(root, 'a.bin', 3000)
    const a = await connectTo(t, url)
    const b = await connectTo(t, url)
    await assert.rejects(connect(url), { code: 'EBUSY' })
    await assert.rejects(connect(url), { code: 'EBUSY' }, 'still busy')
    // The two admitted ones are unaffected.
    assert.ok((await a.readFile('a.bin')).equals(data))
    assert.ok((await b.readFile('a.bin')).equals(data))
    await a.close()
    assert.ok(await poll(() => server.stats().connections < 2), 'the server let go of the closed connection')
    const c = await connectTo(t, url)
    assert.ok((await c.readFile('a.bin')).equals(data))
    assert.equal(server.stats().connections, 2)
  })
})

describe('maxConnections, a refused peer that wrote first', () => {
  test('still reads its EBUSY and a clean close (no reset) when it reads late', async (t) => {
    const { url } = await startServer(t, { maxConnections: 1 })
    await connectTo(t, url)
    const port = Number(/:(\d+)$/.exec(url)![1])
    // A client that sends before it reads anything (ours wait for HELLO; others may not), then is slow to read.
    const socket = net.connect({ host: '127.0.0.1', port })
    t.after(() => void socket.destroy())
    let failure: string | null = null
    socket.on('error', (err: NodeJS.ErrnoException) => (failure = err.code ?? err.message))
    socket.pause()
    socket.write(Buffer.alloc(48 * KiB, '\n'))
    await sleep(1500)
    const got: Buffer[] = []
    socket.on('data', (c: Buffer) => got.push(c))
    socket.resume()
    assert.ok(await within(once(socket, 'close'), 5000), 'the connection closed')
    assert.equal(failure, null, 'the server reset the connection')
    const frames: ReceivedFrame[] = []
    const decoder = new FrameDecoder({ onFrame: (f) => void frames.push(f), onInvalid: (why) => assert.fail(`bad frame: ${why}`) })
    decoder.write(Buffer.concat(got))
    assert.deepEqual(frames.map((f) => [f.type, f.id, json(f).code]), [[FrameType.ERROR, 0, 'EBUSY']])
  })

  test('is cut off once it has sent more than a little, and server.close() does not wait for it', async (t) => {
    const { server, url } = await startServer(t, { maxConnections: 1 })
    await connectTo(t, url)
    const port = Number(/:(\d+)$/.exec(url)![1])
    const socket = net.connect({ host: '127.0.0.1', port })
    t.after(() => void socket.destroy())
    socket.on('error', () => {})
    socket.resume()
    await once(socket, 'connect')
    const flood = Buffer.alloc(256 * KiB, 'x'.charCodeAt(0))
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    const drained = () => new Promise<void>((resolve) => {
      socket.once('drain', resolve)
      socket.once('close', resolve)
    })
    // 16 MiB at most, far more than a refused peer may send.
    for (let i = 0; i < 64 && !socket.destroyed; i++) if (!socket.write(flood)) await Promise.race([drained(), sleep(200)])
    assert.ok(await within(closed, 3000), 'the flooding peer was cut off')
    // A second refused peer that keeps its side open: close() ends it at once, not after its linger.
    const idle = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    t.after(() => void idle.destroy())
    idle.on('error', () => {})
    idle.resume()
    await once(idle, 'end')
    const t0 = Date.now()
    await server.close()
    assert.ok(Date.now() - t0 < 900, `close() took ${Date.now() - t0} ms`)
  })
})

describe('idleTimeout', () => {
  test('an idle connection is closed by the server', async (t) => {
    const { server, url } = await startServer(t, { idleTimeout: 300 })
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'ls' })
    await peer.done(1)
    assert.ok(await within(peer.closed, 5000), 'the idle connection was closed')
    assert.ok(await poll(() => server.stats().connections === 0))
  })

  test('a reader frozen mid-read is closed too, and its read never ends as complete', async (t) => {
    const { server, url, root } = await startServer(t, { idleTimeout: 300 })
    writeFile(root, 'big.bin', 32 * MiB)
    const peer = await rawPeer(t, url)
    peer.socket.pause()
    peer.send({ id: 1, op: 'read', path: 'big.bin' })
    assert.ok(await poll(() => server.stats().bytesServed > 0), 'the read started')
    assert.ok(await poll(() => server.stats().connections === 0), 'the server dropped the frozen connection')
    // Let the peer drain whatever was in flight: then it sees the close, and the read cut short.
    peer.socket.resume()
    assert.ok(await within(peer.closed, 5000), 'the peer saw the connection close')
    assert.ok(!peer.frames.some((f) => f.id === 1 && f.type === FrameType.END), 'no END for a read that was cut off')
    assert.ok(bytesOf(peer.frames, 1).length < 32 * MiB)
  })

  test('a client waiting for an answer the server is still working on is not idle', async (t) => {
    // A file written just now is read only once it has settled (1 s), longer than the idle timeout.
    const { server, url, root } = await startServer(t, { idleTimeout: 300, settle: 1000 })
    const data = writeFile(root, 'fresh.bin', 3 * MiB)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('fresh.bin')).equals(data))
    assert.equal(server.stats().totalConnections, 1, 'served on the connection it was asked on')
  })

  test('a connection with idleTimeout 0 stays open while idle', async (t) => {
    const { server, url } = await startServer(t, { idleTimeout: 0 })
    const peer = await rawPeer(t, url)
    assert.equal(await within(peer.closed, 600), false, 'still open')
    assert.equal(server.stats().connections, 1)
    peer.send({ id: 1, op: 'ls' })
    assert.equal((await peer.done(1)).type, FrameType.RESULT)
  })
})

describe('maxRequest', () => {
  test('a 10 MB line without a newline gets ETOOBIG on id 0 and a close, without ballooning memory', async (t) => {
    const { server, url, root } = await startServer(t, { maxRequest: 64 * KiB })
    const data = writeFile(root, 'a.bin', 200 * KiB)
    const other = await connectTo(t, url)
    const peer = await rawPeer(t, url)
    const chunk = Buffer.alloc(64 * KiB, 'x'.charCodeAt(0))
    const rssBefore = process.memoryUsage().rss
    let rssPeak = rssBefore
    peer.socket.write('{"id":1,"op":"stat","path":"')
    let sent = 0
    while (sent < 10_000_000 && !peer.socket.destroyed && !peer.socket.writableEnded) {
      sent += chunk.length
      // The server resets us once it gave up on the line: a write error is expected, not a failure.
      if (!peer.socket.write(chunk)) await Promise.race([once(peer.socket, 'drain').catch(() => {}), peer.closed])
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
    }
    assert.ok(await within(peer.closed, 5000), 'the server closed the connection')
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
    const err = peer.frames.find((f) => f.type === FrameType.ERROR)
    assert.ok(err, 'an ERROR frame came before the close')
    assert.equal(err.id, 0)
    assert.equal(json(err).code, 'ETOOBIG')
    assert.deepEqual(peer.frames.filter((f) => f.id !== 0), [], 'the request never ran')
    assert.ok(rssPeak - rssBefore < 64 * MiB, `rss grew by ${((rssPeak - rssBefore) / MiB).toFixed(1)} MiB`)
    assert.ok(await poll(() => server.stats().connections === 1), 'only the other client is left')
    // Everyone else is still served.
    assert.ok((await other.readFile('a.bin')).equals(data))
    const fresh = await connectTo(t, url)
    assert.equal((await fresh.stat('a.bin')).size, data.length)
  })

  test('a peer that sends bad lines and never reads is held back: the server stops reading it', async (t) => {
    const { server, url } = await startServer(t)
    const port = Number(/:(\d+)$/.exec(url)![1])
    // No 'data' listener: this peer reads nothing, so every reply the server owes it waits.
    const socket = net.connect({ host: '127.0.0.1', port })
    t.after(() => void socket.destroy())
    socket.on('error', () => {})
    await once(socket, 'connect')
    const lines = Buffer.from('x\n'.repeat(512 * KiB)) // 1 MiB, 512k lines, each worth an EBADREQ
    let written = 0
    while (written < 48 * MiB) {
      written += lines.length
      if (!socket.write(lines) && !(await within(once(socket, 'drain'), 2000))) break
    }
    // Kernel buffers take some MiB either way; a server taking every line would have read all 48.
    assert.ok(written < 48 * MiB, `the server went on reading (${written / MiB} MiB taken)`)
    assert.equal(server.stats().connections, 1, 'the connection is held, not dropped')
  })

  test('a line just under the limit is served, one just over is ETOOBIG', async (t) => {
    const limit = 2 * KiB
    const { url, root } = await startServer(t, { maxRequest: limit })
    writeFile(root, 'a.bin', 10)
    const pad = (n: number) => {
      const base = JSON.stringify({ id: 1, op: 'stat', path: 'a.bin', pad: '' })
      return JSON.stringify({ id: 1, op: 'stat', path: 'a.bin', pad: 'p'.repeat(n - base.length) })
    }
    const ok = await rawPeer(t, url)
    ok.send(pad(limit))
    assert.equal((await ok.done(1)).type, FrameType.RESULT)
    const over = await rawPeer(t, url)
    over.send(pad(limit + 1))
    assert.ok(await within(over.closed, 5000))
    assert.deepEqual(over.frames.filter((f) => f.type === FrameType.ERROR).map((f) => [f.id, json(f).code]), [[0, 'ETOOBIG']])
  })
})

describe('maxInFlight', () => {
  test('10 reads pipelined at once on a server allowing 2 in flight all complete byte-exact', async (t) => {
    const { url, root } = await startServer(t, { maxInFlight: 2 })
    const files = Array.from({ length: 10 }, (_, i) => writeFile(root, `f${i}.bin`, 300 * KiB + i * 1001))
    const peer = await rawPeer(t, url)
    peer.socket.write(files.map((_, i) => JSON.stringify({ id: i + 1, op: 'read', path: `f${i}.bin` }) + '\n').join(''))
    await peer.until((fs) => files.every((_, i) => fs.some((f) => f.id === i + 1 && TERMINAL.has(f.type))), 20_000)
    for (let i = 0; i < files.length; i++) {
      const end = peer.frames.find((f) => f.id === i + 1 && TERMINAL.has(f.type))!
      assert.equal(end.type, FrameType.END, `read ${i + 1} ended with END`)
      assert.ok(bytesOf(peer.frames, i + 1).equals(files[i]), `read ${i + 1} is byte-exact`)
    }
    // No connection-level error was needed to get there.
    assert.deepEqual(peer.frames.filter((f) => f.id === 0 && f.type === FrameType.ERROR), [])
  })
})

describe('maxInFlight leaves cancel and nack flowing', () => {
  test('with 2 reads running and more waiting, a cancel for a running read and one for a waiting read take effect at once', async (t) => {
    const { url, root } = await startServer(t, { maxInFlight: 2 })
    const big = writeFile(root, 'big.bin', 32 * MiB)
    const peer = await rawPeer(t, url)
    // Not reading: the running reads fill the socket and stay running, holding both slots.
    peer.socket.pause()
    const reads = [1, 2, 3, 4, 5, 6].map((id) => JSON.stringify({ id, op: 'read', path: 'big.bin', length: id <= 2 ? undefined : 1000 }) + '\n')
    peer.socket.write(reads.join(''))
    peer.socket.write(JSON.stringify({ id: 1, op: 'cancel' }) + '\n' + JSON.stringify({ id: 4, op: 'cancel' }) + '\n')
    await sleep(300)
    peer.socket.resume()
    await peer.until((fs) => [1, 2, 3, 4, 5, 6].every((id) => fs.some((f) => f.id === id && TERMINAL.has(f.type))), 30_000)
    const end = (id: number) => peer.frames.find((f) => f.id === id && TERMINAL.has(f.type))!
    assert.equal(end(1).type, FrameType.ERROR, 'the running read 1 was cancelled, not finished')
    assert.equal(json(end(1)).code, 'ECANCELED')
    assert.equal(end(4).type, FrameType.ERROR)
    assert.equal(json(end(4)).code, 'ECANCELED')
    assert.deepEqual(peer.frames.filter((f) => f.id === 4).map((f) => f.type), [FrameType.ERROR], 'the waiting read 4 never started')
    assert.ok(bytesOf(peer.frames, 2).equals(big), 'read 2 complete')
    for (const id of [3, 5, 6]) {
      assert.equal(end(id).type, FrameType.END, `read ${id}`)
      assert.ok(bytesOf(peer.frames, id).equals(big.subarray(0, 1000)), `read ${id} byte-exact`)
    }
  })
})

describe('a NACK for a request still waiting for its turn', () => {
  test('it starts in its turn behind a RESYNC with that epoch, and serves its bytes', async (t) => {
    const { url, root } = await startServer(t, { maxInFlight: 1 })
    writeFile(root, 'big.bin', 16 * MiB)
    const small = writeFile(root, 'small.bin', 5000)
    const peer = await rawPeer(t, url)
    peer.socket.pause() // read 1 holds the only slot
    peer.socket.write(JSON.stringify({ id: 1, op: 'read', path: 'big.bin' }) + '\n' + JSON.stringify({ id: 2, op: 'read', path: 'small.bin' }) + '\n')
    // What a client's progress timeout sends for every waiting request.
    peer.socket.write(JSON.stringify({ id: 2, op: 'nack', seq: 0, offset: 0, resync: 1 }) + '\n')
    await sleep(200)
    peer.socket.resume()
    await peer.done(2)
    const frames2 = peer.frames.filter((f) => f.id === 2)
    assert.deepEqual(frames2.map((f) => f.type), [FrameType.RESYNC, FrameType.START, FrameType.DATA, FrameType.END])
    assert.deepEqual(frames2.map((f) => f.epoch), [1, 1, 1, 1])
    assert.ok(bytesOf(peer.frames, 2).equals(small))
    assert.equal((await peer.done(1)).type, FrameType.END)
  })

  test('cancelled or refused at shutdown before its turn, its ERROR carries that epoch: it answers the NACK', async (t) => {
    const { server, url, root } = await startServer(t, { maxInFlight: 1 })
    writeFile(root, 'big.bin', 16 * MiB)
    writeFile(root, 'small.bin', 5000)
    const peer = await rawPeer(t, url)
    peer.socket.pause() // read 1 holds the only slot
    const line = (o: object) => JSON.stringify(o) + '\n'
    peer.socket.write(line({ id: 1, op: 'read', path: 'big.bin' }) + line({ id: 2, op: 'read', path: 'small.bin' }) + line({ id: 3, op: 'read', path: 'small.bin' }))
    peer.socket.write(line({ id: 2, op: 'nack', seq: 0, offset: 0, resync: 1 }) + line({ id: 3, op: 'nack', seq: 0, offset: 0, resync: 2 }))
    peer.socket.write(line({ id: 2, op: 'cancel' }))
    await sleep(200)
    const closing = server.close({ grace: 10_000 })
    peer.socket.resume()
    const [two, three] = [await peer.done(2), await peer.done(3)]
    assert.deepEqual([two.type, json(two).code, two.epoch], [FrameType.ERROR, 'ECANCELED', 1])
    assert.deepEqual([three.type, json(three).code, three.epoch], [FrameType.ERROR, 'ESHUTDOWN', 2])
    await closing
  })
})

describe('half-close', () => {
  test('a client that sends 5 requests and ends its side gets all 5 answers, then the server closes', async (t) => {
    const { server, url, root } = await startServer(t)
    const big = writeFile(root, 'big.bin', 4 * MiB + 3)
    const small = writeFile(root, 'small.txt', 'small')
    const peer = await rawPeer(t, url)
    const reqs = [
      { id: 1, op: 'read', path: 'big.bin' },
      { id: 2, op: 'stat', path: 'big.bin' },
      { id: 3, op: 'read', path: 'small.txt' },
      { id: 4, op: 'ls' },
      { id: 5, op: 'read', path: 'big.bin', offset: 1000, length: 2 * MiB },
    ]
    peer.socket.end(reqs.map((r) => JSON.stringify(r) + '\n').join(''))
    assert.ok(await within(peer.closed, 10_000), 'the server closed the connection after answering')
    for (const r of reqs) {
      const end = peer.frames.find((f) => f.id === r.id && TERMINAL.has(f.type))
      assert.ok(end, `request ${r.id} was answered`)
      assert.notEqual(end.type, FrameType.ERROR, `request ${r.id}: ${end.type === FrameType.ERROR ? json(end).code : ''}`)
    }
    assert.ok(bytesOf(peer.frames, 1).equals(big))
    assert.equal(json(peer.frames.find((f) => f.id === 2)!).size, big.length)
    assert.ok(bytesOf(peer.frames, 3).equals(small))
    assert.ok(bytesOf(peer.frames, 5).equals(big.subarray(1000, 1000 + 2 * MiB)))
    assert.ok(await poll(() => server.stats().connections === 0))
  })
})
