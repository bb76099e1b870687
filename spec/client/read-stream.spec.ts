/**
 * ReadStream, a read as a Readable: 'info' (and `info`) once START arrives,
 * each page copied out of the receive buffer in pieces of at most 64 KiB, the
 * connection held while the consumer is full and resumed when it reads
 * again; destroyed early, it stops the read on the server and lets the
 * connection go on; a read that fails destroys it with the error.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { drain } from '../helpers/outcome.js'
import { connectTo, startServer } from '../helpers/server.js'
import { within } from '../helpers/wait.js'

const MiB = 1024 * 1024

/** bytesServed once it has stopped moving: the same for five polls in a row (bounded). */
async function settled(stats: () => { bytesServed: number }): Promise<number> {
  let last = -1
  for (let i = 0, same = 0; i < 300 && same < 5; i++) {
    await sleep(20)
    const now = stats().bytesServed
    same = now === last ? same + 1 : 0
    last = now
  }
  return last
}

describe('ReadStream', () => {
  test('info is null until START, then what it announced, also as one \'info\' event', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 300_000)
    const client = await connectTo(t, url)
    const stream = client.read('f.bin', { offset: 1000, length: 5000 })
    assert.equal(stream.info, null)
    const infos: unknown[] = []
    stream.on('info', (i) => infos.push(i))
    const { bytes, error } = await drain(stream)
    assert.equal(error, null)
    assert.ok(bytes.equals(data.subarray(1000, 6000)))
    assert.equal(infos.length, 1)
    assert.deepEqual({ ...stream.info!, mtimeMs: 0 }, { size: 300_000, offset: 1000, length: 5000, mtimeMs: 0 })
    assert.deepEqual(infos[0], stream.info)
    assert.equal(stream.nacks, 0)
  })

  test('pages come as copies of at most 64 KiB, held intact until the end', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 256 * 1024 })
    const data = writeFile(root, 'f.bin', 3 * MiB + 5)
    const client = await connectTo(t, url)
    const chunks: Buffer[] = []
    // 'data' events, not the async iterator: that joins what is buffered.
    const stream = client.read('f.bin').on('data', (c: Buffer) => chunks.push(c))
    await new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))
    assert.ok(chunks.every((c) => c.length <= 64 * 1024), `a chunk of ${Math.max(...chunks.map((c) => c.length))} bytes`)
    assert.ok(Buffer.concat(chunks).equals(data), 'the first pieces were not overwritten by later pages')
  })

  test('a consumer that stops reading holds the connection, so the server stops; reading again takes the rest', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const data = writeFile(root, 'big.bin', 48 * MiB)
    const client = await connectTo(t, url)
    const stream = client.read('big.bin', { highWaterMark: 64 * 1024 })
    await new Promise((resolve) => stream.once('readable', resolve))
    const stopped = await settled(() => server.stats())
    assert.ok(stopped < 24 * MiB, `the server sent ${stopped} bytes to a consumer that took none`)
    const { bytes, error } = await drain(stream)
    assert.equal(error, null)
    assert.ok(bytes.equals(data))
  })

  test('destroyed while it holds the connection, it lets the connection go on for the other requests', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'big.bin', 32 * MiB)
    writeFile(root, 'small.bin', 10)
    const client = await connectTo(t, url)
    const stream = client.read('big.bin', { highWaterMark: 64 * 1024 })
    await new Promise((resolve) => stream.once('readable', resolve))
    const stat = client.stat('small.bin')
    assert.equal(await within(stat, 300), false, 'the stat waits behind the held read')
    stream.destroy()
    assert.equal(await within(stat, 5000), true, 'the stat is answered once the stream is gone')
    assert.equal((await stat).size, 10)
  })

  test('a read that fails destroys the stream with the error', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    const { bytes, error } = await drain(client.read('missing.bin'))
    assert.equal(bytes.length, 0)
    assert.equal((error as Error & { code?: string })?.code, 'ENOENT')
    assert.equal(client.pending, 0)
  })

  test('a read destroyed early cancels on the server and the connection goes on', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'huge.bin', 64 * MiB)
    const client = await connectTo(t, url)
    const stream = client.read('huge.bin')
    for await (const _ of stream) break // destroys the stream after the first chunk
    let last = -1
    for (let i = 0; i < 200; i++) {
      await sleep(20)
      const now = server.stats().bytesServed
      if (now === last) break
      last = now
    }
    assert.ok(last < 24 * MiB, `server went on producing: ${last}`)
    assert.equal(client.pending, 0)
    assert.deepEqual(await client.ls('', { long: true }), [{ name: 'huge.bin', type: 'file', size: 64 * MiB }])
  })

  test('destroyed in their first data event (mid-page) leave the connection serving', { timeout: 20_000 }, async (t) => {
    // Pages of 256 KiB reach the stream as several 64 KiB copies; the first one's listener destroys it.
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 4 * MiB)
    const client = await connectTo(t, url)
    for (let i = 0; i < 3; i++) {
      const stream = client.read('f.bin')
      await new Promise<void>((resolve) => {
        stream.once('data', () => stream.destroy())
        stream.once('close', () => resolve())
      })
    }
    const got = await Promise.race([client.readFile('f.bin'), new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref())])
    assert.ok(got?.equals(data), 'the next read completes')
  })
})
