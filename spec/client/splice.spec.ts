/**
 * Pages spliced from the server's shared memory into a pipe (the client
 * CLI's `read f | python`) refer to the store's pages: the bytes read from
 * the pipe must be the file's, whatever the cache does with those slots
 * afterwards.
 */
import assert from 'node:assert/strict'
import { closeSync, constants, openSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import type { LocateAnswer } from '../../lib/client/short-circuit.js'
import { noSharedMemory, writeFile } from '../helpers/fixtures.js'
import { fifo, pipeTarget } from '../helpers/pipe.js'
import { poll } from '../helpers/wait.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const BLOCK = 64 * KiB
const PIPE = 1024 * KiB
const skip = noSharedMemory(shmNative())

describe('a pipe of spliced pages', { skip }, () => {
  test('pages spliced under a grant that lapsed keep their bytes when the slot takes another block', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 16 * BLOCK, blockSize: BLOCK, policy: 'lru' })
    const a = writeFile(root, 'a.bin', BLOCK)
    const b = writeFile(root, 'b.bin', BLOCK)
    const path = fifo(t)
    const rd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    t.after(() => closeSync(rd))
    const wr = openSync(path, constants.O_WRONLY)
    t.after(() => closeSync(wr))
    const pipe = pipeTarget(wr, PIPE)
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
