/**
 * upload(), a file written to the server: the bytes go out as DATA pages on
 * the request's id (HELLO's page size, at most what a server takes from a
 * client, and its checksum), then END with the length; the RESULT says what
 * was stored, and must be the size sent. A failing source cancels the upload
 * on the server; an upload is never NACKed nor taken for lost while it sends;
 * a RESULT whose payload arrived damaged still says the file is stored, once
 * every byte was sent.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { ChecksumId, FrameType, MAX_UPLOAD_PAYLOAD } from '../../lib/protocol/constants.js'
import { encodeFrame, jsonFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { InboundDecoder } from '../../lib/protocol/inbound-decoder.js'
import { isUploadTemp } from '../../lib/fs/upload-temp.js'
import { loopbackServer } from '../helpers/loopback.js'
import { frameBytes, SCRIPTED_HELLO } from '../helpers/scripted-server.js'
import { connectTo, startServer } from '../helpers/server.js'
import { poll } from '../helpers/wait.js'

const MiB = 1024 * 1024

function tmpFiles(dir: string): string[] {
  return readdirSync(dir).filter(isUploadTemp)
}

interface Upload {
  line: Record<string, unknown>
  frames: ReceivedFrame[]
}

/**
 * A fake server that takes uploads as a server does (request lines and
 * frames) and answers each at its END with what `answer` gives for it.
 */
async function uploadServer(t: Pick<TestContext, 'after'>, answer: (u: Upload) => Buffer, hello: Record<string, unknown> = SCRIPTED_HELLO): Promise<{ url: string; uploads: Upload[] }> {
  const uploads: Upload[] = []
  const url = await loopbackServer(t, (socket) => {
    socket.on('error', () => {})
    socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello)))
    const byId = new Map<number, Upload>()
    const decoder = new InboundDecoder(64 * 1024, {
      onLine: (line) => {
        const req = JSON.parse(line.toString()) as Record<string, unknown>
        const u = { line: req, frames: [] }
        uploads.push(u)
        byId.set(req.id as number, u)
      },
      onFrame: (f) => {
        const u = byId.get(f.id)!
        u.frames.push({ ...f, payload: Buffer.from(f.payload) })
        if (f.type === FrameType.END) socket.write(answer(u))
      },
      onFatal: (code, message) => assert.fail(`${code}: ${message}`),
    })
    socket.on('data', (chunk: Buffer) => decoder.write(chunk))
  })
  return { url, uploads }
}

const stored = (u: Upload, size: number) => frameBytes(jsonFrame(FrameType.RESULT, u.line.id as number, 0, { path: u.line.path, size }))
const sent = (u: Upload) => u.frames.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0)

describe('upload on the wire', () => {
  test('a Buffer goes out as DATA pages of HELLO\'s page size numbered from 1, then END with the length; its line says the length too', async (t) => {
    const { url, uploads } = await uploadServer(t, (u) => stored(u, sent(u)))
    const client = await connect(url)
    t.after(() => client.close())
    const data = randomBytes(2500)
    assert.deepEqual(await client.write('d/out.bin', data), { path: 'd/out.bin', size: 2500 })
    const [u] = uploads
    assert.deepEqual(u.line, { id: u.line.id, op: 'write', path: 'd/out.bin', length: 2500 })
    assert.deepEqual(u.frames.map((f) => [f.type, f.seq, f.payload.length]), [
      [FrameType.DATA, 1, 1024],
      [FrameType.DATA, 2, 1024],
      [FrameType.DATA, 3, 452],
      [FrameType.END, 4, 15],
    ])
    assert.ok(u.frames.every((f) => f.id === u.line.id && f.intact && f.checksum === ChecksumId.crc32))
    assert.ok(Buffer.concat(u.frames.slice(0, 3).map((f) => f.payload)).equals(data))
    assert.deepEqual(JSON.parse(u.frames[3].payload.toString()), { length: 2500 })
  })

  test('a source of chunks: no length on the line, each chunk cut into pages, an empty one sending nothing', async (t) => {
    const { url, uploads } = await uploadServer(t, (u) => stored(u, sent(u)))
    const client = await connect(url)
    t.after(() => client.close())
    async function* chunks() {
      yield Buffer.alloc(1500, 1)
      yield new Uint8Array(0)
      yield new Uint8Array(10).fill(2)
    }
    assert.deepEqual(await client.write('out.bin', chunks()), { path: 'out.bin', size: 1510 })
    const [u] = uploads
    assert.equal('length' in u.line, false)
    assert.deepEqual(u.frames.map((f) => [f.type, f.seq, f.payload.length]), [
      [FrameType.DATA, 1, 1024],
      [FrameType.DATA, 2, 476],
      [FrameType.DATA, 3, 10],
      [FrameType.END, 4, 15],
    ])
  })

  test('pages are never bigger than a server takes from a client, whatever HELLO says; the checksum is HELLO\'s', async (t) => {
    const { url, uploads } = await uploadServer(t, (u) => stored(u, sent(u)), { ...SCRIPTED_HELLO, checksum: 'md5', pageSize: 16 * MiB })
    const client = await connect(url)
    t.after(() => client.close())
    await client.write('big.bin', Buffer.alloc(MAX_UPLOAD_PAYLOAD + 5))
    const data = uploads[0].frames.filter((f) => f.type === FrameType.DATA)
    assert.deepEqual(data.map((f) => f.payload.length), [MAX_UPLOAD_PAYLOAD, 5])
    assert.ok(uploads[0].frames.every((f) => f.checksum === ChecksumId.md5 && f.intact))
  })

  test('a server that says it stored another size than was sent: EPROTO', async (t) => {
    const { url } = await uploadServer(t, (u) => stored(u, sent(u) - 1))
    const client = await connect(url)
    t.after(() => client.close())
    await assert.rejects(client.write('out.bin', Buffer.from('hello')), { code: 'EPROTO', message: 'the server stored 4 bytes of out.bin; 5 were sent' })
  })
})

describe('uploads to a real server', () => {
  test('an async iterable of chunks (odd sizes, empty ones, Uint8Array) is written as their concatenation', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const chunks: (Buffer | Uint8Array)[] = [randomBytes(1), Buffer.alloc(0), randomBytes(300 * 1024 + 7), new Uint8Array(randomBytes(70_000)), randomBytes(2 * MiB + 1)]
    const expected = Buffer.concat(chunks)
    async function* gen() {
      for (const c of chunks) {
        await sleep(1)
        yield c
      }
    }
    const client = await connectTo(t, url)
    assert.deepEqual(await client.write('it.bin', gen()), { path: 'it.bin', size: expected.length })
    assert.ok(readFileSync(join(root, 'it.bin')).equals(expected))
    assert.ok((await client.readFile('it.bin')).equals(expected))
  })

  test('10 concurrent uploads on one connection (8 run, 2 wait their turn) land byte-exact, no frame split by another', { timeout: 60_000 }, async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const client = await connectTo(t, url)
    // Several MiB each: the socket's buffer fills, so every upload waits for 'drain' over and over.
    const files = Array.from({ length: 10 }, (_, i) => ({ path: `c${i}.bin`, data: randomBytes(3 * MiB + i * 1001) }))
    const results = await Promise.all(files.map((f) => client.write(f.path, f.data)))
    assert.deepEqual(
      results,
      files.map((f) => ({ path: f.path, size: f.data.length })),
    )
    for (const f of files) assert.ok(readFileSync(join(root, f.path)).equals(f.data), f.path)
  })

  test('a server with 8 MiB pages takes a 10 MiB upload (client frames stay within 4 MiB)', async (t) => {
    const { url, root } = await startServer(t, { writable: true, pageSize: 8 * MiB })
    const client = await connectTo(t, url)
    assert.equal(client.hello.pageSize, 8 * MiB)
    const data = randomBytes(10 * MiB + 3)
    assert.deepEqual(await client.write('big.bin', data), { path: 'big.bin', size: data.length })
    assert.ok(readFileSync(join(root, 'big.bin')).equals(data))
  })

  test('a source that throws fails the write with its error, cancels it on the server, and the connection goes on', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const client = await connectTo(t, url)
    async function* failing() {
      yield randomBytes(300 * 1024)
      throw Object.assign(new Error('disk on fire'), { code: 'EIO' })
    }
    await assert.rejects(client.write('f.bin', failing()), /disk on fire/)
    assert.ok(await poll(() => tmpFiles(root).length === 0), 'the temporary file is removed')
    assert.equal(client.pending, 0)
    // Eight more failures would exhaust the server's upload slots if the server kept them.
    for (let i = 0; i < 9; i++) await assert.rejects(client.write(`f${i}.bin`, failing()), /disk on fire/)
    const data = randomBytes(1000)
    assert.deepEqual(await client.write('ok.bin', data), { path: 'ok.bin', size: data.length })
  })

  test('an upload slower than the client\'s progress timeout goes through: the client does not take the server\'s silence for a loss while it sends', { timeout: 20_000 }, async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const client = await connect(url, { progressTimeout: 400 })
    t.after(() => client.close())
    const chunks = Array.from({ length: 8 }, () => randomBytes(10_000))
    async function* slow() {
      for (const c of chunks) {
        await sleep(400) // 3.2 s in all: past the 5 silent timeouts (2 s) that would end in ETIMEDOUT
        yield c
      }
    }
    assert.deepEqual(await client.write('slow.bin', slow()), { path: 'slow.bin', size: 80_000 })
    assert.ok(readFileSync(join(root, 'slow.bin')).equals(Buffer.concat(chunks)))
    assert.equal(client.counters().nacks, 0, 'no NACK was sent')
  })

  test('a refused write does not wait for a source that produces nothing', { timeout: 10_000 }, async (t) => {
    const { url } = await startServer(t) // not writable
    const client = await connectTo(t, url)
    async function* never(): AsyncGenerator<Buffer> {
      await new Promise(() => {}) // a terminal on stdin, say
      yield Buffer.alloc(0)
    }
    await assert.rejects(client.write('f.bin', never()), (err: NodeJS.ErrnoException) => err.code === 'EROFS')
  })
})

describe('an upload whose RESULT arrives damaged', () => {
  /** A fake server answering the first request line, after `delay` ms, with a RESULT whose payload has one byte flipped. */
  async function damagedResultServer(t: Parameters<typeof loopbackServer>[0], delay: number, seen: string[]): Promise<string> {
    return loopbackServer(t, (socket) => {
      socket.on('error', () => {})
      socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, SCRIPTED_HELLO)))
      let answered = false
      socket.on('data', (chunk: Buffer) => {
        seen.push(chunk.toString('latin1'))
        if (answered) return
        answered = true
        const { id } = JSON.parse(chunk.toString('latin1').split('\n')[0]!) as { id: number }
        setTimeout(() => {
          const bytes = Buffer.concat(encodeFrame(jsonFrame(FrameType.RESULT, id, 0, { path: 'out.bin', size: 5 }), ChecksumId.crc32))
          const at = bytes.length - 2
          bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at)
          socket.write(bytes)
        }, delay)
      })
    })
  }

  test('before the upload was sent whole, it fails with ECORRUPT (what it stored is unknown)', async (t) => {
    const url = await damagedResultServer(t, 0, [])
    const client = await connect(url)
    t.after(() => client.close())
    async function* slow() {
      yield Buffer.from('hel')
      await sleep(500)
      yield Buffer.from('lo')
    }
    await assert.rejects(client.write('out.bin', slow()), { code: 'ECORRUPT' })
  })

  test('is stored: the header says RESULT, and the client knows the size it sent (a NACK would only fail it)', async (t) => {
    const seen: string[] = []
    // After the upload's frames are in (they follow the line at once on loopback).
    const url = await damagedResultServer(t, 200, seen)
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    assert.deepEqual(await client.write('out.bin', Buffer.from('hello')), { path: 'out.bin', size: 5 })
    assert.equal(client.counters().nacks, 0, 'the client NACKed the upload')
    await sleep(100)
    assert.ok(!seen.join('').includes('"op":"nack"'), 'a NACK reached the server')
  })
})
