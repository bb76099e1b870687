import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ByteQueue } from '../../lib/protocol/byte-queue.js'

// The spec needs a collection on demand; the flag takes effect for contexts made after it.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

test('a chunk consumed whole is let go at once, not kept until the queue compacts', async () => {
  const queue = new ByteQueue()
  // Each chunk a read buffer of its own, as a server socket hands them out.
  let first: Buffer | null = Buffer.alloc(64 * 1024, 1)
  const gone = new WeakRef(first.buffer)
  queue.push(first)
  queue.push(Buffer.alloc(64 * 1024, 2))
  first = null
  assert.equal(queue.take(64 * 1024 + 10).length, 64 * 1024 + 10)
  // A WeakRef's target lives at least to the end of the job that made it.
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  assert.equal(gone.deref(), undefined, 'the consumed chunk is still referenced')
  assert.equal(queue.length, 64 * 1024 - 10)
  assert.equal(queue.first(), 2)
})
