import assert from 'node:assert/strict'
import { closeSync, ftruncateSync, openSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'
import { tamperProxy } from '../helpers/tamper-proxy.js'
import { poll } from '../helpers/wait.js'
import { drain } from '../helpers/outcome.js'

const MiB = 1024 * 1024
const PAGE = 256 * 1024


const frameType = (frame: Buffer) => frame[3]

describe('integrity: the NACK path repairs what the link breaks', () => {
  for (const checksum of ['crc32', 'md5'] as const) {
    test(`resends a corrupt page and delivers exactly the file (${checksum})`, async (t) => {
      const { server, url, root } = await startServer(t, { checksum })
      const data = writeFile(root, 'f.bin', 2 * MiB)
      let dataFrames = 0
      const proxy = await tamperProxy(t, url, (frame) => {
        if (frameType(frame) !== FrameType.DATA || ++dataFrames !== 3) return frame
        const bad = Buffer.from(frame)
        bad[bad.length - 1000] ^= 0x10 // one bit inside the third page's payload
        return bad
      })
      const client = await connectTo(t, proxy)
      const stream = client.read('f.bin')
      const { bytes, error } = await drain(stream)
      assert.equal(error, null)
      assert.ok(bytes.equals(data))
      assert.equal(stream.nacks, 1)
      assert.equal(server.stats().nacks, 1)
    })
  }

  test('recovers every request in flight when a frame header is corrupt', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 2 * MiB)
    let dataFrames = 0
    const proxy = await tamperProxy(t, url, (frame) => {
      if (frameType(frame) !== FrameType.DATA || ++dataFrames !== 2) return frame
      const bad = Buffer.from(frame)
      bad[13] ^= 0x01 // the length field: the header CRC catches it
      return bad
    })
    const client = await connect(proxy, { progressTimeout: 200 })
    t.after(() => client.close())
    const [a, b] = await Promise.all([drain(client.read('f.bin')), drain(client.read('f.bin'))])
    assert.equal(a.error, null)
    assert.equal(b.error, null)
    assert.ok(a.bytes.equals(data) && b.bytes.equals(data))
    assert.equal(client.counters().lostSync, 1)
    assert.ok(client.counters().nacks >= 1)
  })

  test('notices a dropped page by its sequence number and gets it again', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 2 * MiB)
    let dataFrames = 0
    const proxy = await tamperProxy(t, url, (frame) => (frameType(frame) === FrameType.DATA && ++dataFrames === 2 ? Buffer.alloc(0) : frame))
    const client = await connectTo(t, proxy)
    const stream = client.read('f.bin')
    const { bytes, error } = await drain(stream)
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
    assert.equal(stream.nacks, 1)
  })

  test('asks again after the progress timeout when the last frame is lost', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 300_000)
    let ends = 0
    const proxy = await tamperProxy(t, url, (frame) => (frameType(frame) === FrameType.END && ++ends === 1 ? Buffer.alloc(0) : frame))
    const client = await connect(proxy, { progressTimeout: 100 })
    t.after(() => client.close())
    const { bytes, error } = await drain(client.read('f.bin'))
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
    assert.ok(client.counters().timeouts >= 1) // more than one on a busy machine is fine
  })

  test('asks again after the progress timeout when the last frame is cut short', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 300_000)
    let ends = 0
    // Half of the END frame arrives, then nothing: the client holds a partial frame that will never complete.
    const proxy = await tamperProxy(t, url, (frame) => (frameType(frame) === FrameType.END && ++ends === 1 ? frame.subarray(0, frame.length >> 1) : frame))
    const client = await connect(proxy, { progressTimeout: 100 })
    t.after(() => client.close())
    const { bytes, error } = await drain(client.read('f.bin'))
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
    assert.ok(client.counters().timeouts >= 1) // more than one on a busy machine is fine
  })

  test('drops duplicated frames by sequence number without asking again', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', MiB + 5)
    const proxy = await tamperProxy(t, url, (frame) => (frameType(frame) === FrameType.DATA ? Buffer.concat([frame, frame]) : frame))
    const client = await connectTo(t, proxy)
    const stream = client.read('f.bin')
    const { bytes, error } = await drain(stream)
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
    assert.equal(stream.nacks, 0)
  })

  test('resumes from the resent pages even when the RESYNC marker itself is lost', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 2 * MiB)
    let dataFrames = 0
    let resyncs = 0
    const proxy = await tamperProxy(t, url, (frame) => {
      if (frameType(frame) === FrameType.RESYNC && ++resyncs === 1) return Buffer.alloc(0)
      if (frameType(frame) !== FrameType.DATA || ++dataFrames !== 2) return frame
      const bad = Buffer.from(frame)
      bad[bad.length - 1] ^= 0xff
      return bad
    })
    const client = await connectTo(t, proxy)
    const stream = client.read('f.bin')
    const { bytes, error } = await drain(stream)
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
    assert.equal(resyncs, 1)
    assert.equal(stream.nacks, 1, 'the epoch in the resent frames stood in for the lost RESYNC')
  })

  test('fails a read whose frames stop before END instead of ending short', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'f.bin', 2 * MiB)
    let dataFrames = 0
    const proxy = await tamperProxy(t, url, (frame) => {
      if (frameType(frame) === FrameType.DATA) dataFrames++
      return dataFrames >= 4 ? Buffer.alloc(0) : frame // swallow everything from the 4th page on
    })
    const client = await connectTo(t, proxy)
    let received = 0
    const counted = client.read('f.bin').on('data', (c: Buffer) => void (received += c.length))
    const result = drain(counted)
    // However busy the machine: wait for the three pages let through, then hang up.
    assert.ok(await poll(() => received === 3 * PAGE), `received ${received} bytes`)
    await client.close()
    const { bytes, error } = await result
    assert.equal(error?.code, 'ECLOSED')
    assert.equal(bytes.length, 3 * PAGE)
  })

  test('gives up with ETIMEDOUT when the server falls silent for good', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 2 * MiB)
    let dataFrames = 0
    const proxy = await tamperProxy(t, url, (frame) => {
      if (frameType(frame) === FrameType.DATA) dataFrames++
      return dataFrames >= 2 ? Buffer.alloc(0) : frame
    })
    const client = await connect(proxy, { progressTimeout: 100 })
    t.after(() => client.close())
    const { bytes, error } = await drain(client.read('f.bin'))
    assert.equal(error?.code, 'ETIMEDOUT')
    // At most the one page let through (none, if a timeout on a busy machine came before it), and true bytes.
    assert.ok(bytes.length <= PAGE)
    assert.ok(bytes.equals(data.subarray(0, bytes.length)))
    assert.ok(client.counters().timeouts >= 5)
  })
})

describe('readFile of more than a Buffer holds', () => {
  test('a 5 GiB (sparse) file rejects with ETOOBIG at START, and the connection goes on', async (t) => {
    const { url, root } = await startServer(t)
    const fd = openSync(join(root, 'huge.bin'), 'w')
    ftruncateSync(fd, 5 * 1024 ** 3)
    closeSync(fd)
    writeFile(root, 'small.txt', 'ok')
    const client = await connectTo(t, url)
    await assert.rejects(client.readFile('huge.bin'), (err: NodeJS.ErrnoException) => err.code === 'ETOOBIG' && /use read\(\) or readChunks\(\)/.test(err.message))
    assert.equal((await client.readFile('small.txt')).toString(), 'ok')
    assert.equal(client.pending, 0)
  })
})

describe('connection life', () => {
  test('fails requests in flight with ECLOSED when the server goes away', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'huge.bin', 32 * MiB)
    const client = await connectTo(t, url)
    const result = drain(client.read('huge.bin'))
    await sleep(20)
    await server.close()
    const { error } = await result
    assert.equal(error?.code, 'ECLOSED')
    await assert.rejects(client.stat('huge.bin'), { code: 'ECLOSED' })
  })

  test('rejects connect with ECONNECT when nothing listens', async () => {
    const probe = net.createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const { port } = probe.address() as net.AddressInfo
    await new Promise<void>((r) => probe.close(() => r()))
    await assert.rejects(connect(`127.0.0.1:${port}`), { code: 'ECONNECT' })
  })

  test('rejects connect with EPROTO when the peer is not a cacheserv-pipe server', async (t) => {
    const liar = net.createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n' + 'x'.repeat(100)))
    await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r))
    t.after(() => new Promise<void>((r) => liar.close(() => r())))
    const { port } = liar.address() as net.AddressInfo
    await assert.rejects(connect(`tcp://127.0.0.1:${port}`), { code: 'EPROTO' })
  })

  test('uses CACHESERV_SERVER when no address is given', async (t) => {
    const { url } = await startServer(t)
    const saved = process.env.CACHESERV_SERVER
    process.env.CACHESERV_SERVER = url
    t.after(() => {
      if (saved === undefined) delete process.env.CACHESERV_SERVER
      else process.env.CACHESERV_SERVER = saved
    })
    const client = await connect()
    t.after(() => client.close())
    assert.equal(client.hello.protocol, 1)
  })
})
