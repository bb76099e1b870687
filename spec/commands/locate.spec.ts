/**
 * Short-circuit reads: `locate` hands a same-host client the places of a
 * file's cached blocks in the shared-memory store, and the slots stay what
 * they were while granted, whatever the cache does meanwhile.
 */
import assert from 'node:assert/strict'
import { readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import type { Client } from '../../lib/client/client.js'
import type { LocateAnswer, LocatedBlock } from '../../lib/client/short-circuit.js'
import { countBlockLoads } from '../helpers/block-loads.js'
import { noSharedMemory, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const BLOCK = 64 * KiB
const skip = noSharedMemory(shmNative())

function bytesAt(answer: LocateAnswer, blocks: LocatedBlock[]): Buffer {
  return Buffer.concat(blocks.map(([slab, offset, length]) => readFileSync(join(answer.dir, answer.slabs[slab])).subarray(offset, offset + length)))
}

function located(answer: LocateAnswer, i: number): LocatedBlock[] {
  const f = answer.files[i]
  assert.ok('blocks' in f && f.blocks, `file ${i} is in shared memory`)
  return f.blocks
}

const locate = (client: Client, paths: string[], release: number[] = []) => client.request<LocateAnswer>('locate', { paths, release })

describe('locate', { skip }, () => {
  test('says where each file\'s blocks are, or why not', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 32 * BLOCK, blockSize: BLOCK })
    const big = writeFile(root, 'd/big.bin', 2 * BLOCK + 100)
    writeFile(root, 'tiny.bin', 100)
    const client = await connectTo(t, url)
    assert.equal(client.hello.shm, true)
    const a = await locate(client, ['d/big.bin', 'tiny.bin', 'nope', '../x'])
    assert.ok(a.lease! > 0)
    assert.ok(a.ttl > 0)
    assert.ok(bytesAt(a, located(a, 0)).equals(big), 'the located bytes are the file')
    assert.equal(located(a, 0).length, 3)
    assert.deepEqual({ ...a.files[1], mtimeMs: 0 }, { path: 'tiny.bin', size: 100, mtimeMs: 0, blocks: null }, 'a file under 16 KiB is read over the socket')
    assert.ok((a.files[0] as { mtimeMs: number }).mtimeMs > 0)
    assert.equal((a.files[2] as { code: string }).code, 'ENOENT')
    assert.equal((a.files[3] as { code: string }).code, 'EACCES')
    assert.deepEqual(await client.request('release', { lease: a.lease }), { released: true })
    assert.deepEqual(await client.request('release', { lease: a.lease }), { released: false })
    await assert.rejects(client.request('locate', { paths: [] }), { code: 'EBADREQ' })
    await assert.rejects(client.request('locate', { paths: ['a', 3] }), { code: 'EBADREQ' })
  })

  test('granted blocks keep their bytes while the cache evicts them and reuses slots; released, their slots are reused', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 8 * BLOCK, blockSize: BLOCK, policy: 'lru' })
    const kept = writeFile(root, 'kept.bin', BLOCK)
    const others = Array.from({ length: 24 }, (_, i) => writeFile(root, `o${i}.bin`, BLOCK))
    const client = await connectTo(t, url)
    const a = await locate(client, ['kept.bin'])
    const where = located(a, 0)
    const churn = async () => {
      for (let i = 0; i < others.length; i++) assert.ok((await client.readFile(`o${i}.bin`)).equals(others[i]))
    }
    await churn()
    assert.equal((await client.stat('kept.bin')).cached, false, 'the cache let it go')
    assert.ok(bytesAt(a, where).equals(kept), 'its slot still holds its bytes')
    // A second file read after the release takes the freed slot sooner or later.
    await locate(client, ['o0.bin'], [a.lease!])
    await churn()
    await churn()
    assert.ok(!bytesAt(a, where).equals(kept), 'once released, the slot was reused')
    assert.ok(server.stats().shm!.blocks <= 8 + 2 + server.stats().bufferedLimit / BLOCK)
  })

  test('a file changed after a grant is located anew, with its new bytes', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 16 * BLOCK, blockSize: BLOCK })
    const first = writeFile(root, 'f.bin', BLOCK + 1)
    const client = await connectTo(t, url)
    const a = await locate(client, ['f.bin'])
    assert.ok(bytesAt(a, located(a, 0)).equals(first))
    const second = writeFile(root, 'f.tmp', BLOCK + 1)
    renameSync(join(root, 'f.tmp'), join(root, 'f.bin'))
    const b = await locate(client, ['f.bin'], [a.lease!])
    assert.ok(bytesAt(b, located(b, 0)).equals(second))
  })

  test('a connection holds at most an eighth of the cache; more comes over the socket', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 32 * BLOCK, blockSize: BLOCK })
    for (let i = 0; i < 6; i++) writeFile(root, `f${i}.bin`, BLOCK)
    const client = await connectTo(t, url)
    const a = await locate(client, Array.from({ length: 6 }, (_, i) => `f${i}.bin`))
    const placed = a.files.filter((f) => 'blocks' in f && f.blocks).length
    assert.equal(placed, 4, '4 blocks of 64 KiB: an eighth of 2 MiB')
    // Which files find room depends on which of the concurrent loads finish first; the rest say to read them.
    const refused = a.files.filter((f) => 'blocks' in f && f.blocks === null)
    assert.equal(refused.length, 2)
    for (const f of refused) assert.deepEqual({ ...f, path: '', mtimeMs: 0 }, { path: '', size: BLOCK, mtimeMs: 0, blocks: null })
  })

  test('a server without short-circuit reads says so in HELLO and refuses locate', async (t) => {
    const { url, root } = await startServer(t, { shortCircuit: false })
    writeFile(root, 'a.bin', 20 * KiB)
    const client = await connectTo(t, url)
    assert.equal(client.hello.shm, false)
    await assert.rejects(locate(client, ['a.bin']), { code: 'EACCES' })
  })

  test('readMany reads from shared memory, byte-exact, with small files over the socket', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * BLOCK, blockSize: BLOCK })
    const files = new Map<string, Buffer>()
    for (let i = 0; i < 20; i++) files.set(`f${i}.bin`, writeFile(root, `f${i}.bin`, i % 4 === 0 ? 100 + i : 20 * KiB + i * 3001))
    const client = await connectTo(t, url)
    const before = server.stats().bytesServed
    const seen: string[] = []
    for await (const { path, data } of client.readMany(files.keys(), { inFlight: 8 })) {
      assert.ok(data.equals(files.get(path)!), path)
      seen.push(path)
    }
    assert.deepEqual(seen, [...files.keys()])
    const small = [...files.values()].filter((b) => b.length < 16 * KiB).reduce((n, b) => n + b.length, 0)
    assert.equal(server.stats().bytesServed - before, small, 'only the small files crossed the socket')
  })
})

describe('locate of many files', { skip }, () => {
  test('loads the files of one request a few at a time, so that their disk reads overlap, and answers in order', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 256 * BLOCK, blockSize: BLOCK })
    const files = Array.from({ length: 20 }, (_, i) => writeFile(root, `m/${i}.bin`, BLOCK + 1000 * i))
    const client = await connectTo(t, url)
    const loads = countBlockLoads(server)
    const paths = [...files.map((_, i) => `m/${i}.bin`), 'nope']
    const a = await locate(client, paths)
    assert.ok(loads.most() > 1 && loads.most() <= 8, `${loads.most()} loads at once`)
    files.forEach((data, i) => assert.ok(bytesAt(a, located(a, i)).equals(data), `file ${i} in its place`))
    assert.equal((a.files[20] as { code: string }).code, 'ENOENT')
  })
})

describe('locate of ranges', { skip }, () => {
  test('a range is located by its blocks, with where its bytes start in the first', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 64 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'f.bin', 5 * BLOCK + 123)
    const client = await connectTo(t, url)
    for (const [offset, length] of [[0, 10], [BLOCK - 5, 10], [BLOCK, BLOCK], [3 * BLOCK + 7, 10 * BLOCK], [5 * BLOCK + 123, 5]]) {
      const a = await locate(client, [{ path: 'f.bin', offset, length }] as unknown as string[])
      const f = a.files[0] as { size: number; offset: number; length: number; skip: number; blocks: LocatedBlock[] }
      const want = data.subarray(offset, offset + length)
      assert.equal(f.offset, offset)
      assert.equal(f.length, want.length)
      assert.equal(f.skip, offset % BLOCK)
      assert.ok(bytesAt(a, f.blocks).subarray(f.skip, f.skip + f.length).equals(want), `${offset}+${length}`)
      if (a.lease !== null) await client.request('release', { lease: a.lease })
      else assert.equal(f.length, 0, 'nothing to hold for an empty range')
    }
    const past = await locate(client, [{ path: 'f.bin', offset: 6 * BLOCK }] as unknown as string[])
    assert.equal((past.files[0] as { code: string }).code, 'ERANGE')
    await assert.rejects(client.request('locate', { paths: [{ offset: 1 }] }), { code: 'EBADREQ' })
  })

  test('readChunks with sharedMemory reads a large file a range at a time from shared memory, the rest over the socket', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 4096 * BLOCK, blockSize: BLOCK })
    const data = writeFile(root, 'big.bin', 300 * BLOCK + 77)
    const client = await connectTo(t, url)
    const before = server.stats().bytesServed
    const parts: Buffer[] = []
    const info = await client.readChunks('big.bin', (c) => parts.push(Buffer.from(c)), { sharedMemory: true })
    assert.ok(Buffer.concat(parts).equals(data))
    assert.equal(info.size, data.length)
    assert.ok(parts.length > 2, 'a block at a time')
    assert.equal(server.stats().bytesServed, before, 'nothing crossed the socket')
    const ranged: Buffer[] = []
    await client.readChunks('big.bin', (c) => ranged.push(Buffer.from(c)), { sharedMemory: true, offset: 1000, length: 3 * BLOCK })
    assert.ok(Buffer.concat(ranged).equals(data.subarray(1000, 1000 + 3 * BLOCK)))
    // A connection may hold an eighth of the cache: from a small one's server, the ranges come over the socket.
    const small = await startServer(t, { cacheSize: 64 * BLOCK, blockSize: BLOCK, root })
    const other = await connectTo(t, small.url)
    const viaSocket: Buffer[] = []
    await other.readChunks('big.bin', (c) => viaSocket.push(Buffer.from(c)), { sharedMemory: true })
    assert.ok(Buffer.concat(viaSocket).equals(data))
    assert.equal(small.server.stats().bytesServed, data.length)
  })
})
