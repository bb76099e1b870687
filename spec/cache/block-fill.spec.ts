/**
 * BlockFill: one block read in for the cache, from the shared tier (Redis)
 * when it has it, else from disk (then stored in the tier). The block is
 * this version's bytes, whole, in a store slot for files of 16 KiB and more
 * (while the store and its tmpfs have room) or in a heap buffer of its own,
 * and never written again. A file that shrank or changed while it was read
 * fails with ECHANGED and leaves no slot taken.
 */
import assert from 'node:assert/strict'
import { truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test, type TestContext } from 'node:test'
import { BlockFill, MIN_STORE_FILE } from '../../lib/cache/block-fill.js'
import { shmNative } from '../../lib/cache/shm-native.js'
import { ShmStore } from '../../lib/cache/shm-store.js'
import { StoreBlocks } from '../../lib/cache/store-blocks.js'
import { Jail } from '../../lib/fs/jail.js'
import { type OpenFile, openFile } from '../../lib/fs/open-file.js'
import { memoCrc32 } from '../../lib/protocol/crc-memo.js'
import { crc32 } from '../../lib/protocol/crc32.js'
import { parseRedisNodes } from '../../lib/tier/redis-nodes.js'
import { SharedTier } from '../../lib/tier/shared-tier.js'
import { noSharedMemory, storeDir, tempDir, writeFile } from '../helpers/fixtures.js'
import { NO_REDIS, type RedisCluster, redisInstalled, startRedisCluster } from '../helpers/redis-cluster.js'
import { connectTo, startServer } from '../helpers/server.js'
import { smallTmpfs } from '../helpers/tmpfs.js'
import { poll } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB
const BLOCK = 64 * KiB
const noShm = noSharedMemory(shmNative())

/** `data` written at root/name, open as the cache opens it (closed after the test). */
async function opened(t: TestContext, root: string, name: string, data: number | Buffer): Promise<{ file: OpenFile; data: Buffer }> {
  const bytes = writeFile(root, name, data)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const file = await openFile(jail, name)
  t.after(() => file.fh.close())
  return { file, data: bytes }
}

/** A store of 16 blocks with its StoreBlocks, at `dir` or a fresh place under /dev/shm. */
function store(t: TestContext, dir = storeDir(t)): StoreBlocks {
  const s = ShmStore.open({ dir, blockSize: BLOCK, bytes: 16 * BLOCK })
  t.after(() => s.close())
  return new StoreBlocks(s, () => true)
}

/** The buffer is remembered as never changing: a view's crc32 is summed once, not again after a change. */
function markedImmutable(buf: Buffer): boolean {
  const view = buf.subarray(0, 100)
  const first = memoCrc32(view)
  const saved = buf[0]
  buf[0] ^= 0xff
  const again = memoCrc32(view)
  buf[0] = saved
  return again === first
}

/** Block `index` of `file`, under the cache's key for it. */
const fillBlock = (fill: BlockFill, file: OpenFile, index: number) => fill.fill(file, `${file.key}#${index}`, index * BLOCK, Math.min(BLOCK, file.size - index * BLOCK))

describe('BlockFill from disk', () => {
  test('each block is the file\'s bytes, in a heap buffer of its own, counted as a disk read, never written again', async (t) => {
    const { file, data } = await opened(t, tempDir(t), 'f.bin', 3 * BLOCK + 100)
    const fill = new BlockFill(BLOCK, null, null)
    for (let i = 0; i < 4; i++) {
      const block = await fillBlock(fill, file, i)
      assert.ok(block.equals(data.subarray(i * BLOCK, (i + 1) * BLOCK)), `block ${i}`)
      // Not a slice of a shared pool, which one cached block would keep alive whole.
      assert.equal(block.byteOffset, 0)
      assert.equal(block.buffer.byteLength, block.length)
      assert.ok(markedImmutable(block), `block ${i} is marked immutable`)
    }
    assert.ok(fill.diskReads >= 4)
    // A tiny file's block too: a pooled 100-byte slice would keep the pool's 8 KiB alive.
    const tiny = await opened(t, tempDir(t), 'tiny.bin', 100)
    const block = await fillBlock(fill, tiny.file, 0)
    assert.ok(block.equals(tiny.data))
    assert.equal(block.buffer.byteLength, 100)
    // A buffer not so marked is summed afresh.
    assert.equal(markedImmutable(Buffer.alloc(200, 1)), false)
  })

  test('a file that shrank since it was opened fails with ECHANGED', async (t) => {
    const root = tempDir(t)
    const { file } = await opened(t, root, 'f.bin', 2 * BLOCK)
    truncateSync(join(root, 'f.bin'), BLOCK + 10)
    const fill = new BlockFill(BLOCK, null, null)
    await assert.rejects(fillBlock(fill, file, 1), { code: 'ECHANGED', message: 'file shrank on disk while it was being read; read it again' })
  })

  test('a file rewritten since it was opened fails with ECHANGED, even at its old size', async (t) => {
    const root = tempDir(t)
    const { file } = await opened(t, root, 'f.bin', 2 * BLOCK)
    // Past the kernel clock's tick, so the rewrite gets a new mtime.
    await sleep(20)
    writeFileSync(join(root, 'f.bin'), Buffer.alloc(2 * BLOCK, 7))
    const fill = new BlockFill(BLOCK, null, null)
    await assert.rejects(fillBlock(fill, file, 0), { code: 'ECHANGED', message: 'file changed on disk while it was being read; read it again' })
  })
})

describe('BlockFill into the shared-memory store', { skip: noShm }, () => {
  test(`a block of a file of ${MIN_STORE_FILE / KiB} KiB or more goes in a store slot, kept under its key`, async (t) => {
    const stored = store(t)
    const { file, data } = await opened(t, tempDir(t), 'f.bin', 2 * BLOCK + 5)
    const fill = new BlockFill(BLOCK, stored, null)
    const block = await fillBlock(fill, file, 2)
    assert.ok(block.equals(data.subarray(2 * BLOCK)))
    assert.equal(stored.store.slots, 1)
    assert.ok(stored.has(block), 'the slot is the block\'s')
    assert.ok(markedImmutable(block))
    // Recorded under its key, a restarted server could adopt it.
    stored.record(block)
    assert.equal(stored.location(block)?.crc, crc32(block))
  })

  test('a block that fails with ECHANGED gives its slot back', async (t) => {
    const stored = store(t)
    const root = tempDir(t)
    const { file } = await opened(t, root, 'f.bin', 2 * BLOCK)
    const fill = new BlockFill(BLOCK, stored, null)
    truncateSync(join(root, 'f.bin'), BLOCK)
    await assert.rejects(fillBlock(fill, file, 1), { code: 'ECHANGED' })
    assert.equal(stored.store.slots, 0)
    await sleep(20)
    writeFileSync(join(root, 'f.bin'), Buffer.alloc(2 * BLOCK, 1))
    await assert.rejects(fillBlock(fill, file, 0), { code: 'ECHANGED' })
    assert.equal(stored.store.slots, 0)
    assert.equal(stored.store.used, 0)
  })

  test('a block read from disk that finds the store\'s tmpfs full goes to the heap, exact', async (t) => {
    const tmpfs = smallTmpfs(t)
    if (!tmpfs) return
    const { url, root, server } = await startServer(t, { blockSize: BLOCK, cacheSize: MiB, maxBuffered: 256 * KiB, shmDir: join(tmpfs.dir, 'store') })
    const first = writeFile(root, 'first.bin', BLOCK)
    const data = writeFile(root, 'later.bin', 8 * BLOCK)
    const client = await connectTo(t, url)
    // The slab exists (one block in it); then the tmpfs is filled to the last page.
    assert.ok((await client.readFile('first.bin')).equals(first))
    assert.equal(server.stats().shm?.blocks, 1)
    tmpfs.fill()
    const before = server.stats()
    assert.ok((await client.readFile('later.bin')).equals(data), 'exact bytes')
    const after = server.stats()
    assert.equal(after.diskReads - before.diskReads, 8, 'every block read from disk once')
    assert.equal(after.shm?.blocks, 1, 'none of them in the full store')
    assert.ok((await client.readFile('later.bin')).equals(data), 'and served again from the heap')
    assert.equal(server.stats().diskReads, after.diskReads)
  })

  test('files under 16 KiB stay on the heap', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 8 * BLOCK, blockSize: BLOCK })
    writeFile(root, 'tiny.bin', 16 * KiB - 1)
    writeFile(root, 'small.bin', 16 * KiB)
    const client = await connectTo(t, url)
    await client.readFile('tiny.bin')
    assert.equal(server.stats().shm?.blocks, 0)
    await client.readFile('small.bin')
    assert.equal(server.stats().shm?.blocks, 1)
  })
})

describe('BlockFill with the shared tier', { skip: redisInstalled() ? false : NO_REDIS }, () => {
  let redis: RedisCluster
  before(async () => {
    redis = await startRedisCluster({ cluster: false })
  })
  after(() => redis?.stop())

  /** A shared tier on the test's Redis, with a prefix of the test's own. */
  async function tier(t: TestContext, prefix: string): Promise<SharedTier> {
    const shared = new SharedTier({ nodes: parseRedisNodes(redis.urls), prefix, timeoutMs: 2000 })
    t.after(() => shared.close())
    assert.equal(await shared.ready, true)
    return shared
  }

  test('a block read from disk is stored in the tier; another host\'s fill takes it from there, not from disk', async (t) => {
    const prefix = `fill-${Date.now()}:`
    const root = tempDir(t)
    const { file, data } = await opened(t, root, 'f.bin', 2 * BLOCK + 77)
    const tiny = await opened(t, root, 'tiny.bin', 100)
    const first = await tier(t, prefix)
    const reader = new BlockFill(BLOCK, null, first)
    await fillBlock(reader, file, 1)
    await fillBlock(reader, tiny.file, 0)
    assert.ok(await poll(() => first.stats().sharedWrittenBytes === BLOCK + 100, 5000), 'stored')
    assert.equal(first.stats().sharedMisses, 2, 'looked up first')
    const second = await tier(t, prefix)
    const other = new BlockFill(BLOCK, null, second)
    for (const [f, index, want] of [[file, 1, data.subarray(BLOCK, 2 * BLOCK)], [tiny.file, 0, tiny.data]] as const) {
      const block = await fillBlock(other, f, index)
      assert.ok(block.equals(want))
      assert.equal(block.byteOffset, 0)
      assert.equal(block.buffer.byteLength, block.length, 'a heap buffer of its own')
      assert.ok(markedImmutable(block))
    }
    assert.equal(other.diskReads, 0)
    assert.equal(second.stats().sharedHits, 2)
  })

  test('a block from the tier goes in a store slot; on a full tmpfs, on the heap, exact either way', { skip: noShm }, async (t) => {
    const prefix = `fill-store-${Date.now()}:`
    const { file, data } = await opened(t, tempDir(t), 'f.bin', 4 * BLOCK)
    const shared = await tier(t, prefix)
    const reader = new BlockFill(BLOCK, null, shared)
    for (let i = 0; i < 4; i++) await fillBlock(reader, file, i)
    assert.ok(await poll(() => shared.stats().sharedWrittenBytes === 4 * BLOCK, 5000), 'stored')

    const stored = store(t)
    const toStore = new BlockFill(BLOCK, stored, shared)
    const inSlot = await fillBlock(toStore, file, 0)
    assert.ok(inSlot.equals(data.subarray(0, BLOCK)))
    assert.equal(toStore.diskReads, 0)
    assert.ok(stored.has(inSlot))
    assert.ok(markedImmutable(inSlot))

    const tmpfs = smallTmpfs(t)
    if (!tmpfs) return
    const small = store(t, join(tmpfs.dir, 'store'))
    const toFull = new BlockFill(BLOCK, small, shared)
    // A slab is made while there is room (one block in it); then the tmpfs is filled to the last page.
    await fillBlock(toFull, file, 1)
    assert.equal(small.store.slots, 1)
    tmpfs.fill()
    const onHeap = await fillBlock(toFull, file, 2)
    assert.ok(onHeap.equals(data.subarray(2 * BLOCK, 3 * BLOCK)))
    assert.equal(toFull.diskReads, 0, 'still from the tier')
    assert.equal(small.has(onHeap), false)
    assert.equal(small.store.slots, 1, 'the slot it could not fill was given back')
  })
})
