/**
 * LocatedReads, reads on the server's host: `locate` says where a file's
 * cached blocks are in the server's shared memory, and they are read from
 * the slab files (or spliced from there into a pipe), not sent over the
 * socket; what the server cannot place there comes over the socket. Each
 * locate lets go of the grants whose blocks were read, so a connection
 * never runs out of room for the next.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, openSync, readFileSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { connect } from '../../lib/client/client.js'
import { writeAllSync } from '../../lib/cli/write-sync.js'
import { lazyPaths, noSharedMemory, tempDir, writeFile } from '../helpers/fixtures.js'
import { fifo, pipeTarget } from '../helpers/pipe.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const MiB = 1024 * KiB
const BLOCK = 64 * KiB
const PIPE = 1024 * KiB
const skip = noSharedMemory(shmNative())

describe('readChunks from shared memory', { skip, timeout: 60_000 }, () => {
  test('the bytes of a file or a range, none over the socket, counted as located; resolves with what a START would say', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 256 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'f.bin', 10 * BLOCK + 77)
    const client = await connectTo(t, url)
    assert.equal(client.hello.shm, true)
    for (const [offset, length] of [[0, undefined], [BLOCK + 5, 3 * BLOCK], [data.length - 10, 1000]] as const) {
      const before = server.stats()
      const pieces: Buffer[] = []
      const info = await client.readChunks('f.bin', (c) => pieces.push(Buffer.from(c)), { offset, length, sharedMemory: true })
      const want = data.subarray(offset, length === undefined ? undefined : offset + length)
      assert.ok(Buffer.concat(pieces).equals(want), `${offset} +${length}`)
      assert.deepEqual({ ...info, mtimeMs: 0 }, { size: data.length, offset, length: want.length, mtimeMs: 0 })
      assert.equal(server.stats().bytesServed, before.bytesServed, 'nothing crossed the socket')
      assert.equal(server.stats().locatedBytes - before.locatedBytes, want.length)
    }
  })

  test('a file longer than one locate is read 16 MiB at a time, each locate releasing the grant before it', async (t) => {
    // Grants may hold an eighth of the cache (25 MiB): without the releases, the third range would not fit.
    const { server, url, root } = await startServer(t, { cacheSize: 200 * MiB })
    const data = writeFile(root, 'big.bin', 60 * MiB + 3)
    const client = await connectTo(t, url)
    await client.readFile('big.bin') // cached
    const before = server.stats()
    let at = 0
    let same = true
    await client.readChunks('big.bin', (c) => ((same &&= c.equals(data.subarray(at, at + c.length))), (at += c.length)), { sharedMemory: true })
    assert.ok(same && at === data.length, `${at} bytes`)
    assert.equal(server.stats().bytesServed, before.bytesServed, 'nothing crossed the socket')
    assert.equal(server.stats().locatedBytes - before.locatedBytes, data.length)
  })

  test('a file that changes between two ranges: ECHANGED', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 200 * MiB })
    writeFile(root, 'big.bin', 20 * MiB)
    const client = await connectTo(t, url)
    let changed = false
    const grow = () => {
      if (!changed) truncateSync(join(root, 'big.bin'), 21 * MiB)
      changed = true
    }
    await assert.rejects(client.readChunks('big.bin', grow, { sharedMemory: true }), { code: 'ECHANGED', message: /big\.bin changed on disk/ })
  })

  test('what cannot be placed in shared memory comes over the socket: a file under 16 KiB', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 256 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'small.bin', 10 * KiB)
    const client = await connectTo(t, url)
    const pieces: Buffer[] = []
    const before = server.stats()
    const info = await client.readChunks('small.bin', (c) => pieces.push(Buffer.from(c)), { offset: 100, sharedMemory: true })
    assert.ok(Buffer.concat(pieces).equals(data.subarray(100)))
    assert.equal(info.length, data.length - 100)
    assert.equal(server.stats().bytesServed - before.bytesServed, data.length - 100)
    assert.equal(server.stats().locatedBytes, before.locatedBytes)
  })

  test('errors of the located file reject with its code', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'f.bin', 100)
    const client = await connectTo(t, url)
    await assert.rejects(client.readChunks('nope.bin', () => {}, { sharedMemory: true }), { code: 'ENOENT' })
    await assert.rejects(client.readChunks('../x', () => {}, { sharedMemory: true }), { code: 'EACCES' })
  })
})

describe('readChunks from shared memory into a pipe', { skip, timeout: 60_000 }, () => {
  test('splices all but the last pipe-full, which it copies, and the pipe carries the file exactly', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 4096 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'big.bin', 40 * BLOCK + 1234)
    const client = await connectTo(t, url)
    for (const range of [{}, { offset: 5000, length: 30 * BLOCK }] as { offset?: number; length?: number }[]) {
      const path = fifo(t)
      const out = join(tempDir(t), 'out')
      const cat = spawn('sh', ['-c', `cat '${path}' > '${out}'`], { stdio: 'ignore' })
      const fd = openSync(path, constants.O_WRONLY)
      let copied = 0
      try {
        const before = server.stats().bytesServed
        await client.readChunks('big.bin', (c) => ((copied += c.length), writeAllSync(fd, c)), { ...range, sharedMemory: true, pipe: async () => pipeTarget(fd, PIPE) })
        assert.equal(server.stats().bytesServed, before, 'nothing crossed the socket')
      } finally {
        closeSync(fd)
      }
      await once(cat, 'exit')
      const want = data.subarray(range.offset ?? 0, (range.offset ?? 0) + (range.length ?? data.length))
      assert.ok(readFileSync(out).equals(want), 'the pipe carried the bytes asked for')
      assert.ok(copied >= PIPE && copied < PIPE + BLOCK, `the last pipe-full was copied (${copied} bytes), the rest spliced`)
    }
  })

  test('a read that fits in a pipe-full leaves the pipe alone: copied, the native addon never asked', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 256 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'small.bin', 5 * BLOCK + 3)
    const client = await connectTo(t, url)
    let asked = 0
    const got: Buffer[] = []
    await client.readChunks('small.bin', (c) => got.push(Buffer.from(c)), { sharedMemory: true, pipe: async () => (asked++, null) })
    assert.ok(Buffer.concat(got).equals(data))
    assert.equal(asked, 0)
  })

  test('a long read whose pipe cannot be widened is read over the socket', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 4096 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'big.bin', 40 * BLOCK)
    const client = await connectTo(t, url)
    let asked = 0
    const got: Buffer[] = []
    const before = server.stats().bytesServed
    await client.readChunks('big.bin', (c) => got.push(Buffer.from(c)), { sharedMemory: true, pipe: async () => (asked++, null) })
    assert.ok(Buffer.concat(got).equals(data))
    assert.equal(asked, 1)
    assert.equal(server.stats().bytesServed - before, data.length)
  })
})

describe('readMany on the server\'s host', { skip, timeout: 60_000 }, () => {
  test('files from shared memory in the order given; each locate releases the grants read, so a long list never runs out of room', async (t) => {
    // Grants may hold an eighth of the cache (8 MiB): 30 MiB of files only fit if they are let go as they are read.
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const files = Array.from({ length: 30 }, (_, i) => writeFile(root, `f/${i}.bin`, MiB - i))
    const client = await connectTo(t, url)
    const paths = files.map((_, i) => `f/${i}.bin`).reverse()
    const before = server.stats()
    let i = 0
    for await (const { path, data } of client.readMany(paths, { inFlight: 2 })) {
      assert.equal(path, paths[i++])
      assert.ok(data.equals(files[Number(path.slice(2, -4))]), path)
    }
    assert.equal(i, files.length)
    const after = server.stats()
    assert.equal(after.bytesServed, before.bytesServed, 'nothing crossed the socket')
    assert.equal(after.locatedBytes - before.locatedBytes, files.reduce((n, f) => n + f.length, 0))
  })

  test('batches fit the server\'s request lines: a server taking lines of 16 KiB reads long paths located a hundred at a time', async (t) => {
    const { server, url, root } = await startServer(t, { maxRequest: 16 * KiB })
    const paths = Array.from({ length: 300 }, (_, i) => `${'d'.repeat(100)}/${String(i).padStart(100, '0')}.bin`)
    const data = paths.map((p, i) => writeFile(root, p, 20 * KiB + i))
    const client = await connectTo(t, url)
    let i = 0
    for await (const { path, data: bytes } of client.readMany(paths, { inFlight: 100 })) {
      assert.equal(path, paths[i])
      assert.ok(bytes.equals(data[i++]), path)
    }
    assert.equal(i, paths.length)
    assert.ok(server.stats().locatedBytes > 0)
  })

  test('a path longer than half the server\'s request line fails at its place with ETOOBIG; the files before it come, the connection goes on', async (t) => {
    const { url, root } = await startServer(t, { maxRequest: 4096 })
    const a = writeFile(root, 'a.bin', 20 * KiB)
    const client = await connectTo(t, url)
    const it = client.readMany(['a.bin', `x/${'y'.repeat(5000)}`, 'a.bin'])[Symbol.asyncIterator]()
    assert.ok((await it.next()).value?.data.equals(a))
    await assert.rejects(it.next(), { code: 'ETOOBIG', message: /more than a locate request line takes \(2048\)/ })
    assert.ok((await client.readFile('a.bin')).equals(a))
  })

  test('takes the paths lazily: a batch of inFlight paths, and the next, at a time', async (t) => {
    const { url, root } = await startServer(t)
    const paths = Array.from({ length: 30 }, (_, i) => `p/${i}.bin`)
    const data = new Map(paths.map((p, i) => [p, writeFile(root, p, 20 * KiB + i)]))
    const client = await connect(url)
    t.after(() => client.close())
    assert.equal(client.hello.shm, true)
    const lazy = lazyPaths(paths, 2000)
    const it = client.readMany(lazy.paths, { inFlight: 4 })[Symbol.asyncIterator]()
    const first = await it.next()
    assert.equal(first.done, false)
    assert.ok(first.value!.data.equals(data.get(paths[0])!))
    assert.ok(lazy.taken() <= 8, `took ${lazy.taken()} paths for one file with inFlight 4`)
    await it.return(undefined)
  })
})
