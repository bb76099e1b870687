/**
 * The `write` command end to end: uploads land byte-exact and atomically,
 * bad uploads leave the target and the directory as they were.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { checksumId } from '../../lib/protocol/checksum.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { json, type RawPeer, rawPeer } from '../helpers/raw.js'
import { writeFile } from '../helpers/fixtures.js'
import { within } from '../helpers/wait.js'
import { connectTo, startServer } from '../helpers/server.js'

const MiB = 1024 * 1024
const CRC32 = checksumId('crc32')

function tmpFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.cacheserv-tmp'))
}

/** Poll (bounded) until the directory's temp files satisfy `pred`; returns them. */
async function waitTmp(dir: string, pred: (names: string[]) => boolean, timeout = 5000): Promise<string[]> {
  const until = Date.now() + timeout
  let names = tmpFiles(dir)
  while (!pred(names) && Date.now() < until) {
    await sleep(10)
    names = tmpFiles(dir)
  }
  return names
}

/** One upload frame, encoded as the client library would. */
function frame(type: number, id: number, seq: number, payload: Buffer): Buffer {
  return Buffer.concat(encodeFrame({ type, id, seq, payload }, CRC32))
}

const endFrame = (id: number, seq: number, length: number) => frame(FrameType.END, id, seq, Buffer.from(JSON.stringify({ length })))

/** Send `data` as DATA frames of `page` bytes from seq `first`; returns the next seq. */
function sendData(peer: RawPeer, id: number, data: Buffer, page: number, first = 1): number {
  let seq = first
  for (let at = 0; at < data.length; at += page) peer.socket.write(frame(FrameType.DATA, id, seq++, data.subarray(at, at + page)))
  return seq
}

describe('write lands byte-exact', () => {
  const cases: [string, () => Buffer][] = [
    ['an empty buffer', () => Buffer.alloc(0)],
    ['1 byte', () => Buffer.from([0x7f])],
    ['several MiB, not a whole number of pages', () => randomBytes(5 * MiB + 12345)],
  ]
  for (const [name, make] of cases) {
    test(`${name} is on disk and reads back exact`, async (t) => {
      const { url, root } = await startServer(t, { writable: true })
      mkdirSync(join(root, 'out'))
      const data = make()
      const client = await connectTo(t, url)
      assert.deepEqual(await client.write('out/f.bin', data), { path: 'out/f.bin', size: data.length })
      assert.ok(readFileSync(join(root, 'out/f.bin')).equals(data), 'on disk')
      assert.ok((await client.readFile('out/f.bin')).equals(data), 'through the server')
      assert.deepEqual(tmpFiles(join(root, 'out')), [])
    })
  }

  test('overwriting a cached file: the next read gets the new bytes', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const old = writeFile(root, 'v.bin', MiB + 100)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('v.bin')).equals(old))
    assert.equal((await client.stat('v.bin')).cached, true)
    const next = randomBytes(MiB + 100)
    await client.write('v.bin', next)
    assert.ok((await client.readFile('v.bin')).equals(next))
    assert.ok(readFileSync(join(root, 'v.bin')).equals(next))
  })
})

describe('write refuses', () => {
  test('EROFS from a server not started writable, leaving the target unchanged', async (t) => {
    const { url, root } = await startServer(t)
    const old = writeFile(root, 'keep.bin', 1000)
    const client = await connectTo(t, url)
    await assert.rejects(client.write('keep.bin', randomBytes(2000)), { code: 'EROFS' })
    await assert.rejects(client.write('new.bin', Buffer.from('x')), { code: 'EROFS' })
    assert.ok(readFileSync(join(root, 'keep.bin')).equals(old))
    assert.deepEqual(readdirSync(root), ['keep.bin'])
    assert.ok((await client.readFile('keep.bin')).equals(old), 'the connection goes on')
  })

  test('EACCES for paths leaving the root', async (t) => {
    const { url } = await startServer(t, { writable: true })
    const client = await connectTo(t, url)
    await assert.rejects(client.write('../x', Buffer.from('x')), { code: 'EACCES' })
    await assert.rejects(client.write('/etc/x', Buffer.from('x')), { code: 'EACCES' })
  })

  test('ENOENT when the directory does not exist', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const client = await connectTo(t, url)
    await assert.rejects(client.write('nodir/x.bin', Buffer.from('x')), { code: 'ENOENT' })
    assert.deepEqual(readdirSync(root), [])
  })

  test('EISDIR when the target is a directory', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    mkdirSync(join(root, 'd'))
    const client = await connectTo(t, url)
    await assert.rejects(client.write('d', Buffer.from('x')), { code: 'EISDIR' })
    await assert.rejects(client.write('', Buffer.from('x')), { code: 'EISDIR' })
    assert.deepEqual(readdirSync(join(root, 'd')), [])
  })
})

describe('uploads on the wire', () => {
  test('a reader during a write sees the whole old file, and the new one after END', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const dir = join(root, 'w')
    const old = writeFile(root, 'w/f.bin', 3 * MiB + 1)
    const next = randomBytes(2 * MiB + 333)
    const peer = await rawPeer(t, url)
    const page = 64 * 1024
    peer.send({ id: 1, op: 'write', path: 'w/f.bin', length: next.length })
    const half = 16 * page
    const seq = sendData(peer, 1, next.subarray(0, half), page)
    assert.equal((await waitTmp(dir, (n) => n.length === 1)).length, 1, 'the upload is under way in a temp file')

    const reader = await connectTo(t, url)
    assert.ok((await reader.readFile('w/f.bin')).equals(old), 'the old file, complete')
    assert.ok(readFileSync(join(dir, 'f.bin')).equals(old))

    const last = sendData(peer, 1, next.subarray(half), page, seq)
    peer.socket.write(endFrame(1, last, next.length))
    const done = await peer.done(1)
    assert.equal(done.type, FrameType.RESULT, JSON.stringify(json(done)))
    assert.deepEqual(json(done), { path: 'w/f.bin', size: next.length })
    assert.ok((await reader.readFile('w/f.bin')).equals(next), 'the new file after END')
    assert.deepEqual(tmpFiles(dir), [])
  })

  test('a corrupt uploaded frame fails with ECHECKSUM, leaving the target and directory as they were', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const dir = join(root, 'c')
    const old = writeFile(root, 'c/f.bin', 5000)
    const peer = await rawPeer(t, url)
    const data = randomBytes(3 * 8192)
    peer.send({ id: 1, op: 'write', path: 'c/f.bin', length: data.length })
    peer.socket.write(frame(FrameType.DATA, 1, 1, data.subarray(0, 8192)))
    const bad = frame(FrameType.DATA, 1, 2, data.subarray(8192, 16384))
    bad[bad.length - 100] ^= 0x01 // a payload byte, after the digest was computed
    peer.socket.write(bad)
    peer.socket.write(frame(FrameType.DATA, 1, 3, data.subarray(16384)))
    peer.socket.write(endFrame(1, 4, data.length))
    const done = await peer.done(1)
    assert.equal(done.type, FrameType.ERROR)
    assert.equal(json(done).code, 'ECHECKSUM')
    assert.ok(readFileSync(join(dir, 'f.bin')).equals(old))
    assert.deepEqual(await waitTmp(dir, (n) => n.length === 0), [])
    assert.deepEqual(readdirSync(dir), ['f.bin'])
    peer.send({ id: 2, op: 'stat', path: 'c/f.bin' })
    assert.equal(json(await peer.done(2)).size, old.length, 'the connection goes on')
  })

  test('a client that disconnects mid-upload leaves no temp file and the target unchanged', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const dir = join(root, 'd')
    const old = writeFile(root, 'd/f.bin', 4000)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'write', path: 'd/f.bin', length: MiB })
    sendData(peer, 1, randomBytes(MiB / 4), 32 * 1024)
    assert.equal((await waitTmp(dir, (n) => n.length === 1)).length, 1, 'the upload had started')
    peer.socket.destroy()
    assert.deepEqual(await waitTmp(dir, (n) => n.length === 0), [], 'temp file removed after the hang-up')
    assert.ok(readFileSync(join(dir, 'f.bin')).equals(old))
  })

  test('END with a length other than the bytes sent fails with EBADREQ', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const dir = join(root, 'e')
    mkdirSync(dir)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'write', path: 'e/f.bin' })
    peer.socket.write(frame(FrameType.DATA, 1, 1, Buffer.from('0123456789')))
    peer.socket.write(endFrame(1, 2, 11))
    const done = await peer.done(1)
    assert.equal(done.type, FrameType.ERROR)
    assert.equal(json(done).code, 'EBADREQ')
    assert.deepEqual(await waitTmp(dir, (n) => n.length === 0), [])
    assert.deepEqual(readdirSync(dir), [], 'no target was created')
  })

  test('END that disagrees with the length of the request line fails with EBADREQ', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const old = writeFile(root, 'g.bin', 'old')
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'write', path: 'g.bin', length: 5 })
    peer.socket.write(frame(FrameType.DATA, 1, 1, Buffer.from('abc')))
    peer.socket.write(endFrame(1, 2, 3))
    assert.equal(json(await peer.done(1)).code, 'EBADREQ')
    assert.ok(readFileSync(join(root, 'g.bin')).equals(old))
  })
})

describe('the answer to a write says what happened to the file', () => {
  test('a cancel right after END gets ECANCELED with the target untouched, or the RESULT with the file in place', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    let current = writeFile(root, 'f.bin', 'old contents')
    const peer = await rawPeer(t, url)
    let cancelled = 0
    for (let id = 1; id <= 20; id++) {
      const data = randomBytes(256 * 1024 + id)
      peer.send({ id, op: 'write', path: 'f.bin', length: data.length })
      const seq = sendData(peer, id, data, 64 * 1024)
      peer.socket.write(endFrame(id, seq, data.length))
      peer.send({ id, op: 'cancel' })
      const answer = await peer.done(id)
      const onDisk = readFileSync(join(root, 'f.bin'))
      if (answer.type === FrameType.ERROR) {
        assert.equal(json(answer).code, 'ECANCELED')
        cancelled++
        assert.ok(onDisk.equals(current), `write ${id} answered ECANCELED, but the file was replaced`)
      } else {
        assert.equal(answer.type, FrameType.RESULT)
        assert.ok(onDisk.equals(data), `write ${id} answered RESULT, but the file is not its bytes`)
        current = data
      }
    }
    assert.deepEqual(await waitTmp(root, (n) => n.length === 0), [])
    t.diagnostic(`${cancelled} of 20 cancelled in time`)
  })

  test('a NACK for a running upload does not stop it: the write answers RESULT with its file in place', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const peer = await rawPeer(t, url)
    for (let id = 1; id <= 10; id++) {
      const data = randomBytes(128 * 1024 + id)
      peer.send({ id, op: 'write', path: `n${id}.bin`, length: data.length })
      const seq = sendData(peer, id, data, 64 * 1024)
      peer.socket.write(endFrame(id, seq, data.length))
      peer.send({ id, op: 'nack', seq: 0, offset: 0, resync: 1 })
      const answer = await peer.done(id)
      assert.equal(answer.type, FrameType.RESULT, `write ${id}: ${answer.type === FrameType.ERROR ? json(answer).code : answer.type}`)
      assert.ok(readFileSync(join(root, `n${id}.bin`)).equals(data))
    }
    const refusals = peer.frames.filter((f) => f.id === 0 && f.type === FrameType.ERROR).map((f) => json(f).code)
    assert.ok(refusals.every((c) => c === 'EBADREQ'), refusals.join(' '))
  })

  test('an upload that sends nothing after its request line does not keep the connection alive', async (t) => {
    const { url, root } = await startServer(t, { writable: true, idleTimeout: 300 })
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'write', path: 'idle.bin' })
    assert.ok(await waitTmp(root, (n) => n.length === 1).then((n) => n.length === 1), 'the upload started')
    assert.ok(await within(peer.closed, 5000), 'the server closed the connection')
    assert.deepEqual(await waitTmp(root, (n) => n.length === 0), [], 'its temporary file is removed')
    assert.ok(!readdirSync(root).includes('idle.bin'))
  })

  test('frames without the server\'s checksum are refused with ECHECKSUM and nothing is written', async (t) => {
    const { url, root } = await startServer(t, { writable: true })
    const peer = await rawPeer(t, url)
    const data = Buffer.from('unchecked bytes')
    peer.send({ id: 1, op: 'write', path: 'g.bin', length: data.length })
    peer.socket.write(Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 1, seq: 1, payload: data }, checksumId('none'))))
    peer.socket.write(Buffer.concat(encodeFrame({ type: FrameType.END, id: 1, seq: 2, payload: Buffer.from(JSON.stringify({ length: data.length })) }, checksumId('none'))))
    const answer = await peer.done(1)
    assert.equal(answer.type, FrameType.ERROR)
    assert.equal(json(answer).code, 'ECHECKSUM')
    assert.deepEqual(readdirSync(root).filter((n) => !n.startsWith('.')), [])
    assert.deepEqual(await waitTmp(root, (n) => n.length === 0), [])
  })
})
