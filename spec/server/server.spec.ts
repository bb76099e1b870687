/**
 * CacheServer's own surface: create() refuses what it cannot serve and
 * leaves nothing open when it does; listen() and listenHttp() resolve with
 * the address bound; handle() serves any duplex; stats() reports every
 * counter; close() stops listening, closes every connection (letting
 * running requests finish within a grace) and frees what the server holds.
 * What a connection does with its requests is the protocol specs' business.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { describe, test, type TestContext } from 'node:test'
import type { PolicyName } from '../../lib/cache/policy.js'
import { shmNative } from '../../lib/cache/shm-native.js'
import { connect } from '../../lib/client/client.js'
import type { ReadStream } from '../../lib/client/read-stream.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { CacheServer, defaultMaxBuffered, type ServerOptions } from '../../lib/server/server.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import { fdCount } from '../helpers/fds.js'
import { noSharedMemory, storeDir, tempDir, writeFile } from '../helpers/fixtures.js'
import { codeOf } from '../helpers/outcome.js'
import { NO_REDIS, redisInstalled, startRedisCluster } from '../helpers/redis-cluster.js'
import { connectTo, startServer } from '../helpers/server.js'
import { poll, within } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB
const noShm = noSharedMemory(shmNative())

function bytesOf(frames: ReceivedFrame[], id: number): Buffer {
  return Buffer.concat(frames.filter((f) => f.id === id && f.type === FrameType.DATA).map((f) => f.payload))
}

/** A server made by hand (not listening unless told), closed after the test. */
async function created(t: TestContext, opts: Partial<ServerOptions> = {}): Promise<CacheServer> {
  const server = await CacheServer.create({ root: tempDir(t), settle: 0, shmDir: false, ...opts })
  t.after(() => server.close())
  return server
}

/** Consume a read stream to its end; resolves with the byte count. */
async function drain(stream: ReadStream): Promise<number> {
  let bytes = 0
  for await (const chunk of stream) bytes += (chunk as Buffer).length
  return bytes
}

/**
 * A peer on a slow link: each write the server makes is taken only when the
 * next tick of `ackEvery` ms comes, so the server's pipeline stays backed up
 * (as with a slow reader over TCP), but deterministically.
 */
function slowPeer(ackEvery: number) {
  let held: (() => void) | null = null
  const received: Buffer[] = []
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      received.push(chunk)
      held = cb
    },
  })
  const timer = setInterval(() => {
    const cb = held
    held = null
    cb?.()
  }, ackEvery)
  duplex.on('close', () => clearInterval(timer))
  return {
    duplex,
    stop: () => clearInterval(timer),
    frames(): ReceivedFrame[] {
      const frames: ReceivedFrame[] = []
      const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (r) => assert.fail(`bad frame: ${r}`) })
      for (const c of received) decoder.write(c)
      return frames
    },
  }
}

describe('CacheServer.create', () => {
  test('refuses a root that is missing or no directory, and page sizes out of range, leaving no descriptor open', async (t) => {
    const base = tempDir(t)
    writeFile(base, 'file', 'x')
    const before = fdCount()
    await assert.rejects(CacheServer.create({ root: join(base, 'missing') }), { code: 'ENOENT', message: `root ${join(base, 'missing')} does not exist` })
    await assert.rejects(CacheServer.create({ root: join(base, 'file') }), { code: 'ENOTDIR', message: `root ${join(base, 'file')} is not a directory` })
    for (const pageSize of [0, 1023, 1536.5, 16 * MiB + 1]) {
      await assert.rejects(CacheServer.create({ root: base, pageSize }), { name: 'RangeError', message: `page size must be from 1024 to 16777216 bytes, got ${pageSize}` })
    }
    await assert.rejects(CacheServer.create({ root: base, pageSize: 64 * KiB, minPageSize: 128 * KiB }), { name: 'RangeError', message: /^smallest page size must be from 1 to the page size \(65536\)/ })
    assert.equal(fdCount(), before)
  })

  test('an option refused once the store was opened (an unknown policy) leaves no store behind', { skip: noShm }, async (t) => {
    const dir = storeDir(t)
    const root = tempDir(t)
    const before = fdCount()
    await assert.rejects(CacheServer.create({ root, shmDir: dir, policy: 'bogus' as PolicyName }), { name: 'TypeError', message: 'unknown cache policy "bogus"; known: lru, tinylfu' })
    assert.equal(existsSync(dir), false, 'the store directory is not left claimed')
    assert.equal(fdCount(), before)
    // The same directory serves a server given the right options.
    const server = await created(t, { root, shmDir: dir, policy: 'lru' })
    assert.equal(server.stats().shm?.dir, dir)
  })

  test('a store directory it cannot use: no start when named, the heap with a warning when optional', { skip: noShm }, async (t) => {
    const open = storeDir(t)
    mkdirSync(open, { mode: 0o755 })
    chmodSync(open, 0o755)
    await assert.rejects(CacheServer.create({ root: tempDir(t), shmDir: open }), /owned by this user with mode 0700/)
    const server = await created(t, { shmDir: open, shmOptional: true })
    assert.equal(server.warnings.length, 1)
    assert.match(server.warnings[0], /owned by this user with mode 0700.*; cached blocks stay on the heap/)
    assert.equal(server.stats().shm, null)
    assert.deepEqual((await created(t)).warnings, [], 'the heap by choice is no warning')
  })

  test('CacheServer.create() that throws after the Redis tier connected leaves nothing running: the process can exit', { skip: redisInstalled() ? false : NO_REDIS }, async (t) => {
    const single = await startRedisCluster({ cluster: false })
    t.after(() => single.stop())
    const root = tempDir(t)
    const serverJs = fileURLToPath(new URL('../../lib/server/server.js', import.meta.url))
    // A page size out of range makes the constructor throw once the tier was made and is connecting.
    const script = `
      const { CacheServer } = await import(${JSON.stringify(serverJs)})
      await CacheServer.create({ root: ${JSON.stringify(root)}, redis: ${JSON.stringify(single.urls)}, pageSize: 1, shmDir: false })
        .then(() => console.log('created'), (err) => console.log('refused: ' + err.message))
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    const exited = once(child, 'exit')
    const gone = await within(exited, 5000)
    assert.match(out, /refused: page size/)
    // With the tier left connected, its socket (and ioredis' reconnects) keep the event loop alive.
    assert.equal(gone, true, 'the process exits by itself: nothing of the refused server is left running')
  })
})

describe('listen', () => {
  test('resolves with the URL bound, which url gives; a second listen is refused', async (t) => {
    const server = await created(t)
    assert.throws(() => server.url, { message: 'server is not listening' })
    const url = await server.listen('tcp://127.0.0.1:0')
    assert.match(url, /^tcp:\/\/127\.0\.0\.1:\d+$/)
    assert.notEqual(url, 'tcp://127.0.0.1:0', 'the port actually bound')
    assert.equal(server.url, url)
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls(), [])
    await assert.rejects(server.listen('tcp://127.0.0.1:0'), { message: 'server is already listening' })
    assert.equal(server.url, url)
  })

  test('an address in use is refused with its code and a message naming it; the server may then listen elsewhere', async (t) => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())))
    const port = (taken.address() as net.AddressInfo).port
    const server = await created(t)
    await assert.rejects(server.listen(`127.0.0.1:${port}`), { code: 'EADDRINUSE', message: `cannot listen on tcp://127.0.0.1:${port}: address already in use 127.0.0.1:${port}` })
    assert.throws(() => server.url, { message: 'server is not listening' })
    await assert.rejects(server.listen('ftp://x'), { code: 'EBADREQ' })
    const url = await server.listen('tcp://127.0.0.1:0')
    assert.deepEqual(await (await connectTo(t, url)).ls(), [])
  })

  test('listenHttp serves the root over HTTP on TCP only, once; httpUrl says where', async (t) => {
    const server = await created(t)
    assert.throws(() => server.httpUrl, { message: 'the HTTP gateway is not listening' })
    await assert.rejects(server.listenHttp(`unix:${join(tempDir(t), 'h.sock')}`), { code: 'EBADREQ', message: 'the HTTP gateway listens on TCP only: give HOST:PORT' })
    const url = await server.listenHttp('http://127.0.0.1:0/')
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(server.httpUrl, url)
    const res = await fetch(`${url}/-/healthy`)
    assert.deepEqual([res.status, await res.text()], [200, 'ok\n'])
    await assert.rejects(server.listenHttp('127.0.0.1:0'), { message: 'the HTTP gateway is already listening' })
  })
})

describe('handle', () => {
  test('handle() serves any duplex stream', async (t) => {
    const { server, root } = await startServer(t)
    writeFile(root, 'a.txt', 'hello')
    const [near, far] = duplexPair()
    const conn = server.handle(near)!
    const frames: ReceivedFrame[] = []
    const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (r) => assert.fail(r) })
    far.on('data', (c: Buffer) => decoder.write(c))
    far.end('{"id":7,"op":"read","path":"a.txt"}\n')
    await conn.closed
    assert.deepEqual(frames.map((f) => f.type), [FrameType.HELLO, FrameType.START, FrameType.DATA, FrameType.END])
    assert.equal(bytesOf(frames, 7).toString(), 'hello')
  })

  test('handle() of a duplex already closed is over at once: it holds no connection slot', async (t) => {
    const { server } = await startServer(t)
    const [near] = duplexPair()
    near.destroy()
    await once(near, 'close')
    const conn = server.handle(near)!
    assert.ok(await within(conn.closed, 2000), 'the connection never ended')
    assert.ok(await poll(() => server.stats().connections === 0, 2000))
  })

  test('handle() at the connection limit refuses the duplex and returns null; it counts as accepted', async (t) => {
    const server = await created(t, { maxConnections: 1 })
    const [first] = duplexPair()
    const conn = server.handle(first)
    assert.ok(conn)
    const [second, far] = duplexPair()
    const frames: ReceivedFrame[] = []
    const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (r) => assert.fail(r) })
    far.on('data', (c: Buffer) => decoder.write(c))
    assert.equal(server.handle(second), null)
    assert.ok(await poll(() => frames.some((f) => f.type === FrameType.ERROR)), 'the refused duplex is told why')
    assert.equal(JSON.parse(frames.find((f) => f.type === FrameType.ERROR)!.payload.toString()).code, 'EBUSY')
    assert.deepEqual([server.stats().connections, server.stats().totalConnections], [1, 2])
    conn.destroy()
    assert.ok(await within(conn.closed, 2000))
    assert.ok(await poll(() => server.stats().connections === 0, 2000))
  })
})

describe('stats', () => {
  test('reports every counter, from zero, on a server with neither Redis nor a store', async (t) => {
    const server = await created(t, { cacheSize: 64 * MiB })
    const s = server.stats() as unknown as Record<string, unknown>
    const counters = [
      'hits', 'misses', 'hitBytes', 'missBytes', 'evictions', 'diskReads', 'cacheBytes', 'entries', 'pinnedBytes', 'pinnedFiles',
      'metaHits', 'metaMisses', 'metaDirs', 'sharedHits', 'sharedMisses', 'sharedErrors', 'sharedCorrupt', 'sharedReadBytes',
      'sharedWrittenBytes', 'sharedSkipped', 'nacks', 'bufferedBytes', 'stalledClosed', 'connections', 'totalConnections',
      'bytesServed', 'locatedBytes', 'httpBytesServed',
    ]
    for (const key of counters) assert.equal(s[key], 0, key)
    assert.equal(s.cacheLimit, 64 * MiB)
    assert.equal(s.bufferedLimit, defaultMaxBuffered(64 * MiB))
    assert.equal(s.policy, 'tinylfu')
    assert.equal(s.sharedUp, null, 'no Redis tier')
    assert.equal(s.shm, null, 'blocks on the heap')
    assert.equal(typeof s.metaBytes, 'number')
    assert.ok(typeof s.uptime === 'number' && s.uptime >= 0)
    const known = new Set([...counters, 'cacheLimit', 'bufferedLimit', 'policy', 'sharedUp', 'shm', 'metaBytes', 'uptime'])
    assert.deepEqual(Object.keys(s).filter((k) => !known.has(k)), [], 'no counter left unchecked')
  })

  test('bufferedLimit is maxBuffered when given, never less than a block', async (t) => {
    assert.equal((await created(t, { maxBuffered: 5 * MiB })).stats().bufferedLimit, 5 * MiB)
    assert.equal((await created(t, { maxBuffered: 1000, blockSize: 64 * KiB })).stats().bufferedLimit, 64 * KiB)
    assert.equal((await created(t, { cacheSize: 4096 * MiB })).stats().bufferedLimit, 16 * MiB)
  })

  test('counts connections open and accepted, and the file bytes served', async (t) => {
    const { server, url, root } = await startServer(t, { shmDir: false })
    const data = writeFile(root, 'f.bin', 300_000)
    const a = await connectTo(t, url)
    const b = await connect(url)
    assert.ok(await poll(() => server.stats().connections === 2))
    assert.ok((await a.readFile('f.bin')).equals(data))
    assert.ok((await a.readFile('f.bin', { offset: 1000, length: 5000 })).equals(data.subarray(1000, 6000)))
    assert.equal(server.stats().bytesServed, 305_000)
    await b.close()
    assert.ok(await poll(() => server.stats().connections === 1))
    assert.equal(server.stats().totalConnections, 2)
    const before = server.stats().uptime
    await sleep(20)
    assert.ok(server.stats().uptime > before)
  })

  test('with a store: its directory, the blocks in it and the bytes of their pages', { skip: noShm }, async (t) => {
    const dir = storeDir(t)
    const { server, url, root } = await startServer(t, { shmDir: dir, blockSize: 64 * KiB, cacheSize: 8 * MiB })
    writeFile(root, 'f.bin', 2 * 64 * KiB + 100)
    assert.deepEqual(server.stats().shm, { dir, blocks: 0, bytes: 0 })
    await (await connectTo(t, url)).readFile('f.bin')
    assert.deepEqual(server.stats().shm, { dir, blocks: 3, bytes: 2 * 64 * KiB + 4096 })
  })
})

describe('close', () => {
  test('frees what the server holds: its sockets, connections, the store and its directory, the root\'s descriptor', { skip: noShm }, async (t) => {
    const root = tempDir(t)
    writeFile(root, 'f.bin', 200_000)
    const dir = storeDir(t)
    const socket = join(tempDir(t), 's.sock')
    const before = fdCount()
    const server = await CacheServer.create({ root, settle: 0, shmDir: dir, blockSize: 64 * KiB, cacheSize: 8 * MiB })
    t.after(() => server.close())
    const url = await server.listen(`unix:${socket}`)
    const http = await server.listenHttp('127.0.0.1:0')
    const client = await connect(url, { retryDelays: [] })
    t.after(() => client.close())
    await client.readFile('f.bin')
    assert.ok(server.stats().shm!.blocks > 0)
    await server.close()
    assert.equal(existsSync(socket), false, 'the socket file is removed')
    assert.equal(existsSync(dir), false, 'the store and its directory are gone')
    assert.equal(await codeOf(client.ls()), 'ECLOSED')
    await client.close()
    assert.equal(await codeOf(connect(url, { timeout: 2000 })), 'ECONNECT')
    await assert.rejects(fetch(`${http}/-/healthy`), 'the HTTP gateway no longer listens')
    assert.ok(await poll(() => fdCount() === before, 2000), `${fdCount()} descriptors open, ${before} before`)
    assert.ok(await within(server.close(), 2000), 'a second close() resolves too')
  })

  test('stops a warm started through warm(): it fails with ESHUTDOWN, and close resolves in bounded time', async (t) => {
    // Files written just now wait for the settle window: the warm is still running at close().
    const server = await created(t, { settle: 2000 })
    for (let i = 0; i < 20; i++) writeFile(server.root, `d/${i}.bin`, 10_000)
    const warming = server.warm('d').then(
      () => 'finished',
      (err: { code?: string; message?: string }) => `${err.code}: ${err.message}`,
    )
    await sleep(100)
    assert.ok(await within(server.close(), 8000), 'close resolved')
    assert.equal(await warming, 'ESHUTDOWN: the server closed before warm finished')
    assert.equal(server.stats().entries, 0, 'nothing was loaded')
  })
})

describe('close({grace}) in process', () => {
  test('waits for a read in flight while its reader is paused, answers a new request with ESHUTDOWN, and resolves once it is sent', async (t) => {
    const { server, url, root } = await startServer(t)
    const size = 40 * MiB
    const data = writeFile(root, 'big.bin', size)
    // Without retries: the server's own answer to the late request (ESHUTDOWN) reaches the caller.
    const client = await connect(url, { retryDelays: [] })
    t.after(() => client.close())
    const stream = client.read('big.bin', { highWaterMark: 64 * KiB }) // not consumed yet: the client holds the socket
    assert.ok(await poll(() => server.stats().bytesServed > 0), 'the read started')
    let closed = false
    const closing = server.close({ grace: 5000 }).then(() => void (closed = true))
    const late = codeOf(client.stat('big.bin'))
    await sleep(300)
    assert.equal(closed, false, 'close waits for the running read while its reader is paused')
    assert.ok(server.stats().bytesServed < size, 'the paused reader holds the read back')
    // Resume: every byte that arrives is the file's, in order.
    let got = 0
    let firstBad = -1
    let outcome = 'ok'
    try {
      for await (const chunk of stream) {
        const c = chunk as Buffer
        if (firstBad < 0 && !c.equals(data.subarray(got, got + c.length))) firstBad = got
        got += c.length
      }
    } catch (err) {
      outcome = String((err as { code?: unknown }).code)
    }
    assert.equal(firstBad, -1, "every byte delivered is the file's")
    assert.equal(await late, 'ESHUTDOWN')
    assert.ok(await within(closing, 5000), 'close resolved once the read was done')
    assert.equal(server.stats().bytesServed, size, 'the server ran the read to its end instead of cutting it at close()')
    // (That the client also gets the last pages and END is the test below.)
    assert.ok(got >= size - 1 * MiB, `the client got ${got} of ${size} bytes (${outcome})`)
    assert.equal(server.stats().connections, 0)
    // The server no longer listens.
    assert.equal(await codeOf(connect(url, { timeout: 2000 })), 'ECONNECT')
  })

  test(
    'a read still running at close({grace}) reaches a slow peer complete, END included',
    async (t) => {
      const { server, root } = await startServer(t)
      const size = 8 * MiB
      const data = writeFile(root, 'big.bin', size)
      const peer = slowPeer(2)
      t.after(() => peer.stop())
      const conn = server.handle(peer.duplex)
      assert.ok(conn)
      peer.duplex.push(JSON.stringify({ id: 1, op: 'read', path: 'big.bin' }) + '\n')
      assert.ok(await poll(() => server.stats().bytesServed > 0), 'the read started')
      assert.ok(await within(server.close({ grace: 10_000 }), 10_000), 'close resolved')
      const frames = peer.frames()
      const bytes = Buffer.concat(frames.filter((f) => f.id === 1 && f.type === FrameType.DATA).map((f) => f.payload))
      assert.equal(server.stats().bytesServed, size, 'the server produced the whole read')
      assert.equal(bytes.length, size, 'the peer received every byte')
      assert.ok(bytes.equals(data))
      assert.ok(frames.some((f) => f.id === 1 && f.type === FrameType.END), 'and the END frame')
    },
  )

  test('close with a short grace cuts off a reader that never reads: the client sees ECLOSED', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'big.bin', 40 * MiB)
    const client = await connect(url)
    t.after(() => client.close())
    const stream = client.read('big.bin', { highWaterMark: 64 * KiB })
    assert.ok(await poll(() => server.stats().bytesServed > 0), 'the read started')
    assert.ok(await within(server.close({ grace: 200 }), 5000), 'close resolved in bounded time')
    assert.equal(server.stats().connections, 0)
    // Reading now drains what was on its way, then meets the end of a connection that was cut.
    const outcome = drain(stream).then(
      (bytes) => ({ bytes, code: 'ok' }),
      (err: { code?: string }) => ({ bytes: -1, code: String(err.code) }),
    )
    assert.ok(await within(outcome, 10_000), 'the read ended')
    const { bytes, code } = await outcome
    assert.equal(code, 'ECLOSED', `the read ended with ${code} (${bytes} bytes)`)
  })

  test('close with a grace and no requests running resolves promptly and closes idle clients', async (t) => {
    const { server, url } = await startServer(t)
    const client = await connect(url)
    t.after(() => client.close())
    assert.deepEqual(await client.ls(), [])
    assert.ok(await within(server.close({ grace: 20_000 }), 5000), 'an idle connection does not hold the grace period')
    assert.equal(await codeOf(client.ls()), 'ECLOSED')
  })
})
