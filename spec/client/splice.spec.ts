/**
 * readChunks into a pipe (the client CLI's `read f | python`): blocks are
 * spliced from the server's shared memory into the pipe, which then refers
 * to the store's pages. The bytes read from the pipe must be the file's,
 * whatever the cache does with those slots afterwards.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, openSync, readFileSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import type { LocateAnswer } from '../../lib/client/short-circuit.js'
import type { PipeTarget } from '../../lib/client/types.js'
import { writeAllSync } from '../../lib/cli/write-sync.js'
import { noSharedMemory, tempDir, writeFile } from '../helpers/fixtures.js'
import { poll } from '../helpers/wait.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const BLOCK = 64 * KiB
const PIPE = 1024 * KiB
const native = shmNative()
const skip = noSharedMemory(native)

/** A named pipe in a fresh directory. */
function fifo(t: Parameters<typeof tempDir>[0]): string {
  const path = join(tempDir(t), 'pipe')
  assert.equal(spawnSync('mkfifo', [path]).status, 0)
  return path
}

function target(fd: number): PipeTarget {
  assert.equal(native!.pipeSize(fd, PIPE), PIPE)
  return { size: () => native!.pipeSize(fd), unread: () => native!.pipeUnread(fd), splice: (from, offset, length) => native!.splice(from, offset, fd, length) }
}

describe('readChunks into a pipe', { skip }, () => {
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
        await client.readChunks('big.bin', (c) => ((copied += c.length), writeAllSync(fd, c)), { ...range, sharedMemory: true, pipe: async () => target(fd) })
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

  test('pages spliced under a grant that lapsed keep their bytes when the slot takes another block', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 16 * BLOCK, blockSize: BLOCK, policy: 'lru' })
    const a = writeFile(root, 'a.bin', BLOCK)
    const b = writeFile(root, 'b.bin', BLOCK)
    const path = fifo(t)
    const rd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    t.after(() => closeSync(rd))
    const wr = openSync(path, constants.O_WRONLY)
    t.after(() => closeSync(wr))
    const pipe = target(wr)
    // A client splices a.bin's block into the pipe, then goes away without releasing its grant.
    const reader = await connectTo(t, url)
    const located = await reader.request<LocateAnswer>('locate', { paths: ['a.bin'] })
    const file = located.files[0]
    assert.ok('blocks' in file && file.blocks)
    const [[slab, offset, length]] = file.blocks
    const slabFd = openSync(join(located.dir, located.slabs[slab]), 'r')
    t.after(() => closeSync(slabFd))
    assert.equal(pipe.splice(slabFd, offset, length), BLOCK)
    await reader.close()
    assert.ok(await poll(() => server.stats().connections === 0), 'the server saw the connection end')
    // The block leaves the cache; b.bin's block is then written to the same slot.
    const other = await connectTo(t, url)
    await other.evict('a.bin')
    await new Promise((r) => setImmediate(r))
    assert.ok((await other.readFile('b.bin')).equals(b))
    const where = await other.request<LocateAnswer>('locate', { paths: ['b.bin'] })
    const bf = where.files[0]
    assert.ok('blocks' in bf && bf.blocks)
    assert.deepEqual([where.slabs[bf.blocks[0][0]], bf.blocks[0][1]], [located.slabs[slab], offset], 'b.bin took the slot a.bin had')
    const got = Buffer.alloc(BLOCK)
    assert.equal(readSync(rd, got), BLOCK)
    assert.ok(got.equals(a), 'the pipe still has a.bin\'s bytes')
  })
})
