/**
 * A server whose cache lives in shared memory: every byte right while slots
 * are recycled under many readers, the blocks in the store's files, a crash
 * survived by the cache (changed and damaged blocks not adopted), and a clean
 * exit that leaves nothing behind.
 */
import assert from 'node:assert/strict'
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { prng } from '../../lib/prng.js'
import type { Client } from '../../lib/client/client.js'
import { startServerProcess } from '../helpers/cli.js'
import { noSharedMemory, storeDir, tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const MiB = 1024 * KiB
const BLOCK = 64 * KiB
const skip = noSharedMemory(shmNative())

/** The store's slab files, concatenated (to find a block's bytes in them). */
function slabBytes(dir: string): Buffer {
  return Buffer.concat(readdirSync(dir).filter((n) => n.startsWith('slab-')).map((n) => readFileSync(join(dir, n))))
}

type StoreStats = { diskReads: number; shm: { dir: string; blocks: number; bytes: number } | null }

async function stats(client: Client): Promise<StoreStats> {
  return (await client.stats()) as unknown as StoreStats
}

describe('shared-memory cache', { skip }, () => {
  test('every read is right while slots are recycled under concurrent readers; the store stays within its budget', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 8 * BLOCK, blockSize: BLOCK })
    const rand = prng(7)
    const files = new Map<string, Buffer>()
    for (let i = 0; i < 40; i++) {
      const size = [1, 100, 5000, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17][i % 7]
      files.set(`f${i}.bin`, writeFile(root, `f${i}.bin`, size))
    }
    const names = [...files.keys()]
    const clients = await Promise.all(Array.from({ length: 4 }, () => connectTo(t, url)))
    let reads = 0
    await Promise.all(
      clients.map(async (client) => {
        for (let n = 0; n < 120; n++) {
          const name = names[Math.floor(rand() * names.length)]
          const got = await client.readFile(name)
          assert.ok(got.equals(files.get(name)!), `${name} read right`)
          reads++
        }
      }),
    )
    assert.equal(reads, 480)
    const s = server.stats()
    assert.ok(s.shm, 'the cache is in shared memory')
    assert.ok(s.evictions > 0, 'slots were recycled')
    assert.ok(s.shm.blocks > 0)
    // The cache, what it may hold outside it, and whole pages: never more.
    assert.ok(s.shm.bytes <= 8 * BLOCK + 8 * BLOCK / 16 + s.bufferedLimit + 2 * BLOCK, `store ${s.shm.bytes} bytes`)
    const last = names.at(-1)!
    await clients[0].readFile(last)
    assert.ok(slabBytes(s.shm.dir).includes(files.get(last)!.subarray(0, 4096)), 'the cached bytes are in the slab files')
  })

  test('the cache survives a crash of the server; changed and damaged blocks are not adopted', async (t) => {
    const root = tempDir(t)
    const dir = storeDir(t)
    const kept = writeFile(root, 'kept.bin', 2 * MiB + 10)
    writeFile(root, 'changed.bin', 20_000)
    const damaged = writeFile(root, 'damaged.bin', 17_000)
    const args = ['--root', root, '--port', '0', '--cache-size', '64MiB', '--shm-dir', dir, '--settle', '0']
    const first = await startServerProcess(t, args)
    const c1 = await connectTo(t, first.url)
    for (const name of ['kept.bin', 'changed.bin', 'damaged.bin']) await c1.readFile(name)
    assert.equal((await stats(c1)).shm?.blocks, 5)
    await first.stop('SIGKILL')
    assert.ok(existsSync(dir), 'a crash leaves the store')

    // While no server runs: one file is rewritten, one cached block is damaged.
    const changed = writeFile(root, 'changed.bin', 20_000)
    const slab = join(dir, readdirSync(dir).find((n) => n.startsWith('slab-32768-'))!)
    const at = readFileSync(slab).indexOf(damaged)
    assert.ok(at > 0, 'the block is in its slab')
    chmodSync(slab, 0o600)
    const fd = openSync(slab, 'r+')
    writeSync(fd, Buffer.from([damaged[0] ^ 0xff]), 0, 1, at)
    closeSync(fd)

    const second = await startServerProcess(t, args)
    assert.match(second.stderr(), /adopted 4 cached blocks .*dropped 1 that failed their checksum/)
    const c2 = await connectTo(t, second.url)
    const before = await stats(c2)
    assert.ok((await c2.readFile('kept.bin')).equals(kept))
    assert.equal((await stats(c2)).diskReads, before.diskReads, 'kept.bin came from the adopted blocks')
    assert.ok((await c2.readFile('changed.bin')).equals(changed), 'the file as it is now')
    assert.ok((await c2.readFile('damaged.bin')).equals(damaged), 'the file, not the damaged block')
    assert.equal((await stats(c2)).diskReads, before.diskReads + 2, 'the changed and the damaged files came from the disk')
    await c2.close()
    const { code } = await second.stop('SIGTERM')
    assert.equal(code, 0)
    assert.equal(existsSync(dir), false, 'a clean exit removes the store')
  })

  test('--no-shm keeps blocks on the heap; --no-short-circuit refuses locate; a --shm-dir others can enter stops the start', async (t) => {
    const root = tempDir(t)
    writeFileSync(join(root, 'a'), 'a')
    const heap = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm'])
    const onHeap = await connectTo(t, heap.url)
    assert.equal((await stats(onHeap)).shm, null)
    assert.equal(onHeap.hello.shm, false, 'no store: no short-circuit reads')
    const noShort = await startServerProcess(t, ['--root', root, '--port', '0', '--shm-dir', storeDir(t), '--no-short-circuit'])
    const client = await connectTo(t, noShort.url)
    assert.notEqual((await stats(client)).shm, null, 'the cache is in shared memory')
    assert.equal(client.hello.shm, false, '--no-short-circuit: clients read over the socket')
    await assert.rejects(client.request('locate', { paths: ['a'] }), { code: 'EACCES' })
    const open = storeDir(t)
    mkdirSync(open, { mode: 0o755 })
    chmodSync(open, 0o755)
    await assert.rejects(startServerProcess(t, ['--root', root, '--port', '0', '--shm-dir', open]), /owned by this user with mode 0700/)
  })
})
